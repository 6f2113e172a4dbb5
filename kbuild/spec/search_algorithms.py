"""Samplers and pruners by name: the registries behind `search.sampler` and `search.pruner`.

Optuna is imported inside the factories only, so the spec (which lists the names) loads without it.
An entry names the optional packages Optuna needs for it (GPSampler needs torch, CmaEsSampler the
`cmaes` package), so a missing one is a clear error before the first trial, not a traceback.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kbuild.errors import KbuildError
from kbuild.registry import Registry

if TYPE_CHECKING:
    from kbuild.spec.search import SearchSpec


@dataclass(frozen=True)
class Sampler:
    build: Callable[[SearchSpec, int], Any]
    """(search section, seed) -> an Optuna sampler."""
    requires: tuple[str, ...] = ()
    needs_grid: bool = False
    """Every parameter must be finite; the grid's size caps the trial count."""


@dataclass(frozen=True)
class Pruner:
    build: Callable[[SearchSpec, int], Any]
    """(search section, epochs a trial trains) -> an Optuna pruner."""


SAMPLERS: Registry[Sampler] = Registry("sampler")
PRUNERS: Registry[Pruner] = Registry("pruner")


def _startup(search: SearchSpec) -> dict:
    return {} if search.startup_trials is None else {"n_startup_trials": search.startup_trials}


def _tpe(search: SearchSpec, seed: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed, **_startup(search))


def _random(search: SearchSpec, seed: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _grid(search: SearchSpec, seed: int) -> Any:
    import optuna

    return optuna.samplers.GridSampler({path: space.grid() for path, space in search.parameters.items()}, seed=seed)


def _gp(search: SearchSpec, seed: int) -> Any:
    import optuna

    return optuna.samplers.GPSampler(seed=seed, **_startup(search))


def _cmaes(search: SearchSpec, seed: int) -> Any:
    import optuna

    return optuna.samplers.CmaEsSampler(seed=seed, **_startup(search))


SAMPLERS.register("tpe")(Sampler(_tpe))
SAMPLERS.register("random")(Sampler(_random))
SAMPLERS.register("grid")(Sampler(_grid, needs_grid=True))
SAMPLERS.register("gp")(Sampler(_gp, requires=("torch", "scipy")))
SAMPLERS.register("cmaes")(Sampler(_cmaes, requires=("cmaes",)))


def _median(search: SearchSpec, epochs: int) -> Any:
    import optuna

    # Trials report step = epochs trained so far; Optuna prunes from step == n_warmup_steps on.
    return optuna.pruners.MedianPruner(n_startup_trials=search.pruner_startup_trials,
                                       n_warmup_steps=search.pruner_warmup_epochs)


def _hyperband(search: SearchSpec, epochs: int) -> Any:
    import optuna

    # The resource is the epoch: a trial reports after each (steps 1, 2, ...), at most `epochs` times.
    return optuna.pruners.HyperbandPruner(min_resource=search.pruner_warmup_epochs,
                                          max_resource=max(epochs, search.pruner_warmup_epochs))


def _none(search: SearchSpec, epochs: int) -> Any:
    import optuna

    return optuna.pruners.NopPruner()


PRUNERS.register("median")(Pruner(_median))
PRUNERS.register("hyperband")(Pruner(_hyperband))
PRUNERS.register("none")(Pruner(_none))


def build_sampler(search: SearchSpec, seed: int) -> Any:
    """The Optuna sampler `search.sampler` names, or a clear error if a package it needs is missing."""
    entry = SAMPLERS.get(search.sampler)
    missing = [name for name in entry.requires if importlib.util.find_spec(name) is None]
    if missing:
        raise KbuildError(f"search.sampler {search.sampler} needs the Python package(s) {', '.join(missing)}, "
                          f"which are not installed; install them or choose another sampler "
                          f"({', '.join(n for n, s in SAMPLERS.items() if not s.requires)})")
    return entry.build(search, seed)


def build_pruner(search: SearchSpec, epochs: int) -> Any:
    return PRUNERS.get(search.pruner).build(search, epochs)
