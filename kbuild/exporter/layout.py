"""The export folder layout TF Serving reads (the one place that knows it):

    export/NAME/            a model: one numbered folder per version, the highest one is served
      1/  saved_model.pb  variables/  assets/  metadata.json
      2/  ...             model.tflite  vocab.txt  metadata.json    (a TFLite export)

A version folder is a positive integer name. Anything else (a half-written `.2.tmp` staging folder,
a README) is ignored, as TF Serving ignores it. TF-free: the server and `kbuild predict` resolve
paths with it before loading anything.
"""

from __future__ import annotations

import os
from pathlib import Path

from kbuild.errors import KbuildError

SAVED_MODEL = "saved_model.pb"
TFLITE_MODEL = "model.tflite"
METADATA = "metadata.json"


class NotAnExport(KbuildError):
    exit_code = 2


def is_version_folder(path: Path) -> bool:
    """A complete version: numbered, holding a SavedModel or a TFLite model."""
    return (
        path.is_dir()
        and path.name.isdigit()
        and int(path.name) > 0
        and ((path / SAVED_MODEL).is_file() or (path / TFLITE_MODEL).is_file())
    )


def versions(model_root: Path) -> dict[int, Path]:
    """Version number -> folder, for every complete version under `model_root`."""
    if not model_root.is_dir():
        return {}
    return {int(p.name): p for p in model_root.iterdir() if is_version_folder(p)}


def next_version(model_root: Path) -> int:
    """The number a new export under `model_root` gets: one past the highest existing version."""
    taken = [int(p.name) for p in model_root.iterdir() if p.name.isdigit()] if model_root.is_dir() else []
    return max(taken, default=0) + 1


def resolve_version(path: str | os.PathLike) -> Path:
    """A version folder for `path`: the folder itself, or the highest version of a model root."""
    path = Path(path)
    if is_version_folder(path) or (path / SAVED_MODEL).is_file():
        return path
    found = versions(path)
    if not found:
        raise NotAnExport(f"{path}: not an export (no numbered version folder holding {SAVED_MODEL} or {TFLITE_MODEL})")
    return found[max(found)]


def check_model_root(model_root: Path) -> None:
    """Refuse to write versions into a folder that is itself an unversioned SavedModel."""
    if (model_root / SAVED_MODEL).is_file():
        raise NotAnExport(
            f"{model_root} holds an unversioned SavedModel (older kbuild layout); "
            f"pass a new --out folder or move it to {model_root}/1"
        )


STAGING_PREFIX = ".staging."
STALE_UNOWNED_S = 24 * 3600
"""A staging folder whose owner cannot be checked (another host's, or an older kbuild's) is
removed once it is this old: no export takes a day."""


def _host() -> str:
    import socket

    return "".join(c for c in socket.gethostname().split(".")[0] if c.isalnum() or c in "-_") or "host"


def staging_owner(path: Path) -> tuple[str, int] | None:
    """(host, pid) of the export writing `.staging.HOST.PID.XXXX`, None for another name."""
    parts = path.name[len(STAGING_PREFIX):].split(".")
    if not path.name.startswith(STAGING_PREFIX) or len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_staging(model_root: Path, now: float | None = None) -> list[Path]:
    """Delete the staging folders of exports that died mid-way (killed, out of memory, power
    loss): on this host, those whose process is gone; otherwise those older than a day. They are
    never served (not numbered); this only reclaims their disk. Returns what was removed."""
    import shutil
    import time

    now = time.time() if now is None else now
    removed = []
    for path in model_root.glob(STAGING_PREFIX + "*") if model_root.is_dir() else ():
        owner = staging_owner(path)
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:
            continue  # its export just finished or cleaned it
        dead = not _alive(owner[1]) if owner and owner[0] == _host() else age > STALE_UNOWNED_S
        if dead and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def normal_permissions(folder: Path) -> None:
    """Give `folder` and everything in it the modes a plain `mkdir` and file write would have
    (0777 and 0666 less the umask, so 0755 and 0644 under the usual 022). The staging folder comes
    from `mkdtemp`, which makes it 0700: renamed as it was, a version stayed unreadable to a
    serving account other than the exporter's."""
    mask = _umask()
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def _umask() -> int:
    """The process's umask; reading it means setting it, so set it straight back."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish_version(model_root: Path, fill) -> Path:
    """Create the next version under `model_root`: `fill(staging)` writes into a hidden staging
    folder, which is renamed to its number only once complete, so a crash never leaves a half
    version that a server would load. Two exports racing for a number: the loser takes the next.
    Staging folders of earlier exports that died are removed first (`remove_stale_staging`)."""
    import shutil
    import tempfile

    check_model_root(model_root)
    model_root.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(model_root)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{_host()}.{os.getpid()}.", dir=model_root))
    try:
        fill(staging)
        normal_permissions(staging)
        while True:
            target = model_root / str(next_version(model_root))
            try:
                os.rename(staging, target)  # fails (not replaces) when the number was just taken
                return target
            except OSError:
                if not target.exists():
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
