"""`train(spec)`: the one training loop every task shares; the task supplies head, loss and metrics."""

from __future__ import annotations

import errno
import functools
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import keras

from kbuild import __version__
from kbuild.blocks.recurrent import _RecurrentBlock
from kbuild.errors import DataError, Interrupted, TrainingError
from kbuild.runs import RunFolder, load_trained_model, prepare_run
from kbuild.runtime import sigterm_as_interrupt
from kbuild.spec import Spec
from kbuild.tasks import TASKS
from kbuild.training.callback_list import TrainingCallbacks, training_callbacks
from kbuild.training.callbacks import optimizer_steps
from kbuild.training.checkpoint import has_checkpoint, restore_checkpoint
from kbuild.training.execution import Candidate, ExecutionChoice, choose_execution
from kbuild.training.extensions import RunStart, TrainingExtension, extensions_for
from kbuild.training.init_from import init_source
from kbuild.training.optimizers import build_optimizer
from kbuild.training.scoring import FinalScores, evaluate_splits
from kbuild.training.stopping import step_budget, stop_reason
from kbuild.training.strategy import (
    Placement,
    is_chief,
    prepare_devices,
    prepare_model_for_strategy,
    resolve_precision,
    resolve_strategy,
)


@dataclass
class Run:
    """A finished run: its folder and the final results (also in results.json)."""

    path: Path
    results: dict = field(default_factory=dict)


def log(message: str) -> None:
    print(f"[kbuild] {message}", file=sys.stderr, flush=True)


def train(spec: Spec, run_dir: str | os.PathLike | None = None, resume: bool = False,
          callbacks: Sequence[keras.callbacks.Callback] = ()) -> Run:
    """Train `spec`; write the run folder; return the run with its final metrics.

    Args:
        spec: a validated spec (see `kbuild.load_spec`).
        run_dir: the run folder; default runs/<name>/<timestamp>.
        resume: continue the run in `run_dir` (or the latest run of this spec) from its checkpoint,
            at the exact step it reached, with the same data order and optimizer state.
        callbacks: more Keras callbacks, run after kbuild's own each epoch (a search's pruning
            reporter); one may stop training early through `model.stop_training`.
    """
    # Before anything starts TensorFlow's runtime: logical CPUs, multi-worker collectives.
    prepare_devices(spec.train)
    chief = is_chief(spec.train.strategy)
    with global_policy_kept():  # the run's precision must not leak into the caller's next model
        if not chief:  # only the chief writes the run folder; other workers write to a scratch copy
            scratch = tempfile.mkdtemp(prefix=f"kbuild-{spec.name}-worker-")
            try:
                return _train(spec, scratch, resume=False, extra_callbacks=callbacks)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        return _train(spec, run_dir, resume, extra_callbacks=callbacks)


@contextmanager
def _unusable_run_removed(folder: RunFolder, resume: bool) -> Iterator[None]:
    """A new run that fails on its data, or on a full disk, before it saved anything to resume
    from leaves no folder behind (so the same command can run again once the cause is fixed); a
    full disk is said as such, with the path it could not write."""
    try:
        yield
    except (DataError, OSError) as error:
        if not isinstance(error, DataError) and error.errno != errno.ENOSPC:
            raise
        resumable = resume or has_checkpoint(folder.checkpoints) or folder.model.is_file()
        if not resumable:
            shutil.rmtree(folder.path, ignore_errors=True)
        if isinstance(error, DataError):
            raise
        kept = ("the run folder is kept: continue with --resume once there is space" if resumable
                else f"the incomplete run folder {folder.path} was removed")
        raise TrainingError(f"no space left on the device writing {error.filename or folder.path}; {kept}") from None


