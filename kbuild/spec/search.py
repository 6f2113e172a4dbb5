"""The `search:` spec section: what to optimise, how, and over which spec fields.

    search:
      metric: val_accuracy
      goal: maximize
      trials: 20
      sampler: tpe            # tpe | random | grid | gp | cmaes
      pruner: median          # median | hyperband | none
      parameters:
        train.optimizer.learning_rate: {space: loguniform, lower: 1.0e-4, upper: 3.0e-3}
        model.blocks.0.units: {space: int, lower: 32, upper: 256, step: 32}
        model.pooling: {space: choice, values: [mean, max, attention]}

Each parameter is a dotted `--set` path and a space; the space kinds are a discriminated union on
`space`, so the JSON Schema lists them. Whether a path exists and whether the spec accepts the values
a space can produce is checked against the whole spec in `kbuild.spec.search_paths`. Nothing here imports
Optuna: the spec must load without it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from kbuild.spec.base import StrictModel
from kbuild.spec.search_algorithms import PRUNERS, SAMPLERS

SamplerName = Literal[SAMPLERS.names()]  # type: ignore[valid-type]
PrunerName = Literal[PRUNERS.names()]  # type: ignore[valid-type]
Issues = Iterator[tuple[tuple[str | int, ...], str]]


class _Space(StrictModel):
    """A parameter space: how Optuna samples it, and the values the spec is checked with."""

    def suggest(self, trial: Any, name: str) -> Any:
        """Sample a value for `name` from an Optuna trial (Optuna's own representation)."""
        raise NotImplementedError

    def decode(self, sampled: Any) -> Any:
        """Optuna's value -> the spec value (only choices of lists or mappings differ)."""
        return sampled

    def extremes(self) -> list[tuple[str, Any]]:
        """(label, value) pairs that together cover what the space can produce, for validation."""
        raise NotImplementedError

    def grid(self) -> list[Any] | None:
        """Every value, for the grid sampler; None for a continuous space."""
        return None


class UniformSpace(_Space):
    """A float between `lower` and `upper` (multiples of `step` above `lower` when given)."""

    space: Literal["uniform"]
    lower: float
    upper: float
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> UniformSpace:
        if not self.lower < self.upper:
            raise ValueError(f"expected lower < upper; received lower={self.lower}, upper={self.upper}")
        return self

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.lower, self.upper, step=self.step)

    def decode(self, sampled: Any) -> Any:
        # Optuna computes lower + k * step in binary floating point (0.30000000000000004).
        return float(f"{sampled:.12g}") if self.step is not None else sampled

    def extremes(self) -> list[tuple[str, Any]]:
        return [("lower", self.lower), ("upper", self._top())]

    def grid(self) -> list[Any] | None:
        if self.step is None:
            return None
        count = int(math.floor((self.upper - self.lower) / self.step + 1e-9)) + 1
        return [round(self.lower + i * self.step, 12) for i in range(count)]

    def _top(self) -> float:
        grid = self.grid()
        return grid[-1] if grid else self.upper


class LogUniformSpace(_Space):
    """A positive float between `lower` and `upper`, sampled uniformly in its logarithm
    (learning rates, weight decay)."""

    space: Literal["loguniform"]
    lower: float = Field(gt=0)
    upper: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LogUniformSpace:
        if not self.lower < self.upper:
            raise ValueError(f"expected lower < upper; received lower={self.lower}, upper={self.upper}")
        return self

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.lower, self.upper, log=True)

    def extremes(self) -> list[tuple[str, Any]]:
        return [("lower", self.lower), ("upper", self.upper)]


class IntSpace(_Space):
    """An integer from `lower` to `upper` in steps of `step` (`log: true` samples the logarithm;
    Optuna allows it only with step 1)."""

    space: Literal["int"]
    lower: int
    upper: int
    step: int = Field(default=1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntSpace:
        if not self.lower < self.upper:
            raise ValueError(f"expected lower < upper; received lower={self.lower}, upper={self.upper}")
        if self.log and (self.step != 1 or self.lower < 1):
            raise ValueError("log: true needs step 1 and lower >= 1")
        return self

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.lower, self._top(), step=self.step, log=self.log)

    def extremes(self) -> list[tuple[str, Any]]:
        return [("lower", self.lower), ("upper", self._top())]

    def grid(self) -> list[Any] | None:
        return list(range(self.lower, self._top() + 1, self.step))

    def _top(self) -> int:
        """The largest value reachable in whole steps (Optuna would otherwise lower it with a warning)."""
        return self.lower + (self.upper - self.lower) // self.step * self.step


