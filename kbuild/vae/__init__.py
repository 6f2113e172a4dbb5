"""Text variational autoencoder (task `vae`, Bowman et al. 2016): the `model.latent` config, the
posterior and word-dropout layers, the model builder, decoding from latent codes, the ELBO
evaluation, and `kbuild generate --samples / --interpolate`."""