@contextmanager
def global_policy_kept() -> Iterator[None]:
    """Keras's global dtype policy, whatever the block sets it to, is put back when it ends."""
    previous = keras.mixed_precision.global_policy()
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _train(spec: Spec, run_dir: str | os.PathLike | None, resume: bool,
           extra_callbacks: Sequence[keras.callbacks.Callback] = ()) -> Run:
    spec, source = init_source(spec)  # before the run folder exists: a bad init_from leaves none behind
    folder = prepare_run(spec.name, run_dir, resume)
    with _unusable_run_removed(folder, resume):
        folder.write_spec(spec.resolved())
        seed_run(spec)
        placement, precision = resolve_strategy(spec.train), training_precision(spec)
        keras.mixed_precision.set_global_policy(precision)
        started = time.perf_counter()
        start = RunStart(spec, folder, source, log=log,
                         reuses_assets=resume and any(folder.assets.iterdir()),  # encode exactly as before: never refit
                         from_checkpoint=resume and has_checkpoint(folder.checkpoints))
        bundle = read_data(start)
        extensions = extensions_for(start)
        for extension in extensions:
            bundle = extension.prepare(bundle)
        log(bundle.describe())
        budget = step_budget(spec.train, bundle.counts["train"])
        execution, model = probe_execution(spec, folder, bundle, placement, precision, budget.steps_per_epoch,
                                           budget.total_steps, extensions)
        with placement.strategy.scope():
            for extension in extensions:
                extension.adjust(model)
            start_step = restore_checkpoint(model, folder.checkpoints) if start.from_checkpoint else 0
        trainable = trainable_parameters(model)
        log(f"model {model.name}: {model.count_params():,} parameters ({trainable:,} trainable); strategy {placement.name} "
            f"({placement.replicas} replica(s), {placement.device}); precision {precision}; {budget.describe()}")
        if (backbone := spec.model.backbone) is not None and backbone.learning_rate_scale != 1:
            rate = spec.train.optimizer.learning_rate
            log(f"learning rate: the checkpoint's weights at {rate * backbone.learning_rate_scale:g} "
                f"(x{backbone.learning_rate_scale:g}), the rest of the model at {rate:g} (peaks of the schedule)")
        if start_step:
            log(f"resuming at step {start_step} of {budget.total_steps} (epoch {start_step // budget.steps_per_epoch + 1})")

        loop = training_callbacks(spec, folder, bundle, extensions, budget.total_steps, extra_callbacks)
        stopped_before = bool(start_step) and loop.selection.restore()
        fit_started = time.perf_counter()
        _fit(model, spec, bundle, folder, loop, [] if stopped_before else
             _epoch_plan(start_step, budget.total_steps, budget.steps_per_epoch))
        train_seconds = time.perf_counter() - fit_started
        if loop.guard.failed_at is not None:
            raise TrainingError(f"loss became NaN or Inf at epoch {loop.guard.failed_at[0]}, step {loop.guard.failed_at[1]}; "
                                f"stopped. {_what_was_kept(folder)} Lower the learning rate or add clipnorm.")

        # Counted before the final scores: loading model.keras's weights into the model sets its
        # optimizer's step counter back to the saved epoch's.
        steps = optimizer_steps(model)
        reason = stop_reason(loop.stopping, budget.plan, steps, spec.train.max_steps)
        log(f"stopped: {reason}")
        # The trained model is scored again with the saved weights, unless distillation compiled
        # it for packed targets, it is distributed (its evaluate is then a collective), or it is
        # not what model.keras holds (a fine-tuned LLM's training model saves the CausalLM inside).
        from kbuild.pretrained.causal_lm import causal_lm_of

        reusable = (model if spec.distill is None and placement.replicas == 1 and causal_lm_of(model) is model
                    else None)
        checkpoint = loop.selection.checkpoint
        scoring = evaluate_splits(folder, bundle, spec, checkpoint.saved_logs, log, trained=reusable,
                                  trained_is_saved=checkpoint.saved_step == steps)
        log(scoring.describe())
        best = functools.cache(lambda: load_trained_model(folder))
        results = _results(spec, bundle, model, scoring, steps, start_step, reason, loop.throughput.samples_per_second,
                           train_seconds, time.perf_counter() - started, placement, precision, execution, trainable)
        for extension in extensions:
            results.update(extension.results(scoring.metrics, best))
        results.update(epochs_planned=budget.epochs, epoch_plan=budget.plan.reason, warmup_steps=budget.warmup_steps)
        # Everything after the last step: the best model loaded, every split scored, the extensions' extras.
        results["after_training_s"] = round(time.perf_counter() - fit_started - train_seconds, 2)
        folder.write_results(results)
        speed = loop.throughput.samples_per_second
        log(f"done in {results['wall_time_s']} s: training {train_seconds:.1f} s"
            + (f" ({speed} samples/s)" if speed is not None else "")
            + f", after training {results['after_training_s']} s ({results['after_training_s'] / max(train_seconds, 1e-9):.1%});"
            f" run folder {folder.path}")
        return Run(folder.path, results)


