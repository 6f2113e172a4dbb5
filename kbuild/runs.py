"""Trained runs: the run folder layout (the one place that knows it), creating or resuming a run,
and loading a trained one for evaluation, export, prediction, generation and serving.

    runs/<name>/<timestamp>/
      spec.yaml  assets/  checkpoints/  model.keras  logs/  metrics.jsonl  results.json  cache/

Below training, exporter, evaluation and generation (which all open runs); above the tasks,
whose data hooks rebuild a run's assets.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import yaml

from kbuild.errors import KbuildError, TrainingError
from kbuild.files import write_atomic  # noqa: F401  (re-exported: the run folder writes through it)

if TYPE_CHECKING:
    from kbuild.spec import Spec
    from kbuild.tasks.bundle import Assets

RUNS_ROOT = Path("runs")
# checkpoints/ (written by kbuild.training.checkpoint and .stopping; named here, with the rest of the layout)
CHECKPOINT_WEIGHTS, CHECKPOINT_RNG, CHECKPOINT_STATE = "latest.weights.h5", "rng.npz", "state.json"
SELECTION_STATE = "selection.json"
_MIN_FREE_BYTES = 100 * 2**20


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @property
    def spec(self) -> Path:
        return self.path / "spec.yaml"

    @property
    def assets(self) -> Path:
        return self.path / "assets"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def model(self) -> Path:
        return self.path / "model.keras"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def results(self) -> Path:
        return self.path / "results.json"

    @property
    def export(self) -> Path:
        return self.path / "export"

    @property
    def cache(self) -> Path:
        """Computed once and reused: teacher outputs (distillation), predictions (report)."""
        return self.path / "cache"

    def write_spec(self, resolved: dict) -> None:
        write_atomic(self.spec, yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))

    def write_results(self, results: dict) -> None:
        write_atomic(self.results, json.dumps(results, indent=2))

    def read_results(self) -> dict:
        """results.json, or {} before training wrote it; a damaged one is a `DamagedRunFile`."""
        if not self.results.is_file():
            return {}
        with reading(self.results, RETRAIN):
            return json.loads(self.results.read_text(encoding="utf-8"))


# --- reading a run back: one error for every damaged file ------------------------------------

RETRAIN = "retrain the run (kbuild train SPEC, into a new --run-dir)"
FRESH_START = "drop --resume to train from the start (or move the run's checkpoints/ folder away)"
RESTART = "drop --resume to train from the start, into a new --run-dir"


class DamagedRunFile(KbuildError):
    """A file kbuild reads back from a run folder is missing, truncated, overwritten or not what
    kbuild wrote there."""

    exit_code = 1


@contextlib.contextmanager
def reading(path: Path, remedy: str) -> Iterator[None]:
    """Read `path` inside this block: any failure (Keras's "File not found" for a truncated
    model.keras, h5py's "file signature not found", a UnicodeDecodeError) becomes one
    `DamagedRunFile` naming the file, what is wrong with it, and `remedy`, what to do."""
    try:
        yield
    except KbuildError:
        raise
    except Exception as exc:  # noqa: BLE001  (whatever the reader raised, the file is the news)
        raise DamagedRunFile(f"{path}: {damage(path, exc)}; {remedy}") from exc


# File kinds by suffix: the bytes every such file starts with, and what the file should be.
_SIGNATURES = {
    ".h5": (b"\x89HDF\r\n\x1a\n", "an", "HDF5 file"),
    ".keras": (b"PK\x03\x04", "a", ".keras archive (zip)"),
    ".npz": (b"PK\x03\x04", "an", ".npz archive (zip)"),
}


def damage(path: Path, exc: Exception | None = None) -> str:
    """What is wrong with `path`, in words, judged from the file itself where its kind allows."""
    if not path.exists():
        return "is missing"
    if path.is_file() and path.stat().st_size == 0:
        return "is empty (0 bytes): the run stopped, or the disk filled, while it was written"
    signature = _SIGNATURES.get(path.suffix)
    if signature and path.is_file():
        with path.open("rb") as handle:
            head = handle.read(len(signature[0]))
        magic, article, kind = signature
        if head != magic:
            return f"is not {article} {kind}: it was overwritten or damaged"
        if magic.startswith(b"PK") and not zipfile.is_zipfile(path):
            return f"is a truncated {kind} (its end is missing)"
    if isinstance(exc, UnicodeDecodeError):
        return f"is not UTF-8 text (byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r})"
    if isinstance(exc, json.JSONDecodeError):
        return f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
    detail = " ".join(str(exc).split())[:300] if exc is not None else ""
    return f"cannot be read ({type(exc).__name__}: {detail})" if exc is not None else "cannot be read"


class NotARun(KbuildError):
    exit_code = 2


def open_run(path: str | os.PathLike) -> RunFolder:
    """An existing, trained run folder (has spec.yaml and model.keras), or a clear error."""
    folder = RunFolder(Path(path))
    if not folder.spec.is_file():
        raise NotARun(f"{path}: not a kbuild run folder (no spec.yaml); pass runs/<name>/<stamp>")
    if not folder.model.is_file():
        raise NotARun(f"{path}: the run has no model.keras yet (training unfinished or failed)")
    return folder


def open_latest_run(path: str | os.PathLike) -> RunFolder:
    """`open_run(path)`, where `path` may also be a spec's runs folder (`runs/<name>`): then its
    latest stamp that finished training (has model.keras)."""
    base = Path(path)
    if not (base / "spec.yaml").is_file() and base.is_dir():
        trained = sorted(p for p in base.iterdir() if (p / "spec.yaml").is_file() and (p / "model.keras").is_file())
        if trained:
            return open_run(trained[-1])
        raise NotARun(f"{path}: neither a run folder (no spec.yaml) nor a folder of trained runs "
                      "(runs/<name>/<stamp> with model.keras)")
    return open_run(path)


def prepare_run(name: str, run_dir: str | os.PathLike | None, resume: bool) -> RunFolder:
    """Create (or, with resume, find) the run folder and check it is writable with space to spare."""
    if resume:
        path = Path(run_dir) if run_dir else _latest_run(name)
        if not (path / "spec.yaml").is_file():
            raise TrainingError(f"--resume: {path} is not a run folder (no spec.yaml)")
    else:
        path = Path(run_dir) if run_dir else RUNS_ROOT / name / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        if path.exists() and any(path.iterdir()):
            raise TrainingError(f"run folder {path} already exists and is not empty; pass --resume to continue it or choose another --run-dir")
    folder = RunFolder(path)
    if resume:
        check_resumable(folder)
    try:
        for sub in (folder.path, folder.assets, folder.checkpoints, folder.logs):
            sub.mkdir(parents=True, exist_ok=True)
        probe = folder.path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise TrainingError(f"cannot write the run folder {path}: {exc.strerror or exc}") from None
    free = shutil.disk_usage(folder.path).free
    if free < _MIN_FREE_BYTES:
        raise TrainingError(f"only {free // 2**20} MiB free under {path}; need at least {_MIN_FREE_BYTES // 2**20} MiB")
    return folder


def check_resumable(folder: RunFolder) -> None:
    """Before `--resume` trains: the files it reads back now or at the end (the best model so
    far, which is scored when training ends; the checkpoint and its state) are whole, or a
    `DamagedRunFile` says which is not. Without this, a truncated model.keras let a resume
    train on and fail only when scoring, so the run could never finish."""
    if folder.model.exists():
        with reading(folder.model, RETRAIN):
            _check_keras_archive(folder.model)
    for asset in sorted(p for p in folder.assets.rglob("*") if p.is_file()) if folder.assets.is_dir() else ():
        with reading(asset, RESTART):  # a resume encodes with these: a vocabulary cut short would go unnoticed
            _check_asset(asset)
    checkpoint = folder.checkpoints
    for name, check in ((CHECKPOINT_WEIGHTS, _check_hdf5), (CHECKPOINT_RNG, _check_zip),
                        (CHECKPOINT_STATE, _check_json), (SELECTION_STATE, _check_json)):
        if (checkpoint / name).exists():
            with reading(checkpoint / name, FRESH_START):
                check(checkpoint / name)


def _check_keras_archive(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        missing = {"config.json", "model.weights.h5"} - set(archive.namelist())
        if missing:
            raise ValueError(f"the archive lacks {', '.join(sorted(missing))}")


def _check_asset(path: Path) -> None:
    """What can be judged without the tokenizer: no asset is empty, text assets decode, JSON parses."""
    if path.stat().st_size == 0:
        raise ValueError("empty")
    if path.suffix in (".txt", ".json"):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            json.loads(text)


def _check_hdf5(path: Path) -> None:
    import h5py

    with h5py.File(path, "r"):
        pass


def _check_zip(path: Path) -> None:
    with zipfile.ZipFile(path):
        pass


def _check_json(path: Path) -> None:
    json.loads(path.read_text(encoding="utf-8"))


def _latest_run(name: str) -> Path:
    base = RUNS_ROOT / name
    runs = sorted(p for p in base.glob("*") if (p / "spec.yaml").is_file()) if base.is_dir() else []
    if not runs:
        raise TrainingError(f"--resume: no earlier run of {name!r} under {base}; pass --run-dir")
    return runs[-1]


class TrainedRun(NamedTuple):
    """A trained run folder, loaded: its spec, saved assets (tokenizers and labels; no data) and
    best model."""

    folder: RunFolder
    spec: Spec
    assets: Assets
    model: Any


def load_trained_run(run: str | os.PathLike, check: Callable[[Spec], None] | None = None) -> TrainedRun:
    """Load `run` for serving or generation; `check(spec)` may refuse it (by raising) before the
    assets and the model are read."""
    from kbuild.tasks.bundle import load_assets
    from kbuild.tasks.checks import load_spec

    folder = open_run(run)
    spec = load_spec(folder.spec)
    if check is not None:
        check(spec)
    with reading(folder.assets, RETRAIN):
        assets = load_assets(spec, folder.assets)
    return TrainedRun(folder, spec, assets, load_trained_model(folder))


def load_run_for(run: str | os.PathLike, task: str, purpose: str, error: type[KbuildError] = KbuildError) -> TrainedRun:
    """`load_trained_run`, refusing (before anything heavy) a run of another task than `task`;
    `purpose` says what needs it, as in "sampling needs a vae run"."""

    def check(spec: Spec) -> None:
        if spec.task != task:
            raise error(f"{run}: {purpose} needs a {task} run; this run's task is {spec.task}")

    return load_trained_run(run, check)


def load_trained_model(folder: RunFolder) -> Any:
    """The run's best model (`model.keras`, loaded with safe_mode=True)."""
    import warnings

    import keras
    import keras_hub  # noqa: F401  (registers pretrained backbones' classes)

    import kbuild.layers  # noqa: F401  (registers every serialisable kbuild class)

    with warnings.catch_warnings():
        # Trainable flags below the layer a model.keras records are not saved, so a reloaded
        # pretrained backbone (frozen layers, LoRA, its unused pooler) builds an optimizer with more
        # variables than training had. That optimizer state is never used after training (--resume
        # reads checkpoints/), so Keras's "Skipping variable loading for optimizer" is noise here.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        with reading(folder.model, RETRAIN):
            return keras.saving.load_model(folder.model, safe_mode=True)


def load_saved_weights(model: Any, folder: RunFolder) -> Any:
    """`model`, the model this process trained (built and compiled as model.keras records it),
    with model.keras's weights assigned: the best model without building a second one and tracing
    its functions again, about a second of a short run's final scores."""
    import warnings

    with warnings.catch_warnings():
        # As in `load_trained_model`: the file's optimizer state is not what matters here.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        with reading(folder.model, RETRAIN):
            model.load_weights(folder.model)
    return model


def round_metrics(metrics: dict) -> dict:
    """Floats rounded to 6 places, nested breakdowns (per-type scores) included: how results.json
    and `kbuild evaluate` report metrics."""
    return {
        name: round_metrics(value) if isinstance(value, dict) else value if isinstance(value, int) else round(float(value), 6)
        for name, value in metrics.items()
    }
