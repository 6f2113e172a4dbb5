"""Export a trained run as a new numbered version of a model folder (TF Serving's layout).

`export(run, out_dir)` writes OUT/<n>/ (n one past the highest existing version) and returns it:
a SavedModel serving raw strings, or (`fmt="tflite"`) a TFLite model with its tokenizer asset.
"""

from __future__ import annotations

import os
from pathlib import Path

from kbuild.errors import KbuildError
from kbuild.exporter.formats import EXPORT_FORMATS


def register_formats() -> None:
    """Import each format's module (it registers itself). Not at package import: the server
    imports `kbuild.exporter.layout`, and must not pull in the writers (and with them the tasks)."""
    from kbuild.exporter import savedmodel, tflite  # noqa: F401


class ExportUsageError(KbuildError):
    exit_code = 2


def export(run: str | os.PathLike, out_dir: str | os.PathLike | None = None, fmt: str = "savedmodel",
           quantize: str = "none") -> Path:
    """Export the best model of `run` under `out_dir` (default RUN/export); returns the version folder."""
    register_formats()
    if fmt not in EXPORT_FORMATS:
        raise ExportUsageError(f"unknown export format {fmt!r}; expected one of: {', '.join(EXPORT_FORMATS.names())}")
    writer = EXPORT_FORMATS.get(fmt)
    if quantize not in writer.quantizations:
        takes = [f"{name} ({', '.join(f.quantizations)})" for name, f in EXPORT_FORMATS.items()]
        raise ExportUsageError(f"--format {fmt} does not take --quantize {quantize}; the formats take: {'; '.join(takes)}")

    from kbuild.exporter.serving import load_servable

    def refuse(spec) -> None:
        """Refuse a run the format cannot write before its assets and model are loaded."""
        reason = writer.refuse(spec)
        if reason:
            raise ExportUsageError(reason)

    servable = load_servable(str(run), refuse)
    return writer.write(servable, Path(out_dir) if out_dir else servable.folder.export, quantize)


__all__ = ["EXPORT_FORMATS", "export"]