def _results(spec: Spec, bundle, model: keras.Model, scoring: FinalScores, steps: int, start_step: int, reason: str,
             samples_per_second: float | None, train_seconds: float, wall_seconds: float, placement: Placement,
             precision: str, execution: ExecutionChoice, trainable: int) -> dict:
    """results.json before the extensions add theirs."""
    return {
        "kbuild_version": __version__,
        "name": spec.name,
        "task": spec.task,
        "spec_hash": spec.fingerprint(),
        "metrics": scoring.metrics,
        "labels": bundle.labels,
        "counts": bundle.counts,
        "scored_rows": scoring.rows,
        "scoring_seconds": scoring.seconds,
        "skipped_rows": bundle.skipped,
        "truncated_rows": bundle.truncated,
        "steps": steps,
        "resumed_at_step": start_step or None,
        "stop_reason": reason,
        "samples_per_second": samples_per_second,
        "train_time_s": round(train_seconds, 2),
        "wall_time_s": round(wall_seconds, 2),
        "device": placement.device,
        "strategy": placement.name,
        "replicas": placement.replicas,
        "global_batch_size": spec.train.batch_size,
        "precision": precision,
        "execution": {**execution.record(), "jit_compile_resolved": bool(model.jit_compile)},
        "parameters": model.count_params(),
        "trainable_parameters": trainable,
    }


def seed_run(spec: Spec) -> None:
    """The run's one seeding point, before anything random: Python, NumPy, TensorFlow's global
    seed (which the data pipelines' own seeds combine with) and Keras's; `train.deterministic`
    also makes TensorFlow's kernels deterministic. The model's initial weights and seed-generator
    states do not depend on what ran since: `model.build_backbone` seeds itself, so every build
    of the spec (the run's, the execution probe's throwaways, `kbuild summary`) starts the same."""
    import tensorflow as tf

    keras.utils.set_random_seed(spec.seed)
    if spec.train.deterministic:
        tf.config.experimental.enable_op_determinism()


def read_data(start: RunStart):
    """The run's data bundle: read and encoded, its vocabulary fitted (or init_from's reused),
    or, on a resume, encoded with the vocabulary and labels the run saved."""
    from kbuild.tasks.bundle import build, load_bundle

    spec, folder, source = start.spec, start.folder, start.source
    bundle = (load_bundle(spec, folder.assets) if start.reuses_assets else
              build(spec, assets_dir=folder.assets, vocabulary_from=source and source.folder.assets))
    if "valid" not in bundle.datasets:
        log("no valid split: the best model is chosen on training loss")
    return bundle


def _fit(model: keras.Model, spec: Spec, bundle, folder: RunFolder, loop: TrainingCallbacks,
         calls: list[FitCall]) -> None:
    """Run the `fit` calls; Ctrl-C or SIGTERM writes a checkpoint and raises `Interrupted` (exit 130)."""
    with sigterm_as_interrupt():
        try:
            for call in calls:
                model.fit(
                    _train_stream(bundle.fresh_dataset("train"), call.start_step),
                    validation_data=bundle.datasets.get("valid"),
                    initial_epoch=call.initial_epoch,
                    epochs=call.epochs,
                    steps_per_epoch=call.steps_per_epoch,
                    callbacks=loop.all,
                    class_weight=_class_weight(spec, bundle),
                    shuffle=False,  # the tf.data pipeline already shuffles, seeded
                    verbose=1 if sys.stderr.isatty() else 2,
                )
                if model.stop_training:
                    break
        except KeyboardInterrupt:
            loop.backup.save_now()
            raise Interrupted(f"training interrupted; checkpoint written to {folder.checkpoints}; "
                              f"continue with: kbuild train SPEC --run-dir {folder.path} --resume") from None


