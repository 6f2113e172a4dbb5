"""English -> German translation with kbuild's Python API: train a Transformer encoder-decoder on
Multi30k, score test BLEU (as sacrebleu computes it), export, and translate raw sentences with the
export.

    python examples/translate.py                                          # the full run (~25 min on 2 cores)
    python examples/translate.py --spec specs/translate_lstm.yaml         # the attentional LSTM
    python examples/translate.py --set data.limit=2000 --set train.epochs=1   # a quick look
"""

from __future__ import annotations

import argparse

import kbuild


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="specs/translate_transformer.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=None, help="export folder (default RUN/export)")
    args = parser.parse_args()

    run = kbuild.train(kbuild.load_spec(args.spec, args.overrides))
    test = kbuild.evaluate(run.path, split="test")
    print(f"test BLEU {test['bleu']:.2f} (brevity penalty {test['bleu_brevity_penalty']:.3f}, "
          f"token accuracy {test['token_accuracy']:.4f})")

    export_dir = kbuild.export(run.path, args.out)
    print("exported to", export_dir)
    sentences = ["A man is riding a bicycle .", "Two dogs are playing in the snow .", "A little girl is climbing stairs ."]
    for row in kbuild.predict(export_dir, sentences):
        print(f"{row['source']}\n  -> {row['translation']}")


if __name__ == "__main__":
    main()
