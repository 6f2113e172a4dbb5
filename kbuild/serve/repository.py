"""The models a server holds: every version of every model under one export root.

    EXPORT_ROOT/NAME/<version>/saved_model.pb     several models, each with its versions
    EXPORT_ROOT/<version>/saved_model.pb          or one model, named after the folder

A version is a SavedModel, or a chat model's TFLite export (model.tflite with metadata.json's
`generator` section), served through `kbuild.exporter.tflite_generator.TfliteChat` under the
SavedModel's signature names and tensors (`serving_default`: text -> reply; `generate`). A TFLite
classifier export is not served: its tokenizer is not a graph a server can run.

Loading imports only `tensorflow` and `tensorflow_text` (which registers the tf-text ops a
tokenizer may have put in the graph), and for a TFLite export TFLite's interpreter and numpy: no
Keras model code runs in a server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kbuild.errors import KbuildError
from kbuild.exporter.layout import METADATA, SAVED_MODEL, versions
from kbuild.exporter.tflite_generator import is_generator_export

DEFAULT_SIGNATURE = "serving_default"


class NotFound(KbuildError):
    """An unknown model, version or signature (HTTP 404)."""


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # numpy-style name: "string", "float32", "int32", "bool", ...
    shape: tuple[int | None, ...]  # the first axis is the batch


@dataclass
class Signature:
    """One callable signature: named numpy batches in, named numpy batches out."""

    name: str
    function: Any
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        tensors = {name: tf.constant(batch[name], dtype=_tf_dtype(info.dtype)) for name, info in self.inputs.items()}
        return {name: value.numpy() for name, value in self.function(**tensors).items()}


@dataclass
class NumpySignature(Signature):
    """A signature whose function maps named numpy batches to named numpy batches itself (a TFLite export's)."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.function({name: batch[name] for name in self.inputs})


@dataclass
class ModelVersion:
    name: str
    version: int
    path: Path
    signatures: dict[str, Signature]
    metadata: dict = field(default_factory=dict)
    handle: Any = None  # the loaded SavedModel: keeps its variables and tables alive


@dataclass
class Repository:
    """The versions being served, by model name. `kbuild.serve.versions.refresh` replaces
    `models` as a whole (one assignment), so a request sees either the old set or the new one."""

    models: dict[str, dict[int, ModelVersion]]
    root: Path | None = None
    """The export folder it was loaded from, polled for new versions; None: fixed."""
    policy: str = "all"
    """Which complete versions to serve: a name in `kbuild.serve.versions.VERSION_POLICIES`."""

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        found = self.models.get(name)
        if not found:
            known = ", ".join(sorted(self.models)) or "none"
            raise NotFound(f"model {name!r} not found (serving: {known})")
        if version is None:
            return found[max(found)]
        if version not in found:
            raise NotFound(f"model {name!r} has no version {version} (versions: {', '.join(map(str, sorted(found)))})")
        return found[version]

    def all_versions(self) -> list[ModelVersion]:
        return [v for versions_ in self.models.values() for v in versions_.values()]


def load_repository(root: str | Path, policy: str = "all") -> Repository:
    """Load the versions of every model under `root` that `policy` ("all" or "latest", as TF
    Serving's model_version_policy) selects; a broken version fails start-up, naming it."""
    from kbuild.serve.versions import wanted_versions

    root = Path(root)
    if not root.is_dir():
        raise KbuildError(f"{root}: no such export folder")
    found = wanted_versions(root, policy)
    models = {name: {n: load_version(name, n, path) for n, path in paths.items()} for name, paths in found.items()}
    if not models:
        raise KbuildError(f"{root}: no exports a server can load found (expected {root}/NAME/<version>/{SAVED_MODEL}, "
                          "or a chat model's TFLite export)")
    return Repository(models, root, policy)


def servable_versions(model_root: Path) -> dict[int, Path]:
    """The complete versions under one model's folder that a server loads (see `exporter.layout.versions`)."""
    return {n: p for n, p in versions(model_root).items() if _loader(p) is not None}


def load_version(name: str, version: int, path: Path) -> ModelVersion:
    load = _loader(path)
    if load is None:
        raise KbuildError(f"{path}: neither a SavedModel nor a chat model's TFLite export")
    signatures, handle = load(path)
    return ModelVersion(name, version, path, signatures, _metadata(path), handle)


def _load_savedmodel(path: Path) -> tuple[dict[str, Signature], Any]:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers tf-text ops the graph may hold)

    try:
        handle = tf.saved_model.load(str(path))
    except Exception as exc:
        raise KbuildError(f"{path}: cannot load the SavedModel: {exc}") from None
    return {key: _signature(key, fn) for key, fn in handle.signatures.items()}, handle


def _load_generator(path: Path) -> tuple[dict[str, Signature], Any]:
    """A TFLite chat export under the SavedModel chat export's signatures (kbuild.tasks.chat)."""
    from kbuild.exporter.tflite_generator import TfliteChat

    try:
        chat = TfliteChat(path)
    except Exception as exc:
        raise KbuildError(f"{path}: cannot load the TFLite chat export: {exc}") from None
    text = TensorInfo("string", (None,))
    signatures = [NumpySignature(DEFAULT_SIGNATURE, chat.serve, {"text": text}, {"reply": text}),
                  NumpySignature("generate", chat.generate, {"prompt": text, "max_new_tokens": TensorInfo("int32", ())},
                                 {"completion": text, "text": text})]
    return {signature.name: signature for signature in signatures}, chat


_LOADERS = ((lambda path: (path / SAVED_MODEL).is_file(), _load_savedmodel), (is_generator_export, _load_generator))
"""(does a version folder hold this kind of export, load it): the first that recognises a folder loads it."""


def _loader(path: Path) -> Any:
    return next((load for recognises, load in _LOADERS if recognises(path)), None)


def _metadata(path: Path) -> dict:
    metadata_path = path / METADATA
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8")) if metadata_path.is_file() else {}
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise KbuildError(f"{metadata_path}: not readable as JSON ({exc}); re-export the run (kbuild export RUN)") from None
    return metadata


def _signature(name: str, function: Any) -> Signature:
    _, kwargs = function.structured_input_signature
    inputs = {key: _info(spec) for key, spec in kwargs.items()}
    outputs = {key: _info(tensor) for key, tensor in function.structured_outputs.items()}
    return Signature(name, function, inputs, outputs)


def _info(tensor: Any) -> TensorInfo:
    shape = tuple(tensor.shape.as_list()) if tensor.shape.rank is not None else (None,)
    return TensorInfo(tensor.dtype.name, shape)


def _tf_dtype(name: str) -> Any:
    import tensorflow as tf

    return tf.dtypes.as_dtype(name)
