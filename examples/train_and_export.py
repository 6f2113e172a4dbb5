"""Train, evaluate, export and query a model through kbuild's Python API (no CLI).

    python examples/train_and_export.py                               # built-in quickstart data
    python examples/train_and_export.py --spec specs/sst2_bilstm.yaml --set data.limit=5000
"""

from __future__ import annotations

import argparse
import json

import kbuild


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="specs/quickstart.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=None, help="export folder (default RUN/export)")
    args = parser.parse_args()

    spec = kbuild.load_spec(args.spec, args.overrides)
    run = kbuild.train(spec)
    print("final metrics:", json.dumps(run.results["metrics"], indent=2))

    test_split = "test" if "test" in run.results["metrics"] else "valid"
    print(f"{test_split} metrics from the saved run:", kbuild.evaluate(run.path, split=test_split))

    export_dir = kbuild.export(run.path, args.out)
    print("exported to", export_dir)
    for row in kbuild.predict(export_dir, ["a wonderful , moving film", "a dull and tedious mess"]):
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
