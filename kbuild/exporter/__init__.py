"""Export a trained run. `export(run, out_dir)` writes a SavedModel that serves raw strings."""

from __future__ import annotations

import os
from pathlib import Path


def export(run: str | os.PathLike, out_dir: str | os.PathLike | None = None, fmt: str = "savedmodel") -> Path:
    """Export the best model of `run` (default destination: RUN/export)."""
    from kbuild.exporter.savedmodel import write_savedmodel
    from kbuild.exporter.serving import load_servable

    servable = load_servable(str(run))
    destination = Path(out_dir) if out_dir else servable.folder.export
    return write_savedmodel(servable, destination)


__all__ = ["export"]
