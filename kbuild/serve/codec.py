"""TF Serving's predict request and response bodies <-> named numpy batches.

Request: `{"instances": [...]}` (row format: one entry per example; an entry is a bare value when
the signature has one input, else an object keyed by input name) or `{"inputs": ...}` (columnar:
a batch, or an object of batches keyed by input name); optional `signature_name`.
Response: `{"predictions": [...]}` for rows, `{"outputs": ...}` for columns; a signature with one
output gives bare values instead of objects, as TF Serving does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from kbuild.serve.repository import DEFAULT_SIGNATURE, Signature, TensorInfo


class BadRequest(Exception):
    """The request cannot be served as sent (HTTP 400)."""


@dataclass
class PredictRequest:
    signature_name: str
    batch: dict[str, np.ndarray]
    rows: bool  # answer in row format (request used "instances")

    @property
    def size(self) -> int:
        return batch_size(self.batch)


def batch_size(batch: dict[str, np.ndarray]) -> int:
    """Instances in a batch: the length of its batched inputs (scalar inputs, such as a language
    model's `max_new_tokens`, apply to the whole request)."""
    return next((len(value) for value in batch.values() if value.ndim > 0), 1)


MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects a request may have: the deepest real request (an object
of instances of token-id rows) is 4; a bound keeps the parser and the shape checks off Python's
recursion limit."""
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


class UnsupportedMediaType(Exception):
    """A body that is not JSON, or not UTF-8 (HTTP 415)."""


_LENIENT_MEDIA = ("application/json", "text/json", "application/x-www-form-urlencoded", "text/plain")
"""Media types taken as JSON: JSON's own, and what `curl -d` and urllib send by default (TF
Serving ignores the header, and its documented `curl -d` requests must keep working)."""


def check_content_type(content_type: str | None) -> None:
    """Bodies are UTF-8 JSON: refuse another declared media type (XML, form uploads, binary) or
    a charset other than UTF-8; none declared is taken as JSON."""
    if not content_type:
        return
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media not in _LENIENT_MEDIA and not media.endswith("+json"):
        raise UnsupportedMediaType(f"content-type {media!r} is not supported; send application/json (UTF-8)")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(f"charset {value.strip()!r} is not supported; send UTF-8 JSON")


def json_depth(body: bytes) -> int:
    """The deepest nesting of `[`/`{` outside strings, counted without recursion."""
    brackets = np.frombuffer(_JSON_STRING.sub(b'""', body), dtype=np.uint8)
    steps = (brackets == ord("[")).astype(np.int32) + (brackets == ord("{")) - (brackets == ord("]")) - (brackets == ord("}"))
    return int(np.cumsum(steps).max(initial=0))


def parse_body(body: bytes) -> dict:
    """The request object of a UTF-8 JSON body: 400 for anything else, bad Unicode and nesting past
    `MAX_JSON_DEPTH` included (json would accept UTF-16 and lone surrogates, which then fail deep
    inside the model as a 500)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8: byte {body[exc.start]:#04x} at offset {exc.start}") from None
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise BadRequest(f"JSON nested {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None
    _check_unicode(data)
    if not isinstance(data, dict):
        raise BadRequest(f"expected a JSON object with \"instances\" or \"inputs\"; received {type(data).__name__}")
    return data


def _check_unicode(data: Any) -> None:
    """Refuse strings that are not valid Unicode (a JSON-escaped lone surrogate, `"\\ud800"`)."""
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise BadRequest(f"string {node[:40]!r} is not valid Unicode: lone surrogate "
                                 f"\\u{ord(node[exc.start]):04x}") from None
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def signature_name(data: dict) -> str:
    name = data.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(name, str):
        raise BadRequest("\"signature_name\" must be a string")
    return name


def decode_predict(data: dict, signature: Signature, max_batch_size: int) -> PredictRequest:
    """Validate `data` against `signature` and turn it into numpy batches."""
    unknown = set(data) - {"instances", "inputs", "signature_name"}
    if unknown:
        raise BadRequest(f"unknown request keys: {', '.join(sorted(unknown))} (expected \"instances\" or \"inputs\")")
    if ("instances" in data) == ("inputs" in data):
        raise BadRequest("send exactly one of \"instances\" (row format) or \"inputs\" (columnar format)")
    rows = "instances" in data
    scalars = [name for name, info in signature.inputs.items() if info.shape == ()]
    if rows and scalars:
        raise BadRequest(f"input {scalars[0]!r} is one value for the whole request, not one per instance: "
                         "send the request in the columnar format (\"inputs\")")
    columns = _columns_from_rows(data["instances"], signature) if rows else _columns(data["inputs"], signature)
    batch = {name: _array(name, values, signature.inputs[name]) for name, values in columns.items()}
    sizes = {len(a) for a in batch.values() if a.ndim > 0}
    if len(sizes) != 1:
        raise BadRequest(f"inputs have different batch sizes: {sorted(sizes)}")
    size = sizes.pop()
    if size == 0:
        raise BadRequest("empty batch: send at least one instance")
    if size > max_batch_size:
        raise BadRequest(f"batch of {size} instances exceeds the limit of {max_batch_size} per request")
    return PredictRequest(signature.name, batch, rows)


def _columns_from_rows(instances: Any, signature: Signature) -> dict[str, list]:
    if not isinstance(instances, list):
        raise BadRequest(f"\"instances\" must be a list; received {type(instances).__name__}")
    names = list(signature.inputs)
    if len(names) == 1 and not any(isinstance(row, dict) for row in instances):
        return {names[0]: instances}
    columns: dict[str, list] = {name: [] for name in names}
    for i, row in enumerate(instances):
        if not isinstance(row, dict):
            raise BadRequest(f"instance {i}: expected an object with keys {names}; received {json.dumps(row)[:80]}")
        _check_fields(f"instance {i}: expected an object with keys {names}", row, names)
        for name in names:
            columns[name].append(row[name])
    return columns


def _columns(inputs: Any, signature: Signature) -> dict[str, Any]:
    names = list(signature.inputs)
    if not isinstance(inputs, dict):
        if len(names) != 1:
            raise BadRequest(f"\"inputs\" must be an object with keys {names}")
        return {names[0]: inputs}
    _check_fields(f"\"inputs\" must have exactly the keys {names}", inputs, names)
    return inputs


def _check_fields(where: str, given: dict, names: list[str]) -> None:
    """400 naming the first missing or extra field of a row or of the columnar inputs."""
    missing = [name for name in names if name not in given]
    extra = sorted(str(key) for key in given if key not in names)
    if missing or extra:
        problem = f"missing field {missing[0]!r}" if missing else f"unknown field {extra[0]!r}"
        raise BadRequest(f"{where}: {problem}")


_LEAF_TYPES = {
    "string": (str,),
    "bool": (bool,),
}


def _array(name: str, values: Any, info: TensorInfo) -> np.ndarray:
    """`values` as an array of the input's dtype and shape, or a BadRequest saying what is wrong."""
    if info.shape == ():
        if isinstance(values, list) or not _accepts(info.dtype, values):
            raise BadRequest(f"input {name!r}: expected one {info.dtype} value; received {json.dumps(values)[:80]}")
        return np.array(values, dtype=object if info.dtype == "string" else info.dtype)
    if not isinstance(values, list):
        raise BadRequest(f"input {name!r}: expected a list (the batch); received {type(values).__name__}")
    shape = _shape(name, values)
    if len(shape) != len(info.shape) or any(want is not None and got != want for got, want in zip(shape, info.shape, strict=True)):
        expected = "[" + ", ".join("batch" if i == 0 else ("?" if d is None else str(d)) for i, d in enumerate(info.shape)) + "]"
        raise BadRequest(f"input {name!r}: expected shape {expected}; received {list(shape)}")
    leaves = _flatten(values)
    bad = [leaf for leaf in leaves if not _accepts(info.dtype, leaf)]
    if bad:
        raise BadRequest(f"input {name!r}: expected {info.dtype} values; received {json.dumps(bad[0])[:80]}")
    if info.dtype == "string":
        return np.array(values, dtype=object).reshape(shape)
    return np.array(values, dtype=info.dtype)


def _shape(name: str, values: Any) -> tuple[int, ...]:
    if not isinstance(values, list):
        return ()
    inner = {_shape(name, v) for v in values}
    if len(inner) > 1:
        raise BadRequest(f"input {name!r}: ragged nesting (entries of different shapes)")
    return (len(values), *(inner.pop() if inner else ()))


def _flatten(values: Any) -> list:
    if isinstance(values, list):
        return [leaf for v in values for leaf in _flatten(v)]
    return [values]


def _accepts(dtype: str, leaf: Any) -> bool:
    if dtype in _LEAF_TYPES:
        return isinstance(leaf, _LEAF_TYPES[dtype])
    if isinstance(leaf, bool):
        return False
    if dtype.startswith(("int", "uint")):
        return isinstance(leaf, int)
    return isinstance(leaf, int | float)


def encode_predict(outputs: dict[str, np.ndarray], rows: bool) -> dict:
    """Named output batches -> TF Serving's response body."""
    columns = {name: _jsonable(value) for name, value in outputs.items()}
    single = next(iter(columns.values())) if len(columns) == 1 else None
    if not rows:
        return {"outputs": single if single is not None else columns}
    if single is not None:
        return {"predictions": single}
    size = len(next(iter(columns.values())))
    return {"predictions": [{name: column[i] for name, column in columns.items()} for i in range(size)]}


def _jsonable(value: np.ndarray) -> Any:
    if value.dtype == object or value.dtype.kind == "S":
        return np.vectorize(lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes) else b, otypes=[object])(value).tolist()
    return value.tolist()
