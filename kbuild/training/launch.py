"""`kbuild launch --workers N SPEC`: multi-worker training as N local processes on 127.0.0.1.

Each process is an ordinary `kbuild train` with `train.strategy=multi_worker` and its own
TF_CONFIG; worker 0 is the chief and the only one that writes the run folder. The same spec runs
on a real cluster by setting TF_CONFIG on each host instead (docs/distributed.md).

The launcher owns its children: a worker that fails stops the others, Ctrl-C or SIGTERM stops
them all, and none outlives the launcher.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kbuild.errors import Interrupted, TrainingError

_GRACE_S = 10.0
_POLL_S = 0.2


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports that were free a moment ago (held open together so none repeats)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]


def cluster_configs(workers: int, host: str = "127.0.0.1") -> list[dict]:
    """One TF_CONFIG per worker for a local cluster of `workers` processes."""
    addresses = [f"{host}:{port}" for port in free_ports(workers, host)]
    return [{"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}} for i in range(workers)]


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen
    log: Path | None


def launch(
    spec: str,
    workers: int,
    overrides: Sequence[str] = (),
    run_dir: str | None = None,
    timeout_s: float | None = None,
    debug: bool = False,
) -> None:
    """Train `spec` with MultiWorkerMirroredStrategy across `workers` local processes.

    Args:
        spec: the spec file.
        workers: number of processes (>= 1).
        overrides: `--set` values, passed to every worker.
        run_dir: the chief's run folder (default runs/<name>/<stamp>).
        timeout_s: stop every worker and fail after this long.
        debug: run the workers with `kbuild --debug` (tracebacks, TensorFlow logs).

    Raises:
        TrainingError: a worker failed (its last log lines are in the message) or time ran out.
        Interrupted: Ctrl-C or SIGTERM; every worker was stopped first.
    """
    if workers < 1:
        raise TrainingError(f"--workers must be at least 1; received {workers}")
    args = [sys.executable, "-m", "kbuild.cli", *(["--debug"] if debug else []), "train", spec, "--set", "train.strategy=multi_worker"]
    for override in overrides:
        args += ["--set", override]
    if run_dir:
        args += ["--run-dir", run_dir]
    logs = Path(tempfile.mkdtemp(prefix="kbuild-launch-"))
    started: list[_Worker] = []
    try:
        for i, config in enumerate(cluster_configs(workers)):
            env = {**os.environ, "TF_CONFIG": json.dumps(config)}
            # The chief talks to the user; the others write to log files shown on failure.
            log = None if i == 0 else logs / f"worker{i}.log"
            out = None if log is None else log.open("wb")
            process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)
            if out:
                out.close()
            started.append(_Worker(i, process, log))
        _wait(started, timeout_s)
    finally:
        _stop(started)
        for worker in started:
            if worker.log:
                worker.log.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            logs.rmdir()


def _wait(workers: list[_Worker], timeout_s: float | None) -> None:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
    try:
        while True:
            codes = [w.process.poll() for w in workers]
            failed = [(w, c) for w, c in zip(workers, codes, strict=True) if c not in (None, 0)]
            if failed:
                worker, code = failed[0]
                raise TrainingError(f"worker {worker.index} exited with code {code}; stopped the others"
                                    f"{_tail(worker)}")
            if all(c == 0 for c in codes):
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TrainingError(f"launch: still running after {timeout_s:.0f} s; stopped every worker")
            time.sleep(_POLL_S)
    except KeyboardInterrupt:
        raise Interrupted("launch interrupted; every worker was stopped (the chief wrote a checkpoint)") from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stop(workers: list[_Worker]) -> None:
    """SIGTERM every live worker (they checkpoint and exit), then SIGKILL after a grace period."""
    live = [w.process for w in workers if w.process.poll() is None]
    for process in live:
        process.terminate()
    deadline = time.monotonic() + _GRACE_S
    for process in live:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(worker: _Worker, lines: int = 15) -> str:
    if worker.log is None or not worker.log.is_file():
        return ""
    text = worker.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:]
    return "; its last lines:\n" + "\n".join(text) if text else ""


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
