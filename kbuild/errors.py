"""Exceptions that the CLI turns into exit codes and one-line messages.

Kept free of heavy imports: every module may raise these.
"""

from __future__ import annotations

from dataclasses import dataclass


class KbuildError(Exception):
    """Base class: a failure with a message meant for the user, not a traceback."""

    exit_code = 1


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec, located in its source file."""

    file: str
    line: int | None
    column: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class SpecError(KbuildError):
    """Every problem found in a spec at once (exit 2)."""

    exit_code = 2

    def __init__(self, issues: list[SpecIssue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class DataError(KbuildError):
    """Bad or missing data: names the file and, where known, the line (exit 1)."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        self.file, self.line = file, line
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(f"{where}{message}")


class TrainingError(KbuildError):
    """Training stopped on a failure (NaN loss, unwritable folder, ...)."""


class Interrupted(KbuildError):
    """SIGINT/SIGTERM during training; a checkpoint was written first (exit 130)."""

    exit_code = 130


class ExportError(KbuildError):
    """An export whose result does not run (e.g. a quantised TFLite model whose kernels fail)."""
