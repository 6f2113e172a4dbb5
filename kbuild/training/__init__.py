"""Training: strategy and precision, optimizers and schedules, callbacks, the loop, the run folder."""

from kbuild.training.fit import Run, train

__all__ = ["Run", "train"]
