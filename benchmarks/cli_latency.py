"""Wall time of `kbuild --help` and `kbuild validate` (TensorFlow must stay unimported).

    .venv/bin/python benchmarks/cli_latency.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KBUILD = Path(sys.executable).parent / "kbuild"


def timed(args: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([str(KBUILD), *args], cwd=REPO, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for cmd in (["--help"], ["validate", "specs/sst2_transformer.yaml"], ["validate", "specs/quickstart.yaml"]):
        print(f"kbuild {' '.join(cmd):45} median {timed(cmd, args.repeat):.3f} s over {args.repeat} runs")


if __name__ == "__main__":
    main()
