"""What `jit_compile: auto` / `steps_per_execution: auto` pick for every shipped spec, and what
picking costs: each spec in a fresh process goes through `kbuild train` up to the execution probe
(data read, vocabulary fitted, the probe run on the real model and batches) and stops there.

    PYTHONPATH=. .venv/bin/python benchmarks/probe_choices.py [--pretrained pretrained/all-MiniLM-L6-v2]
        [--init-from RUN] [--only sst2_bilstm,conll2003_minilm] [--skip pretrain_mlm]

`--pretrained` sets `model.backbone.from` of the MiniLM specs (skipped without it); `--init-from`
sets `init_from` of specs that have one (skipped without it). Prints a table and writes
benchmarks/out/probe_choices.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "out"


class _Probed(Exception):
    """Raised right after the probe: the run stops before its first training step."""


def worker(spec_path: str, overrides: list[str]) -> dict:
    import kbuild
    import kbuild.training.fit as fit

    original = fit.probe_execution

    def probe_then_stop(spec, folder, bundle, placement, precision, steps_per_epoch, total_steps, *rest):
        choice, _ = original(spec, folder, bundle, placement, precision, steps_per_epoch, total_steps, *rest)
        raise _Probed({"total_steps": total_steps, "steps_per_epoch": steps_per_epoch, **choice.record()})

    fit.probe_execution = probe_then_stop
    spec = kbuild.load_spec(spec_path, overrides)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            kbuild.train(spec, run_dir=Path(tmp) / "run")
        except _Probed as probed:
            record = probed.args[0]
        else:
            raise SystemExit(f"{spec_path}: trained without reaching the probe")
    record["seconds_to_probe_end"] = round(time.perf_counter() - started, 2)
    return record


def _overrides(path: Path, args) -> list[str] | None:
    text = path.read_text()
    overrides = []
    if "backbone:" in text:
        if not args.pretrained:
            return None
        overrides.append(f"model.backbone.from={Path(args.pretrained).resolve()}")
    if "\ninit_from:" in text:
        if not args.init_from:
            return None
        overrides.append(f"init_from={Path(args.init_from).resolve()}")
    return overrides


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pretrained")
    parser.add_argument("--init-from")
    parser.add_argument("--only", default="")
    parser.add_argument("--skip", default="")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RECORD " + json.dumps(worker(args.worker, args.overrides)))
        return

    only, skip = set(filter(None, args.only.split(","))), set(filter(None, args.skip.split(",")))
    rows = {}
    for path in sorted((REPO / "specs").glob("*.yaml")):
        if (only and path.stem not in only) or path.stem in skip:
            continue
        overrides = _overrides(path, args)
        if overrides is None:
            rows[path.stem] = {"skipped": "needs --pretrained or --init-from"}
            continue
        command = [sys.executable, __file__, "--worker", str(path)] + [f"--set={o}" for o in overrides]
        load = os.getloadavg()[0]
        proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RECORD ")]
        if proc.returncode or not lines:
            rows[path.stem] = {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
        else:
            rows[path.stem] = {**json.loads(lines[-1][len("RECORD "):]), "load": round(load, 1)}
        print(f"{path.stem}: {rows[path.stem]}", file=sys.stderr)

    print("\n| spec | steps | chosen | how | ms/step per setting | probe s | data + probe s | load |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        if "jit_compile" not in row:
            print(f"| {name} | - | {row.get('skipped') or 'error: ' + row.get('error', '')} | | | | | |")
            continue
        xla = {True: "XLA on", False: "XLA off"}.get(row["jit_compile"], "XLA as Keras decides")
        timings = "; ".join(f"{k}: {v}" for k, v in row["ms_per_step"].items()) or row["reason"]
        print(f"| {name} | {row['total_steps']} | {xla}, {row['steps_per_execution']}/execution | {row['source']} "
              f"| {timings} | {row['probe_seconds']} | {row['seconds_to_probe_end']} | {row['load']} |")
    OUT.mkdir(exist_ok=True)
    (OUT / "probe_choices.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
