"""What one benchmark row measures, and the `--configs` mini-language that names it.

A configuration is written `STRATEGY[:DEVICES]/TOKEN/...`, e.g. `cpu/mixed_bfloat16/jit` or
`mirrored:2/float32/nojit/spe4`. Every setting becomes a `--set train.KEY=VALUE` override, so a
configuration is validated by the spec's own rules and trains exactly as `kbuild train` would.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace

from kbuild.errors import KbuildError
from kbuild.registry import did_you_mean
from kbuild.spec.train import TrainSpec

STRATEGY_NAMES: tuple[str, ...] = typing.get_args(TrainSpec.model_fields["strategy"].annotation)
PRECISIONS: tuple[str, ...] = typing.get_args(TrainSpec.model_fields["mixed_precision"].annotation)


class BenchConfigError(KbuildError):
    """A `--configs` entry that does not parse (exit 2, like a usage error)."""

    exit_code = 2


@dataclass(frozen=True)
class BenchConfig:
    """One row of the benchmark: a model setting (`kind: model`) or the input pipeline alone."""

    kind: str = "model"
    strategy: str = "cpu"
    devices: int | None = None
    precision: str = "float32"
    jit: bool | str = False
    """True, False or "auto" (Keras decides: off on CPU-only machines and under tf.distribute)."""
    steps_per_execution: int = 1

    @property
    def label(self) -> str:
        if self.kind != "model":
            return "input pipeline only"
        strategy = self.strategy + (f":{self.devices}" if self.devices is not None else "")
        jit = {True: "jit", False: "nojit"}.get(self.jit, "autojit")
        spe = f"/spe{self.steps_per_execution}" if self.steps_per_execution != 1 else ""
        return f"{strategy}/{self.precision}/{jit}{spe}"

    def overrides(self) -> list[str]:
        """The `--set` overrides that make the spec train this way (none for the pipeline)."""
        if self.kind != "model":
            return []
        jit = self.jit if self.jit == "auto" else str(self.jit).lower()
        sets = [f"train.strategy={self.strategy}", f"train.mixed_precision={self.precision}",
                f"train.jit_compile={jit}", f"train.steps_per_execution={self.steps_per_execution}"]
        if self.devices is not None:
            sets.append(f"train.devices={self.devices}")
        return sets

    @property
    def needs_fresh_process(self) -> bool:
        """Logical CPU devices and multi-worker collectives are fixed when TensorFlow starts, so
        these configurations always run in a process of their own."""
        return self.strategy in ("mirrored", "multi_worker")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BenchConfig:
        return cls(**data)


PIPELINE = BenchConfig(kind="pipeline", strategy="-", precision="-", jit=False)
"""The input pipeline alone: batches of `fresh_dataset("train")`, no model."""


# --- parsing: each token after the strategy sets one field, looked up by its shape -------------
def _jit(value: bool | str) -> Callable[[BenchConfig, str], BenchConfig]:
    return lambda config, token: replace(config, jit=value)


def _precision(config: BenchConfig, token: str) -> BenchConfig:
    return replace(config, precision=token)


def _spe(config: BenchConfig, token: str) -> BenchConfig:
    digits = token.removeprefix("spe").removeprefix("=")
    if not digits.isdigit() or int(digits) < 1:
        raise BenchConfigError(f"steps per execution: expected spe<N> with N >= 1, e.g. spe4; received {token!r}")
    return replace(config, steps_per_execution=int(digits))


_TOKENS: dict[str, Callable[[BenchConfig, str], BenchConfig]] = {
    "jit": _jit(True), "nojit": _jit(False), "autojit": _jit("auto"),
    **{name: _precision for name in PRECISIONS},
}


def parse_config(text: str) -> BenchConfig:
    """`mirrored:2/mixed_bfloat16/jit/spe4` -> BenchConfig; unset settings keep their defaults
    (float32, no XLA, one step per execution)."""
    head, *tokens = [t.strip() for t in text.strip().split("/")]
    strategy, _, devices = head.partition(":")
    if strategy not in STRATEGY_NAMES:
        raise BenchConfigError(f"--configs {text!r}: unknown strategy {strategy!r}{did_you_mean(strategy, STRATEGY_NAMES)}; "
                               f"expected one of: {', '.join(STRATEGY_NAMES)}")
    if devices and (not devices.isdigit() or int(devices) < 1):
        raise BenchConfigError(f"--configs {text!r}: devices after ':' must be a positive integer; received {devices!r}")
    config = BenchConfig(strategy=strategy, devices=int(devices) if devices else None)
    for token in tokens:
        setter = _spe if token.startswith("spe") else _TOKENS.get(token)
        if setter is None:
            choices = [*_TOKENS, "spe<N>"]
            raise BenchConfigError(f"--configs {text!r}: unknown setting {token!r}{did_you_mean(token, choices)}; "
                                   f"expected one of: {', '.join(choices)}")
        config = setter(config, token)
    return config


def parse_configs(texts: Iterable[str]) -> list[BenchConfig]:
    """Every configuration in `texts`; each text may hold several, separated by commas."""
    return [parse_config(part) for text in texts for part in text.split(",") if part.strip()]


def default_configs(gpus: int) -> list[BenchConfig]:
    """A matrix worth comparing on this machine.

    CPU only: {cpu} x {float32, mixed_bfloat16} x {XLA off, on}, plus mirrored over 2 logical
    CPU devices (which shows the cost of the distributed path, not a speed-up: both replicas
    share the same cores). With GPUs: one GPU x {float32, mixed_float16, mixed_bfloat16} x XLA,
    plus mirrored over all of them when there are several.
    """
    if not gpus:
        matrix = [BenchConfig("model", "cpu", None, precision, jit)
                  for precision in ("float32", "mixed_bfloat16") for jit in (False, True)]
        return [*matrix, BenchConfig("model", "mirrored", 2, "float32", False)]
    matrix = [BenchConfig("model", "one_device", None, precision, jit)
              for precision in ("float32", "mixed_float16", "mixed_bfloat16") for jit in (False, True)]
    if gpus > 1:
        matrix.append(BenchConfig("model", "mirrored", gpus, "mixed_float16", True))
    return matrix
