"""Base class of every spec section (defined on the ground floor, `kbuild.config`, so block
configs below the spec share it), and the validators sections share."""

from __future__ import annotations

from kbuild.config import StrictModel
from kbuild.paths import expand_data_path

__all__ = ["StrictModel", "not_a_folder"]


def not_a_folder(value: str | None) -> str | None:
    """A path field that names a file: refuse a folder when the path exists here (a spec is often
    validated on a machine without the data, so a missing file is the reader's to report)."""
    if value is None or "${" in value:
        return value
    try:
        folder = expand_data_path(value).is_dir()
    except (OSError, ValueError, RuntimeError):  # too long, a NUL, ~nobody: the reader reports it
        folder = False
    if folder:
        raise ValueError(f"{value!r} is a folder; expected a file")
    return value
