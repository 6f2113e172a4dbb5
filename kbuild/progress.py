"""A progress line on stderr for long batch jobs (`kbuild predict`), never mixed into stdout.

On a terminal it rewrites one line in place; otherwise (a log file, CI) it prints a plain line every
`interval` seconds, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts rows done; `total` may be unknown (stdin)."""

    def __init__(self, total: int | None, label: str = "predicted", stream: TextIO | None = None, interval: float | None = None):
        self.total, self.label = total, label
        self.stream = stream or sys.stderr
        self.tty = _isatty(self.stream)
        self.interval = interval if interval is not None else (0.2 if self.tty else 10.0)
        self.done = 0
        self._start = self._last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._write(self._line(now))

    def close(self) -> None:
        self._write(self._line(time.monotonic()))
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()

    def _line(self, now: float) -> str:
        rate = self.done / max(now - self._start, 1e-9)
        of = f"/{self.total:,}" if self.total is not None else ""
        percent = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        return f"{self.label} {self.done:,}{of} rows{percent}, {rate:,.0f} rows/s"

    def _write(self, line: str) -> None:
        self.stream.write(f"\r{line}\033[K" if self.tty else f"{line}\n")
        self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
