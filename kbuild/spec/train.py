"""`train:` optimisation, schedule, stopping, strategy and precision."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

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
    """Linear warmup from 0 to the learning rate over this many optimizer steps."""
    warmup_ratio: float | None = Field(default=None, gt=0, lt=1)
    """Warmup as a fraction of the run's optimizer steps, as Hugging Face's TrainingArguments has
    it (ceil(ratio x steps)); resolved once the step budget is known, and logged with it. Give
    this or warmup_steps, not both."""
    min_ratio: float = Field(default=0.0, ge=0, le=1)
    """cosine/linear decay end at learning_rate * min_ratio."""

    @field_validator("warmup_ratio")
    @classmethod
    def _one_warmup(cls, value: float | None, info: ValidationInfo) -> float | None:
        # warmup_steps: 0 beside a ratio is what a run folder's resolved spec holds: not a conflict.
        if value is not None and info.data.get("warmup_steps"):
            raise ValueError(f"give warmup_steps or warmup_ratio, not both; received warmup_steps="
                             f"{info.data['warmup_steps']} and warmup_ratio={value}: remove one (or set warmup_steps: 0)")
        return value

    def warmup_for(self, updates: int) -> int:
        """Warmup steps of a run of `updates` optimizer steps: `warmup_steps`, or `warmup_ratio` of them."""
        if self.warmup_ratio is None:
            return self.warmup_steps
        # Rounded first: 0.1 x 30 is 3.0000000000000004 in floating point, which must stay 3.
        return min(math.ceil(round(self.warmup_ratio * updates, 6)), updates)


_HIGHER_IS_BETTER = ("acc", "f1", "auc", "precision", "recall", "bleu", "rouge", "pearson", "spearman", "exact")


def monitor_mode(name: str) -> str:
    """`max` for metrics where higher is better, `min` otherwise (losses, perplexity, MAE).

    Here, below training and the report, so that both read a run's best epoch the same way and a
    cached report never imports Keras."""
    return "max" if any(token in name for token in _HIGHER_IS_BETTER) else "min"


class EarlyStoppingSpec(StrictModel):
    monitor: str = Field(default="val_loss", min_length=1)
    """Unset: `train.monitor` (itself the task's selection metric when unset); checked against the
    metrics the task logs."""
    patience: int = Field(default=2, ge=0)
    min_delta: float = Field(default=0.0, ge=0)
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best_weights: bool = True


class EpochBudgetSpec(StrictModel):
    """What `epochs: auto` trains for: about `samples` examples, in whole epochs. A spec with a
    pretrained `model.backbone` takes the fields it does not give from `FINE_TUNING_BUDGET`."""

    samples: int = Field(default=200_000, ge=1)
    """Examples seen in all: ceil(samples / train rows) epochs (SST-2's 67k rows: 3; fine-tuning: 100,000)."""
    min_epochs: int = Field(default=1, ge=1)
    """Lower bound on the epochs of a large train split (fine-tuning: 2)."""
    max_epochs: int = Field(default=50, ge=1)
    """Upper bound on the epochs of a tiny train split (fine-tuning: 20)."""

    @model_validator(mode="after")
    def _bounds_in_order(self) -> EpochBudgetSpec:
        if self.min_epochs > self.max_epochs:
            raise ValueError(f"expected min_epochs <= max_epochs; received min_epochs={self.min_epochs}, "
                             f"max_epochs={self.max_epochs}")
        return self

    def defaulting_to(self, defaults: EpochBudgetSpec) -> EpochBudgetSpec:
        """This budget with the fields the spec left out taken from `defaults`; a default bound
        that a given one crosses moves to it (the spec's own `max_epochs: 1` wins over a default
        `min_epochs: 2`)."""
        given = self.model_fields_set
        merged = {**defaults.model_dump(), **self.model_dump(include=given)}
        if "min_epochs" not in given:
            merged["min_epochs"] = min(merged["min_epochs"], merged["max_epochs"])
        if "max_epochs" not in given:
            merged["max_epochs"] = max(merged["max_epochs"], merged["min_epochs"])
        return EpochBudgetSpec.model_validate(merged)


FINE_TUNING_BUDGET = EpochBudgetSpec(samples=100_000, min_epochs=2, max_epochs=20)
"""`epochs: auto` for a pretrained backbone: far fewer examples than training from scratch, but
more passes on a small set than the usual fixed 3 epochs, which Zhang et al. (ICLR 2021, Revisiting
Few-sample BERT Fine-tuning) and Mosbach et al. (ICLR 2021, On the Stability of Fine-tuning BERT)
both found too short for sets of a few thousand rows.
- min_epochs 2: the low end of the 2-4 epochs Devlin et al. (2019) recommend for BERT: a set of
  over 100,000 rows still gets 2 passes, not 1.
- samples 100,000: about 3,100 optimizer steps at batch 32, as many as Mosbach et al.'s 20 epochs
  of RTE's 2,490 rows at batch 16; under 2 x SST-2, so a set of its size is not run 3 times. 5,000
  rows get 20 epochs, which early stopping (patience 2) ends once dev stops improving.
- max_epochs 20: Mosbach et al.'s epochs for the small GLUE sets; a 1,000-row set gets 20 epochs
  (20,000 samples, 625 steps at batch 32), not the 100 the sample budget alone would give."""


class TrainSpec(StrictModel):
    epochs: Annotated[int, Field(ge=1)] | Literal["auto"] = 3
    """Passes over train, or `auto`: as many as `epoch_budget` gives for the train split's size,
    with early stopping (patience 2 on `monitor` unless `early_stopping` says otherwise), so a
    small set is not under-trained and a large one not over-trained (see README, Small datasets)."""
    epoch_budget: EpochBudgetSpec = Field(default_factory=EpochBudgetSpec)
    """Unset fields: `FINE_TUNING_BUDGET`'s with a pretrained `model.backbone`, else the defaults below."""
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
