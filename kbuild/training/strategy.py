"""Distribution strategy and precision resolution: the one place that maps spec names to TF objects."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from kbuild.errors import TrainingError


@dataclass(frozen=True)
class Placement:
    strategy: Any
    name: str
    replicas: int
    device: str


def _devices(kind: str) -> list:
    import tensorflow as tf

    return tf.config.list_logical_devices(kind)


def _describe() -> str:
    gpus = _devices("GPU")
    if gpus:
        return f"{len(gpus)} x GPU"
    return f"CPU ({os.cpu_count()} cores)"


def _auto():
    import tensorflow as tf

    gpus = _devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy(), "mirrored"
    if len(gpus) == 1:
        return tf.distribute.OneDeviceStrategy("/gpu:0"), "one_device"
    return tf.distribute.get_strategy(), "default"


def _cpu():
    import tensorflow as tf

    return tf.distribute.OneDeviceStrategy("/cpu:0"), "cpu"


def _one_device():
    import tensorflow as tf

    return tf.distribute.OneDeviceStrategy("/gpu:0" if _devices("GPU") else "/cpu:0"), "one_device"


def _mirrored():
    import tensorflow as tf

    gpus = _devices("GPU")
    devices = [d.name for d in gpus] if gpus else [d.name for d in _devices("CPU")]
    return tf.distribute.MirroredStrategy(devices), "mirrored"


def _multi_worker():
    import tensorflow as tf

    if "TF_CONFIG" not in os.environ:
        raise TrainingError("strategy multi_worker needs TF_CONFIG describing the cluster (see docs/distributed.md)")
    try:
        json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as exc:
        raise TrainingError(f"TF_CONFIG is not valid JSON: {exc}") from None
    return tf.distribute.MultiWorkerMirroredStrategy(), "multi_worker"


def _tpu():
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as exc:
        raise TrainingError(f"strategy tpu: no TPU found ({exc})") from None
    return tf.distribute.TPUStrategy(resolver), "tpu"


_STRATEGIES = {
    "auto": _auto,
    "cpu": _cpu,
    "one_device": _one_device,
    "mirrored": _mirrored,
    "multi_worker": _multi_worker,
    "tpu": _tpu,
}


def resolve_strategy(name: str) -> Placement:
    strategy, resolved = _STRATEGIES[name]()
    return Placement(strategy, resolved, strategy.num_replicas_in_sync, _describe())


def resolve_precision(name: str, recurrent: bool) -> str:
    """`auto`: float32 on CPU; mixed_float16 on GPU, except for recurrent models, whose fused
    kernels do not all take reduced precision (bfloat16 fails in the JAX cuDNN RNN lowering)."""
    if name != "auto":
        return name
    if _devices("GPU") and not recurrent:
        return "mixed_float16"
    return "float32"
