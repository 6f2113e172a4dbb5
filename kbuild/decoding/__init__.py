"""Decoding a trained network step by step: block caches, the language-model stepper, translation
and VAE decoding, beam search. Below the tasks: nothing here imports tasks, runs or training."""