def probe_execution(spec: Spec, folder: RunFolder, bundle, placement: Placement, precision: str,
                    steps_per_epoch: int, total_steps: int,
                    extensions: Sequence[TrainingExtension] = ()) -> tuple[ExecutionChoice, keras.Model]:
    """jit_compile and steps_per_execution for this run (kbuild.training.execution), logged, and
    the run's model compiled with them: the one the plain setting was timed on, its state put
    back, when that setting won and no throwaway model was built after it; else a new one (with
    the same initial weights: `model.build_backbone` seeds every build)."""
    timed: dict[Candidate, keras.Model] = {}

    def real(candidate: Candidate):
        model = compile_model(spec, bundle, placement, total_steps, extensions, candidate)
        timed[candidate] = model
        return model, _state_restorer(model, placement)

    def reset() -> None:  # throwaway models were built after the timed one: it is rebuilt below
        timed.clear()
        _reset_session(precision)

    execution = choose_execution(
        spec, folder, steps_per_epoch, total_steps, real=real, reset=reset,
        build=lambda candidate, steps: compile_model(spec, bundle, placement, steps, extensions, candidate),
        dataset=lambda: _train_stream(bundle.fresh_dataset("train"), 0),
        multi_worker=placement.name == "multi_worker", log=log,
    )
    log(execution.describe())
    model = timed.get(execution.candidate)
    if model is None:
        model = compile_model(spec, bundle, placement, total_steps, extensions, execution)
    return execution, model


def _state_restorer(model: keras.Model, placement: Placement):
    """A function that puts back every variable of `model` and its optimizer (built now, so its
    slots exist) as they are now, and clears its metrics: the probe's timed steps leave no trace."""
    with placement.strategy.scope():
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    variables = list({id(v): v for v in [*model.variables, *model.optimizer.variables]}.values())
    values = [keras.ops.convert_to_numpy(v) for v in variables]

    def restore() -> None:
        with placement.strategy.scope():
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)
        model.reset_metrics()
        model.stop_training = False

    return restore


def trainable_parameters(model: keras.Model) -> int:
    """Parameters the optimizer updates (fewer than `count_params` with a frozen or LoRA backbone)."""
    return sum(math.prod(variable.shape) for variable in model.trainable_variables)


def training_precision(spec: Spec) -> str:
    """The dtype policy `train.mixed_precision` resolves to for this spec's model."""
    recurrent = any(isinstance(b, _RecurrentBlock) for b in spec.model.blocks)
    return resolve_precision(spec.train.mixed_precision, recurrent)


def compile_model(spec: Spec, bundle, placement: Placement, total_steps: int,
                  extensions: Sequence[TrainingExtension] = (),
                  execution: Candidate | ExecutionChoice | None = None) -> keras.Model:
    """The task's model, built and compiled in the strategy's scope exactly as training runs it
    (`kbuild bench` times this same model).

    Set the global dtype policy first: layers take it when they are created. Under
    mixed_float16, Keras's `compile` wraps the optimizer in a LossScaleOptimizer itself, because
    the model's dtype policy is mixed_float16 (tests/test_mixed_precision.py checks it).
    `execution` is what `choose_execution` decided; without it, the spec's values (`auto` steps
    per execution: 1). `extensions` may wrap the task's loss and metrics (distillation).
    """
    if execution is None:
        spe = spec.train.steps_per_execution
        execution = Candidate(spec.train.jit_compile, 1 if spe == "auto" else spe)
    task = TASKS.get(spec.task)
    loss, metrics = task.loss(spec), task.metrics(spec, bundle.labels)
    for extension in extensions:  # distillation wraps both around the packed train targets
        loss, metrics = extension.loss(loss), extension.metrics(metrics)
    with placement.strategy.scope():
        model = task.build_model(spec, bundle)
        model.compile(
            optimizer=build_optimizer(spec.train, total_steps, placement.replicas, *_rate_scales(spec, model)),
            loss=loss,
            metrics=metrics,
            **({"weighted_metrics": weighted} if (weighted := task.weighted_metrics(spec)) else {}),
            jit_compile=execution.jit_compile,
            steps_per_execution=execution.steps_per_execution,
        )
        prepare_model_for_strategy(model, placement, bundle.datasets["train"].element_spec)
    return model


