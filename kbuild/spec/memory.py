"""A lower bound on the memory a spec's weights need, to refuse absurd sizes before allocation.

An embedding `dim` of 20,000,000 or a `vocab_size` of 10^10 is a typo, not a model: built, it
either allocates until the machine swaps or ends in a one-line `ResourceExhaustedError` far from
the key that caused it. The estimate counts only weights that certainly exist (the token and
position tables, character features, one `in x out` matrix per block and per hidden head layer),
each held four times in float32 while training (weights, gradients and an optimizer's two slots),
so a spec refused here could never have trained on this machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kbuild.spec.root import Spec

BYTES_PER_WEIGHT = 4 * 4
"""float32, held as weights, gradients and two optimizer slots."""


def machine_memory() -> int | None:
    """Physical memory in bytes, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def weight_counts(spec: Spec) -> dict[tuple[str | int, ...], int]:
    """Spec key -> the weights (at least) that the key's size brings."""
    model, pre = spec.model, spec.preprocess
    embedding = model.embedding
    counts: dict[tuple[str | int, ...], int] = {
        ("preprocess", "tokenizer", "vocab_size"): pre.tokenizer.vocab_size * embedding.dim,
    }
    if embedding.position == "learned":
        counts[("preprocess", "max_length")] = pre.max_length * embedding.dim
    if embedding.chars is not None:
        chars = embedding.chars
        counts[("model", "embedding", "chars", "buckets")] = chars.buckets * chars.dim
        counts[("model", "embedding", "chars", "filters")] = chars.kernel_size * chars.dim * chars.filters
    dim = embedding.output_dim
    for i, block in enumerate(model.blocks):
        out = block.output_dim(dim)
        counts[("model", "blocks", i)] = dim * out  # input and output dims of this block
        dim = out
    for i, size in enumerate(model.head.hidden):
        counts[("model", "head", "hidden", i)] = dim * size
        dim = size
    return counts


def oversized(spec: Spec, available: int | None = None) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """One issue, at the key that contributes most, when the weights alone exceed `available`
    bytes (this machine's memory by default)."""
    available = machine_memory() if available is None else available
    if not available:
        return
    counts = weight_counts(spec)
    total = sum(counts.values()) * BYTES_PER_WEIGHT
    if total <= available:
        return
    key = max(counts, key=counts.__getitem__)
    share = counts[key] * BYTES_PER_WEIGHT
    sizes = _sizes(spec, key)
    yield key, (f"{sizes}needs at least {_gib(share)} for its weights while training ({counts[key]:,} "
                f"float32 weights x 4: weights, gradients, optimizer slots), {_gib(total)} for the whole model; "
                f"this machine has {_gib(available)}")


def _sizes(spec: Spec, key: tuple[str | int, ...]) -> str:
    """For a block or head layer, the dims it multiplies (its input comes from the keys above)."""
    if key[:2] != ("model", "blocks"):
        return "this size "
    dim = spec.model.embedding.output_dim
    for block in spec.model.blocks[: int(key[2])]:
        dim = block.output_dim(dim)
    return f"this block ({dim:,} in, {spec.model.blocks[int(key[2])].output_dim(dim):,} out; see model.embedding.dim) "


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"
