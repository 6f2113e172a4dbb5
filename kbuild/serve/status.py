"""TF Serving's model status and metadata bodies for one model version."""

from __future__ import annotations

from kbuild.serve.repository import ModelVersion, TensorInfo

_DTYPES = {"string": "DT_STRING", "float32": "DT_FLOAT", "float64": "DT_DOUBLE", "int32": "DT_INT32",
           "int64": "DT_INT64", "bool": "DT_BOOL", "float16": "DT_HALF", "int8": "DT_INT8", "uint8": "DT_UINT8"}
_KBUILD_KEYS = ("kbuild_version", "format", "task", "labels", "max_length", "batch_limit", "spec_hash", "metrics")


def version_status(model: ModelVersion) -> dict:
    return {"version": str(model.version), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}


def model_metadata(model: ModelVersion) -> dict:
    """Signatures in TF Serving's `signature_def` form, plus kbuild's metadata (labels, task,
    metrics) when the export has a metadata.json."""
    signatures = {
        sig.name: {
            "inputs": {name: _tensor(name, info) for name, info in sig.inputs.items()},
            "outputs": {name: _tensor(name, info) for name, info in sig.outputs.items()},
            "method_name": "tensorflow/serving/predict",
        }
        for sig in model.signatures.values()
    }
    body = {
        "model_spec": {"name": model.name, "signature_name": "", "version": str(model.version)},
        "metadata": {"signature_def": {"signature_def": signatures}},
    }
    if model.metadata:
        body["kbuild"] = {key: model.metadata[key] for key in _KBUILD_KEYS if key in model.metadata}
    return body


def _tensor(name: str, info: TensorInfo) -> dict:
    return {
        "dtype": _DTYPES.get(info.dtype, f"DT_{info.dtype.upper()}"),
        "tensor_shape": {"dim": [{"size": str(-1 if d is None else d), "name": ""} for d in info.shape], "unknown_rank": False},
        "name": name,
    }
