"""`EXPORT_FORMATS`: `kbuild export --format NAME` -> how that format is written, recognised and
read back.

Adding a format is one module that registers an `ExportFormat` (imported in
`kbuild/exporter/__init__.py`): its writer, what it refuses, and the other half of the life
cycle, `detect` (is this version folder mine?) and `load` (strings in, outputs out), which
`kbuild predict` on an export goes through. TF-free at import, so the CLI can list the names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kbuild.registry import Registry

if TYPE_CHECKING:
    from kbuild.exporter.serving import Servable
    from kbuild.spec import Spec


@dataclass(frozen=True)
class LoadedExport:
    """An export read back: `serve` takes raw strings `[batch]` by input name and returns the
    named outputs of `serving_default`; `explain` likewise for the `explain` signature, if any."""

    serve: Callable[[dict[str, Any]], dict[str, Any]]
    metadata: dict
    explain: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        """The names of the texts it reads (exports older than declared inputs read `text`)."""
        return tuple(self.metadata.get("inputs", ["text"]))


@dataclass(frozen=True)
class ExportFormat:
    """Args:
        write: (servable, model root, quantization) -> the version folder written.
        quantizations: the `--quantize` names the format takes (`none` first).
        refuse: why a run's spec cannot be written in this format (checked before its model is
            loaded), or None when it can.
        detect: whether a version folder holds this format.
        load: (version folder, its metadata.json) -> the export, ready to predict.
    """

    write: Callable[[Servable, Path, str], Path]
    quantizations: tuple[str, ...] = ("none",)
    refuse: Callable[[Spec], str | None] = lambda spec: None
    detect: Callable[[Path], bool] = lambda version: False
    load: Callable[[Path, dict], LoadedExport] | None = None


EXPORT_FORMATS: Registry[ExportFormat] = Registry("export format")


def detect_format(version: Path) -> str | None:
    """The name of the format a version folder holds, or None."""
    return next((name for name, fmt in EXPORT_FORMATS.items() if fmt.detect(version)), None)


def register_format(name: str, fmt: ExportFormat) -> ExportFormat:
    return EXPORT_FORMATS.register(name)(fmt)