def _rate_scales(spec: Spec, model: keras.Model) -> tuple[list, float]:
    """(the checkpoint's variables, `model.backbone.learning_rate_scale`) when it is not 1."""
    backbone = spec.model.backbone
    if backbone is None or backbone.learning_rate_scale == 1:
        return [], 1.0
    from kbuild.pretrained.backbone import backbone_variables

    return backbone_variables(model), backbone.learning_rate_scale


def _reset_session(precision: str) -> None:
    """Keras after the execution probe built its throwaway models: layer names count from zero
    again, as in the fresh process of a resume that reads the cached choice (clear_session also
    resets the dtype policy, so it is set again)."""
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(precision)


def _train_stream(dataset, skip: int):
    """The endless, seeded batch stream, fast-forwarded by `skip` batches.

    Keras keeps one iterator across epochs when steps_per_epoch is given, so a finite dataset
    would run dry after the first epoch (bucketing also makes a pass slightly longer than
    count / batch); repeating makes an epoch exactly steps_per_epoch steps. The stream is a pure
    function of the seed, so skipping the steps already taken resumes the exact same order.
    """
    stream = dataset.repeat()
    return stream.skip(skip) if skip else stream


class FitCall(NamedTuple):
    """One `model.fit` call: epochs [initial_epoch, epochs), starting at global step start_step."""

    initial_epoch: int
    epochs: int
    steps_per_epoch: int
    start_step: int


def _epoch_plan(start_step: int, total_steps: int, steps_per_epoch: int) -> list[FitCall]:
    """The `fit` calls that take training from `start_step` to `total_steps`.

    One call normally; a resume in mid-epoch first finishes that epoch's remaining steps in a
    call of its own, so later epochs keep their boundaries (and validation points).
    """
    if start_step >= total_steps:
        return []
    epoch, into = divmod(start_step, steps_per_epoch)
    total_epochs = math.ceil(total_steps / steps_per_epoch)
    plan = []
    if into and epoch < total_epochs:
        plan.append(FitCall(epoch, epoch + 1, steps_per_epoch - into, start_step))
        epoch += 1
    if epoch < total_epochs:
        plan.append(FitCall(epoch, total_epochs, steps_per_epoch, epoch * steps_per_epoch))
    return plan


def _what_was_kept(folder: RunFolder) -> str:
    """What a failed run leaves behind, stated honestly (a run can fail before any save)."""
    kept = []
    if has_checkpoint(folder.checkpoints):
        kept.append(f"the last good checkpoint is in {folder.checkpoints}")
    if folder.model.is_file():
        kept.append(f"the best model so far is {folder.model}")
    if not kept:
        return "It failed before the first checkpoint, so nothing was saved."
    sentence = "; ".join(kept)
    return sentence[0].upper() + sentence[1:] + "."


def _class_weight(spec: Spec, bundle) -> dict[int, float] | None:
    setting = spec.train.class_weight
    if setting is None:
        return None
    ids = {label: i for i, label in enumerate(bundle.labels)}
    if setting == "balanced":
        counts = Counter(example.label for example in bundle.examples["train"])
        total = sum(counts.values())
        return {ids[label]: total / (len(counts) * n) for label, n in counts.items()}
    unknown = sorted(set(setting) - set(ids))
    if unknown:
        raise TrainingError(f"train.class_weight names labels not in the train split: {unknown}; labels are {bundle.labels}")
    return {ids[label]: float(setting.get(label, 1.0)) for label in bundle.labels}
