"""Export a trained run as a new numbered version of a model folder (TF Serving's layout).

`export(run, out_dir)` writes OUT/<n>/ (n one past the highest existing version) and returns it:
a SavedModel serving raw strings, or (`fmt="tflite"`) a TFLite model with its tokenizer asset.
"""

from __future__ import annotations

import os
from pathlib import Path

from kbuild.errors import KbuildError

FORMATS = ("savedmodel", "tflite")


class ExportUsageError(KbuildError):
    exit_code = 2


def export(run: str | os.PathLike, out_dir: str | os.PathLike | None = None, fmt: str = "savedmodel",
           quantize: str = "none") -> Path:
    """Export the best model of `run` under `out_dir` (default RUN/export); returns the version folder."""
    from kbuild.exporter.quantize import QUANTIZATIONS

    if fmt not in FORMATS:
        raise ExportUsageError(f"unknown export format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    if quantize not in QUANTIZATIONS:
        raise ExportUsageError(f"unknown quantization {quantize!r}; expected one of: {', '.join(QUANTIZATIONS.names())}")
    if fmt == "savedmodel" and quantize != "none":
        raise ExportUsageError("--quantize applies to --format tflite only (a SavedModel keeps float weights)")

    from kbuild.exporter.serving import load_servable
    from kbuild.tasks import TASKS

    def tflite_covers(spec) -> None:
        """Refuse a task TFLite cannot convert before its assets and model are loaded."""
        if not TASKS.get(spec.task).tflite:
            able = ", ".join(name for name, candidate in TASKS.items() if candidate.tflite)
            raise ExportUsageError(f"--format tflite covers the tasks whose outputs are one model call ({able}); "
                                   f"a {spec.task} model decodes in a loop: export it as a SavedModel")

    servable = load_servable(str(run), tflite_covers if fmt == "tflite" else None)
    model_root = Path(out_dir) if out_dir else servable.folder.export
    if fmt == "tflite":
        from kbuild.exporter.tflite import write_tflite

        return write_tflite(servable, model_root, quantize)
    from kbuild.exporter.savedmodel import write_savedmodel

    return write_savedmodel(servable, model_root)


__all__ = ["FORMATS", "export"]