class ChoiceSpace(_Space):
    """One of `values`: any YAML value, a list or mapping too (`model.head.hidden: [[], [64]]`)."""

    space: Literal["choice"]
    values: list[Any] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _distinct(cls, values: list[Any]) -> list[Any]:
        encoded = [_encode(v) for v in values]
        repeated = sorted({json.dumps(e) for e in encoded if encoded.count(e) > 1})
        if repeated:
            raise ValueError(f"values must be distinct; repeated: {', '.join(repeated)}")
        return values

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, [_encode(v) for v in self.values])

    def decode(self, sampled: Any) -> Any:
        # Optuna's categorical distribution holds scalars only; lists and mappings travel as JSON.
        for value in self.values:
            if _encode(value) == sampled:
                return value
        raise ValueError(f"{sampled!r} is not one of the choices {self.values!r}")

    def extremes(self) -> list[tuple[str, Any]]:
        return [("value", v) for v in self.values]

    def grid(self) -> list[Any] | None:
        return [_encode(v) for v in self.values]


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


ParameterSpace = Annotated[UniformSpace | LogUniformSpace | IntSpace | ChoiceSpace, Field(discriminator="space")]

_LOWER_IS_BETTER = ("loss", "perplexity", "error", "mse", "mae")


class SearchSpec(StrictModel):
    """`search:` a hyperparameter search over spec fields (`kbuild tune`). Names follow Ludwig's
    hyperopt section; Optuna runs it."""

    metric: str = "val_loss"
    """The epoch metric to optimise; must be a validation metric (`val_...`): selection never sees test."""
    goal: Literal["maximize", "minimize"] | None = None
    """Required unless the metric is a loss (then minimize)."""
    trials: int = Field(default=20, ge=1)
    """Trials in all, over every worker and every `--resume`."""
    timeout_s: float | None = Field(default=None, gt=0)
    """Start no new trial after this many seconds of this `kbuild tune` (running trials finish)."""
    sampler: SamplerName = "tpe"
    pruner: PrunerName = "median"
    seed: int | None = None
    """Sampler seed (default: the spec's `seed`)."""
    storage: str | None = None
    """An Optuna RDB URL (postgresql://..., mysql+pymysql://..., sqlite:///...) shared by machines;
    default: a journal file in the search folder."""
    startup_trials: int | None = Field(default=None, ge=1)
    """tpe/gp: random trials before the sampler models the results (Optuna's default: 10)."""
    pruner_startup_trials: int = Field(default=3, ge=0)
    """median: trials that finish unpruned before pruning starts."""
    pruner_warmup_epochs: int = Field(default=1, ge=1)
    """A trial is never pruned before it has trained this many epochs (1: from the first epoch's end)."""
    parameters: dict[str, ParameterSpace] = Field(min_length=1)
    """Dotted spec path (as for `--set`) -> space."""

    @field_validator("storage")
    @classmethod
    def _url(cls, storage: str | None) -> str | None:
        if storage is not None and "://" not in storage:
            raise ValueError(f"expected an RDB URL such as postgresql://user:pass@host/db; received {storage!r}")
        return storage

    @property
    def direction(self) -> str:
        """The resolved goal."""
        return self.goal or "minimize"

    def issues(self, spec: Any) -> Issues:
        """Problems visible from the spec's typed sections (the parameter paths are checked in
        `kbuild.spec.search_paths`, against the spec's data)."""
        if not self.metric.startswith("val_"):
            yield ("metric",), (f"select on the validation split: expected a val_ metric (val_loss, "
                                f"val_accuracy, ...); received {self.metric!r}")
        elif self.goal is None and not any(token in self.metric for token in _LOWER_IS_BETTER):
            yield ("metric",), f"say whether to maximize or minimize {self.metric}: add goal: maximize (or minimize)"
        data = spec.data
        if data.builtin is None and data.valid is None and data.valid_fraction is None:
            yield ("metric",), "a search selects on the validation split: give data.valid or data.valid_fraction"
        algorithm = SAMPLERS.get(self.sampler)
        if algorithm.needs_grid:
            continuous = [path for path, space in self.parameters.items() if space.grid() is None]
            if continuous:
                yield ("sampler",), (f"grid needs a finite set of values per parameter; give a step (or use "
                                     f"choice) for: {', '.join(continuous)}")
        for path in self.parameters:
            for other in self.parameters:
                if other != path and other.startswith(path + "."):
                    yield ("parameters", other), f"overlaps parameter {path}: set one or the other"

    def grid_size(self) -> int | None:
        """How many points the grid sampler has (None unless every space is finite)."""
        grids = [space.grid() for space in self.parameters.values()]
        return math.prod(len(g) for g in grids) if all(g is not None for g in grids) else None
