"""Where datasets live: the one place that decides the data root.

A ground-floor module: the spec loader imports it to expand `${KBUILD_DATA}` while validating a spec (which must
answer in well under a second), so it imports nothing beyond the standard library.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_VARIABLE = "KBUILD_DATA"

# kbuild/paths.py -> the repository root is two parents up; shared data sits beside it.
_REPO_ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """The folder `${KBUILD_DATA}` stands for.

    The environment variable `KBUILD_DATA` wins, so a user or CI can point every spec at another
    copy of the data; otherwise it is the `shared/data` folder beside the repository, where the
    project's datasets are kept read-only.
    """
    override = os.environ.get(DATA_ROOT_VARIABLE)
    if override:
        return Path(override).expanduser()
    return _REPO_ROOT.parent / "shared" / "data"


def expand_data_path(path: str) -> Path:
    """`path` with `${KBUILD_DATA}` replaced by `data_root()` and `~` expanded.

    The spec loader normally expands variables already; doing it again here is a no-op then, and
    keeps specs built in code (tests, examples) working with the same placeholder.
    """
    token = "${" + DATA_ROOT_VARIABLE + "}"
    if token in path:
        path = path.replace(token, str(data_root()))
    return Path(path).expanduser()
