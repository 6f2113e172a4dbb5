"""`train:` optimisation, schedule, stopping, strategy and precision."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from kbuild.spec.base import StrictModel


class OptimizerSpec(StrictModel):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = Field(default=1e-3, gt=0)
    weight_decay: float | None = Field(default=None, ge=0)
    """Decoupled weight decay (adamw; default 0.004 there). Not allowed for adam."""
    momentum: float = Field(default=0.0, ge=0, lt=1)
    """sgd only."""
    nesterov: bool = False
    beta_1: float = Field(default=0.9, gt=0, lt=1)
    beta_2: float = Field(default=0.999, gt=0, lt=1)
    epsilon: float = Field(default=1e-7, gt=0)
    clipnorm: float | None = Field(default=None, gt=0)
    """Clip each gradient to this L2 norm."""
    clipvalue: float | None = Field(default=None, gt=0)
    global_clipnorm: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _options_fit_optimizer(self) -> OptimizerSpec:
        if self.name == "adam" and self.weight_decay:
            raise ValueError("adam takes no weight_decay; use name: adamw for decoupled decay")
        if self.name != "sgd" and (self.momentum or self.nesterov):
            raise ValueError(f"momentum/nesterov apply to sgd only; received name={self.name}")
        clips = [c for c in (self.clipnorm, self.clipvalue, self.global_clipnorm) if c is not None]
        if len(clips) > 1:
            raise ValueError("give at most one of clipnorm, clipvalue, global_clipnorm")
        return self


class ScheduleSpec(StrictModel):
    name: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = Field(default=0, ge=0)
    """Linear warmup from 0 to the learning rate over this many steps."""
    min_ratio: float = Field(default=0.0, ge=0, le=1)
    """cosine/linear decay end at learning_rate * min_ratio."""


class EarlyStoppingSpec(StrictModel):
    monitor: str = Field(default="val_loss", min_length=1)
    """Unset: the task's selection metric, as for `train.monitor`; checked against the metrics the task logs."""
    patience: int = Field(default=2, ge=0)
    min_delta: float = Field(default=0.0, ge=0)
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best_weights: bool = True


class EpochBudgetSpec(StrictModel):
    """What `epochs: auto` trains for: about `samples` examples, in whole epochs."""

    samples: int = Field(default=200_000, ge=1)
    """Examples seen in all: ceil(samples / train rows) epochs (SST-2's 67k rows: 3)."""
    max_epochs: int = Field(default=50, ge=1)
    """Upper bound on the epochs of a tiny train split."""


class TrainSpec(StrictModel):
    epochs: Annotated[int, Field(ge=1)] | Literal["auto"] = 3
    """Passes over train, or `auto`: as many as `epoch_budget` gives for the train split's size,
    with early stopping (patience 2 on `monitor` unless `early_stopping` says otherwise), so a
    small set is not under-trained and a large one not over-trained (see README, Small datasets)."""
    epoch_budget: EpochBudgetSpec = Field(default_factory=EpochBudgetSpec)
    batch_size: int = Field(default=64, ge=1)
    """Global batch size: split across replicas under a distribution strategy."""
    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimizer steps in all (overrides epochs when reached first)."""
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    early_stopping: EarlyStoppingSpec | None = None
    monitor: str = Field(default="val_loss", min_length=1)
    """Metric that picks the best model (model.keras); `val_accuracy`, `val_macro_f1`, `val_f1`
    (tagging: conlleval entity F1), ... Unset: the task's own (`val_f1` for tagging, else
    `val_loss`); checked against the metrics the task logs."""
    class_weight: Literal["balanced"] | dict[str, Annotated[float, Field(gt=0)]] | None = None
    """`balanced`, or label -> weight."""
    shuffle_buffer: int = Field(default=20000, ge=1)
    strategy: Literal["auto", "cpu", "one_device", "mirrored", "multi_worker", "parameter_server", "tpu"] = "auto"
    """`mirrored` uses every local GPU, or on a machine without one splits the CPU into
    `devices` logical devices (default 2); `multi_worker` reads the cluster from TF_CONFIG
    (`kbuild launch --workers N` starts local workers)."""
    devices: int | None = Field(default=None, ge=1, le=64)
    """Replicas for `mirrored`: GPUs to use (default all), or logical CPU devices without GPUs."""
    scale_learning_rate: bool = False
    """Multiply the learning rate by the number of replicas (the linear scaling rule)."""
    gradient_accumulation: int = Field(default=1, ge=1)
    """Apply the optimizer every N batches on their mean gradient: an N x larger effective batch."""
    checkpoint_every: int | None = Field(default=None, ge=1)
    """Also checkpoint every N steps (default: every epoch); `--resume` continues at that step."""
    mixed_precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    jit_compile: Literal["auto"] | bool = "auto"
    """XLA; `auto`: a short timed probe at train start decides (kbuild/training/execution.py)."""
    steps_per_execution: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"
    """Batches per compiled call; `auto`: probed with jit_compile, among those that divide the epoch."""
    loss_on: Literal["responses", "all"] = "responses"
    """`task: chat`: train on the assistant's replies only (the prompt tokens carry no loss), or on
    every token of the conversation."""
    deterministic: bool = False
    """Enable TF op determinism (bit-identical reruns; somewhat slower)."""
