"""Commented starter specs for `kbuild init TASK` (one YAML file per task in kbuild/templates)."""

from __future__ import annotations

from pathlib import Path

from kbuild.errors import KbuildError
from kbuild.registry import did_you_mean

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class UnknownTemplate(KbuildError):
    exit_code = 2


def available() -> list[str]:
    return sorted(p.stem for p in TEMPLATES.glob("*.yaml"))


def template_path(task: str) -> Path:
    path = TEMPLATES / f"{task}.yaml"
    if not path.is_file():
        names = available()
        raise UnknownTemplate(f"no starter spec for task {task!r}{did_you_mean(task, names)}; available: {', '.join(names)}")
    return path


def starter_spec(task: str) -> str:
    return template_path(task).read_text(encoding="utf-8")
