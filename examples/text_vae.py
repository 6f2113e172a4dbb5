"""A text VAE with kbuild's Python API: train on SST-2 sentences, report the ELBO and its parts,
then sample sentences from the prior and walk between two sentences in the latent space.

    python examples/text_vae.py                                              # the full run
    python examples/text_vae.py --set data.limit=3000 --set train.max_steps=300   # a quick look
"""

from __future__ import annotations

import argparse

import kbuild
from kbuild.generation import GenerationOptions
from kbuild.generation.vae_generator import load_vae_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="specs/text_vae.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    run = kbuild.train(kbuild.load_spec(args.spec, args.overrides))
    valid = kbuild.evaluate(run.path, split="valid")
    print(f"valid ELBO {valid['elbo']:.2f} nats/sentence = -(reconstruction {valid['reconstruction']:.2f} "
          f"+ KL {valid['kl']:.2f}); {valid['active_units']:.0f} active latent units")

    vae = load_vae_generator(run.path)
    print("samples from the prior:")
    for text in vae.sample(5, GenerationOptions(sampler="greedy", seed=1)).texts:
        print("  ", text)
    print("from one sentence to another:")
    walk = vae.interpolate("a gorgeous , moving film", "a dull and tedious mess", 4, GenerationOptions(sampler="greedy"))
    for text in walk.texts:
        print("  ", text)


if __name__ == "__main__":
    main()
