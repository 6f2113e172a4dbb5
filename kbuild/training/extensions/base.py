"""The training-extension protocol and its do-nothing base (see `kbuild.training.extensions`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kbuild.runs import RunFolder
    from kbuild.spec import Spec
    from kbuild.training.init_from import InitSource


@dataclass(frozen=True)
class RunStart:
    """What an extension may know when the run starts, before any data is read."""

    spec: Spec
    folder: RunFolder
    source: InitSource | None
    """The run `init_from` names, opened (`kbuild.training.init_from.init_source`)."""
    reuses_assets: bool
    """A resume that encodes with the run's saved vocabulary and labels."""
    from_checkpoint: bool
    """A resume whose weights come from the run's checkpoint."""
    log: Callable[[str], None]


class TrainingExtension(Protocol):
    """The hooks the training loop calls (see the module docstring for when)."""

    def prepare(self, bundle: Any) -> Any: ...
    def loss(self, loss: Any) -> Any: ...
    def metrics(self, metrics: list[Any]) -> list[Any]: ...
    def adjust(self, model: Any) -> None: ...
    def callbacks(self, total_steps: int) -> list[Any]: ...
    def checkpoint_ready(self) -> bool: ...
    def results(self, metrics: dict, best: Callable[[], Any]) -> dict: ...


class Extension:
    """A training extension whose hooks all do nothing; subclasses override the ones they need."""

    def __init__(self, start: RunStart):
        self.start = start

    def prepare(self, bundle: Any) -> Any:
        return bundle

    def loss(self, loss: Any) -> Any:
        return loss

    def metrics(self, metrics: list[Any]) -> list[Any]:
        return metrics

    def adjust(self, model: Any) -> None:
        return None

    def callbacks(self, total_steps: int) -> list[Any]:
        return []

    def checkpoint_ready(self) -> bool:
        return True

    def results(self, metrics: dict, best: Callable[[], Any]) -> dict:
        return {}
