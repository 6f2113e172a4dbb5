"""Turn pydantic's validation errors into user-facing (key path, message) pairs.

pydantic reports locations that include union-member and discriminator names
(`model.blocks.0.transformer_encoder.heads`); users wrote `model.blocks.0.heads`. We walk the
user's data alongside the location to drop those, and the spec's types to suggest keys.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

from kbuild.registry import did_you_mean
from kbuild.spec.source import Path_

# Keys whose value picks a union member: blocks and tokenizers by `type`, search spaces by `space`.
_TAG_KEYS = ("type", "space")


def describe_error(error: dict, data: Any) -> tuple[Path_, str]:
    """(key path as the user wrote it, message) for one pydantic error dict."""
    path = _user_path(tuple(error["loc"]), data)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    received = error.get("input")
    if kind == "extra_forbidden":
        key = path[-1]
        allowed = _allowed_keys(path[:-1], data)
        hint = did_you_mean(str(key), allowed) if allowed else ""
        expected = f"; expected one of: {', '.join(allowed)}" if allowed and not hint else ""
        return path, f'unknown key "{key}"{hint}{expected}'
    if kind == "missing":
        return path, f'missing required key "{path[-1]}"'
    if kind == "literal_error":
        choices = [c.strip().strip("'") for c in ctx.get("expected", "").replace(" or ", ", ").split(",")]
        return path, f"expected one of: {', '.join(choices)}; received {received!r}{did_you_mean(str(received), choices)}"
    if kind == "union_tag_invalid":
        choices = [c.strip().strip("'") for c in ctx.get("expected_tags", "").split(",")]
        tag, key = ctx.get("tag"), ctx.get("discriminator", "'type'").strip("'")
        return (*path, key), f"unknown {key} {tag!r}{did_you_mean(str(tag), choices)}; expected one of: {', '.join(choices)}"
    if kind == "union_tag_not_found":
        return path, f"missing `{ctx.get('discriminator', 'type').strip(chr(39))}` key"
    if kind in ("model_type", "dict_type") and not isinstance(received, dict):
        return path, f"expected a mapping of keys; received {received!r}"
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind != "value_error" and not isinstance(received, dict | list):
        message += f"; received {received!r}"
    return path, message


def _user_path(loc: Path_, data: Any) -> Path_:
    """Drop the parts of a pydantic location that are not keys of the user's data."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict | list):
            # A union member or discriminator tag ("transformer_encoder", "dict[str,float]"), or a
            # missing key (kept so the message can name it). Tags are not keys of the user's data.
            if isinstance(node, dict) and _is_field_name(part) and part not in (node.get(k) for k in _TAG_KEYS):
                out.append(part)
                node = None
        else:
            break
    return tuple(out)


def _is_field_name(part: str | int) -> bool:
    return isinstance(part, str) and part.isidentifier()


def _allowed_keys(path: Path_, data: Any) -> list[str]:
    """Field names of the spec section at `path` (resolving unions by the data's `type`)."""
    from kbuild.spec.root import Spec

    tp: Any = Spec
    node = data
    for part in path:
        model = _as_model(tp, node)
        if model is not None and isinstance(part, str) and part in model.model_fields:
            tp = model.model_fields[part].annotation
        elif isinstance(part, int):
            tp = _list_item(tp)
        elif _mapping_value(tp) is not None:  # a key of a dict field (search.parameters.<path>)
            tp = _mapping_value(tp)
        else:
            return []
        node = node[part] if isinstance(node, dict | list) else None
    model = _as_model(tp, node)
    return list(model.model_fields) if model else []


def _members(tp: Any) -> tuple:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return tuple(m for arg in typing.get_args(tp) for m in _members(arg))
    return (tp,)


def _as_model(tp: Any, node: Any) -> type[BaseModel] | None:
    models = [m for m in _members(tp) if isinstance(m, type) and issubclass(m, BaseModel)]
    if len(models) > 1 and isinstance(node, dict):
        tagged = [m for m in models if any(k in m.model_fields and _tag(m, k) == node.get(k) for k in _TAG_KEYS)]
        models = tagged or models[:1]
    return models[0] if models else None


def _tag(model: type[BaseModel], key: str) -> Any:
    """The tag value of a union member: its field's default, or its one-value Literal."""
    field = model.model_fields[key]
    args = typing.get_args(field.annotation)
    return args[0] if typing.get_origin(field.annotation) is typing.Literal and len(args) == 1 else field.default


def _mapping_value(tp: Any) -> Any:
    for member in _members(tp):
        if typing.get_origin(member) is dict:
            return typing.get_args(member)[1]
    return None


def _list_item(tp: Any) -> Any:
    for member in _members(tp):
        if typing.get_origin(member) is list:
            return typing.get_args(member)[0]
    return None
