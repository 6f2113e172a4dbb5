"""`TASKS`: spec `task:` name -> the stateless `Task` object (each task module registers itself)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbuild.registry import Registry

if TYPE_CHECKING:
    from kbuild.tasks.base import Task

TASKS: Registry[Task] = Registry("task")
