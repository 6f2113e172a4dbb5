"""The dense head every task puts under its output layer: hidden layers and dropout from
`model.head`, with fixed layer names so saved models stay loadable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kbuild.blocks.pooling import POOLINGS

if TYPE_CHECKING:
    from kbuild.spec import Spec


def dense_head(x: Any, spec: Spec) -> Any:
    """`model.head.hidden` dense layers, each after dropout, then dropout before the output."""
    import keras

    head = spec.model.head
    for i, units in enumerate(head.hidden):
        if head.dropout:
            x = keras.layers.Dropout(head.dropout, seed=spec.seed + i, name=f"head_dropout{i}")(x)
        x = keras.layers.Dense(units, activation=head.activation, name=f"head_dense{i}")(x)
    if head.dropout:
        x = keras.layers.Dropout(head.dropout, seed=spec.seed + 99, name="head_dropout_out")(x)
    return x


def pooled_head(features: Any, spec: Spec) -> Any:
    """Pool the sequence as `model.pooling` says, then the dense head (per-text tasks)."""
    return dense_head(POOLINGS.get(spec.model.pooling).build(features), spec)


def pooling_issues(spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """The last block's objection to `model.pooling`, for the tasks that pool (`pooled_head`)."""
    if spec.model.blocks and (message := spec.model.blocks[-1].pooling_issue(spec.model.pooling)):
        yield ("model", "pooling"), message
