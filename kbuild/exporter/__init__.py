"""Export a trained run as a new numbered version of a model folder (TF Serving's layout).

`export(run, out_dir)` writes OUT/<n>/ (n one past the highest existing version) and returns it.
"""

from __future__ import annotations

import os
from pathlib import Path


def export(run: str | os.PathLike, out_dir: str | os.PathLike | None = None, fmt: str = "savedmodel") -> Path:
    """Export the best model of `run` under `out_dir` (default RUN/export); returns the version folder."""
    from kbuild.exporter.savedmodel import write_savedmodel
    from kbuild.exporter.serving import load_servable

    servable = load_servable(str(run))
    model_root = Path(out_dir) if out_dir else servable.folder.export
    return write_savedmodel(servable, model_root)


__all__ = ["export"]
