"""Distribution strategy and precision: the one place that maps spec names to TF objects.

Two things must happen before TensorFlow's runtime starts, so they live in `prepare_devices`,
which `train()` and the CLI call first: splitting the CPU into logical devices (so `mirrored`
has several replicas on a machine without GPUs, which makes the distributed path testable
anywhere) and creating a MultiWorkerMirroredStrategy (its collective ops are configured at start-up).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kbuild.errors import TrainingError
from kbuild.registry import Registry

if TYPE_CHECKING:
    from kbuild.spec.train import TrainSpec

DEFAULT_CPU_REPLICAS = 2
"""Logical CPU devices `mirrored` makes when there is no GPU and `train.devices` is unset."""


@dataclass(frozen=True)
class Placement:
    strategy: Any
    name: str
    replicas: int
    device: str
    chief: bool = True
    """Whether this process writes the run folder (false on non-chief multi-worker processes)."""


# --- the cluster, from TF_CONFIG (plain JSON: no TensorFlow) -------------------------------------
def tf_config() -> dict:
    """The parsed TF_CONFIG, or {} when unset; a clear error when it is malformed."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TrainingError(f"TF_CONFIG is not valid JSON: {exc}") from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise TrainingError('TF_CONFIG needs "cluster" and "task" keys (see docs/distributed.md)')
    return config


def is_chief(strategy_name: str) -> bool:
    """Whether this process owns the run folder: always, except on a multi-worker process that is
    not the chief (task type `chief`, or worker 0 when the cluster names no chief)."""
    if strategy_name != "multi_worker":
        return True
    config = tf_config()
    if not config:
        return True
    task = config["task"]
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in config["cluster"]


# --- devices -------------------------------------------------------------------------------------
def _gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def _logical(kind: str) -> list:
    import tensorflow as tf

    return tf.config.list_logical_devices(kind)


def _describe() -> str:
    gpus = _gpus()
    if gpus:
        return f"{len(gpus)} x GPU"
    return f"CPU ({os.cpu_count()} cores)"


def split_cpu(count: int) -> None:
    """Make `count` logical CPU devices. Must run before the TensorFlow runtime starts."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu) or [None]
    if len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        raise TrainingError(
            f"strategy mirrored: cannot split the CPU into {count} devices once TensorFlow has "
            "started; call kbuild.train() in a fresh process (or use the CLI)"
        ) from None


_EARLY: dict[str, Any] = {}
"""Strategies that had to be created before the runtime started, by name."""


def prepare_devices(train: TrainSpec) -> None:
    """Everything that must precede TensorFlow's start-up, for this spec. Idempotent."""
    if train.strategy == "mirrored" and not _gpus():
        split_cpu(train.devices or DEFAULT_CPU_REPLICAS)
    elif train.strategy == "multi_worker" and "multi_worker" not in _EARLY:
        _EARLY["multi_worker"] = _create_multi_worker()


# --- strategies, by name -------------------------------------------------------------------------
STRATEGIES: Registry[Any] = Registry("strategy")


@STRATEGIES.register("auto")
def _auto(train: TrainSpec):
    import tensorflow as tf

    gpus = _logical("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy(), "mirrored"
    if len(gpus) == 1:
        return tf.distribute.OneDeviceStrategy("/gpu:0"), "one_device"
    return tf.distribute.get_strategy(), "default"


@STRATEGIES.register("cpu")
def _cpu(train: TrainSpec):
    import tensorflow as tf

    return tf.distribute.OneDeviceStrategy("/cpu:0"), "cpu"


@STRATEGIES.register("one_device")
def _one_device(train: TrainSpec):
    import tensorflow as tf

    return tf.distribute.OneDeviceStrategy("/gpu:0" if _logical("GPU") else "/cpu:0"), "one_device"


@STRATEGIES.register("mirrored")
def _mirrored(train: TrainSpec):
    import tensorflow as tf

    devices = [d.name for d in _logical("GPU")] or [d.name for d in _logical("CPU")]
    if train.devices:
        if train.devices > len(devices):
            raise TrainingError(f"train.devices: {train.devices} requested, {len(devices)} available ({', '.join(devices)})")
        devices = devices[: train.devices]
    return tf.distribute.MirroredStrategy(devices), "mirrored"


def _create_multi_worker():
    import tensorflow as tf

    config = tf_config()
    if not config:
        raise TrainingError("strategy multi_worker needs TF_CONFIG describing the cluster, or run "
                            "`kbuild launch --workers N SPEC` for local processes (see docs/distributed.md)")
    return tf.distribute.MultiWorkerMirroredStrategy()


@STRATEGIES.register("multi_worker")
def _multi_worker(train: TrainSpec):
    strategy = _EARLY.get("multi_worker") or _create_multi_worker()
    return strategy, "multi_worker"


@STRATEGIES.register("parameter_server")
def _parameter_server(train: TrainSpec):
    import tensorflow as tf

    cluster = tf_config().get("cluster", {})
    if not cluster.get("ps") or not cluster.get("worker"):
        raise TrainingError('strategy parameter_server needs TF_CONFIG with "worker" and "ps" tasks '
                            "(and a chief running kbuild train); see docs/distributed.md")
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return tf.distribute.ParameterServerStrategy(resolver), "parameter_server"


@STRATEGIES.register("tpu")
def _tpu(train: TrainSpec):
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as exc:
        raise TrainingError(f"strategy tpu: no TPU found ({exc})") from None
    return tf.distribute.TPUStrategy(resolver), "tpu"


def resolve_strategy(train: TrainSpec) -> Placement:
    """The strategy `train.strategy` names, created (after `prepare_devices`) and described."""
    prepare_devices(train)
    strategy, resolved = STRATEGIES.get(train.strategy)(train)
    return Placement(strategy, resolved, strategy.num_replicas_in_sync, _describe(), is_chief(train.strategy))


def prepare_model_for_strategy(model: Any, placement: Placement, element_spec: Any) -> None:
    """Work around Keras 3's `fit` under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    Two Keras bugs, both in how values are *reported* across workers, not in training itself:
    - `fit` first averages a batch of input data across workers to build the model symbolically,
      and that reduce of int32 ids fails ("Attempt to convert a value (PerReplica...)"). The
      build needs only shapes and dtypes, which the dataset's element_spec has: build from
      them, then skip Keras's step for this model instance only.
    - each step's logs are averaged with `strategy.reduce("MEAN", v, axis=0)`, which fails on
      scalar losses and metrics. `_mean_over_workers` reduces scalars with axis=None instead.
    """
    if placement.name != "multi_worker":
        return
    with placement.strategy.scope():
        model._symbolic_build(data_batch=element_spec)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    _patch_multi_worker_reduce()


def _patch_multi_worker_reduce() -> None:
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica
    if getattr(original, "_kbuild_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            from keras.src import tree

            def mean(v):
                axis = 0 if getattr(v, "shape", None) is not None and v.shape.rank else None
                return strategy.reduce("MEAN", v, axis=axis)

            return tree.map_structure(mean, values)
        return original(values, strategy, reduction)

    reduce_per_replica._kbuild_patched = True
    trainer.reduce_per_replica = reduce_per_replica


def resolve_precision(name: str, recurrent: bool) -> str:
    """`auto`: float32 on CPU; mixed_float16 on GPU, except for recurrent models, whose fused
    kernels do not all take reduced precision (bfloat16 fails in the JAX cuDNN RNN lowering)."""
    if name != "auto":
        return name
    if _gpus() and not recurrent:
        return "mixed_float16"
    return "float32"
