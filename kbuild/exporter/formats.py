"""`EXPORT_FORMATS`: `kbuild export --format NAME` -> how that format is written.

Adding a format is one module that registers an `ExportFormat` (imported in
`kbuild/exporter/__init__.py`). TF-free at import, so the CLI can list the names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kbuild.registry import Registry

if TYPE_CHECKING:
    from kbuild.exporter.serving import Servable
    from kbuild.spec import Spec


@dataclass(frozen=True)
class ExportFormat:
    """Args:
        write: (servable, model root, quantization) -> the version folder written.
        quantizations: the `--quantize` names the format takes (`none` first).
        refuse: why a run's spec cannot be written in this format (checked before its model is
            loaded), or None when it can.
    """

    write: Callable[[Servable, Path, str], Path]
    quantizations: tuple[str, ...] = ("none",)
    refuse: Callable[[Spec], str | None] = lambda spec: None


EXPORT_FORMATS: Registry[ExportFormat] = Registry("export format")


def register_format(name: str, fmt: ExportFormat) -> ExportFormat:
    return EXPORT_FORMATS.register(name)(fmt)
