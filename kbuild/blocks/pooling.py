"""Pooling: [batch, time, dim] -> [batch, dim], respecting the padding mask.

Each entry names a layer in `kbuild.layers`; `cls` also asks the preprocessor for a start token,
so the first position is a real summary token rather than whichever word came first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kbuild.registry import Registry


@dataclass(frozen=True)
class Pooling:
    mode: str
    needs_start_token: bool = False

    def build(self, x: Any, name: str = "pooling") -> Any:
        from kbuild import layers

        if self.mode == "attention":
            return layers.AttentionPooling(name=name)(x)
        return layers.MaskedPooling(self.mode, name=name)(x)


POOLINGS: Registry[Pooling] = Registry("pooling")
for _pooling in (
    Pooling("mean"),
    Pooling("max"),
    Pooling("sum"),
    Pooling("last"),
    Pooling("cls", needs_start_token=True),
    Pooling("attention"),
):
    POOLINGS.register(_pooling.mode)(_pooling)
