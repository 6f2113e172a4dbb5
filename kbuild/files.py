"""Writing files so that a kill or a full disk never leaves half of one: the ground floor, so the
data layer (vocabularies, label lists) and the run folder (spec, results) share one way."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Write `path` beside itself and rename it into place: a kill or a full disk mid-write leaves
    the previous file whole, and a reader (`kbuild report`, another worker) never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
