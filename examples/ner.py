"""Named-entity recognition with kbuild's Python API: train a BiLSTM-CRF tagger on CoNLL-2003,
score it with conlleval's entity F1, export it, and tag raw sentences with the export.

    python examples/ner.py                                    # the full run (about 12 minutes on 2 cores)
    python examples/ner.py --set data.limit=500 --set train.epochs=1     # a quick look
    python examples/ner.py --spec specs/conll2003_wordpiece.yaml          # subwords, a word tagged by its first piece
"""

from __future__ import annotations

import argparse
import json

import kbuild


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="specs/conll2003_bilstm_crf.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=None, help="export folder (default RUN/export)")
    args = parser.parse_args()

    run = kbuild.train(kbuild.load_spec(args.spec, args.overrides))
    test = kbuild.evaluate(run.path, split="test")
    print(f"test entity F1 {test['f1']:.4f} (precision {test['precision']:.4f}, recall {test['recall']:.4f})")
    for kind, scores in test["per_type"].items():
        print(f"  {kind:5} F1 {scores['f1']:.4f} over {scores['support']} entities")

    export_dir = kbuild.export(run.path, args.out)
    print("exported to", export_dir)
    sentences = ["Angela Merkel visited Paris on Monday .", "Manchester United beat Arsenal 2-1 at Old Trafford ."]
    for row in kbuild.predict(export_dir, sentences):
        print(json.dumps({"text": row["text"], "entities": row["entities"]}, ensure_ascii=False))


if __name__ == "__main__":
    main()
