"""One-line descriptions of unexpected failures that say where they happened.

A library error (`KbuildError`) already names its spec key or file and line. Anything else is a
bug or an environment failure; `error: ValueError: ...` alone leaves the user nothing to look at,
so the line names the innermost kbuild frame (the code that called into Keras or TensorFlow, or
raised itself) and, for running out of memory, the sizes to reduce. Standard library only: the
CLI imports it before anything heavy.
"""

from __future__ import annotations

import traceback
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_MEMORY = ("ResourceExhaustedError", "MemoryError", "OutOfMemoryError")
_MEMORY_HINT = ("out of memory: reduce train.batch_size, preprocess.max_length, model.embedding.dim, "
                "the block sizes or preprocess.tokenizer.vocab_size")


def describe_failure(exc: BaseException) -> str:
    """`Type: first line [at kbuild/FILE.py:LINE in FUNCTION]`, plus a hint for out-of-memory."""
    name = type(exc).__name__
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    where = innermost_frame(exc)
    text = f"{name}: {first[:300]}" if first else name
    if where:
        text += f" [at {where}]"
    if name in _MEMORY:
        text += f"; {_MEMORY_HINT}"
    return text


def innermost_frame(exc: BaseException) -> str | None:
    """`kbuild/model.py:120 in build_backbone` for the last traceback frame inside kbuild (or the
    last frame at all when none is)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return None
    ours = [frame for frame in frames if _inside_package(frame.filename)]
    frame = (ours or frames)[-1]
    path = Path(frame.filename)
    shown = path.resolve().relative_to(_PACKAGE.parent) if _inside_package(frame.filename) else path
    return f"{shown}:{frame.lineno} in {frame.name}"


def _inside_package(filename: str) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(_PACKAGE)
    except (OSError, ValueError):
        return False
