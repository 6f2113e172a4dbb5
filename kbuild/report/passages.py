"""A context with character spans marked (a QA question's reference answers and its prediction),
cut to windows around the marks when it is long, as the `Marked` pieces a `Passage` shows.

Spans may overlap (a prediction that holds the answer and more): the context is cut at every span
boundary and each piece names every span it lies in, so the page needs no nested or crossing marks.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from kbuild.report.content import Marked

LONG_CONTEXT = 600
"""Characters up to which a context is shown whole."""
MARGIN = 200
"""Characters of a long context shown on each side of a mark."""
SNAP = 24
"""How far a window's edge may move outwards to the nearest space, so it does not cut a word."""
GAP = Marked("…", ("gap",))


def marked_context(context: str, spans: Sequence[tuple[int, int, str]], long: int = LONG_CONTEXT,
                   margin: int = MARGIN) -> list[Marked]:
    """`context` as pieces, each with the names of the `(start, end, name)` spans (character
    offsets, end exclusive) it lies in; a context longer than `long` keeps `margin` characters
    around each span and shows a gap for the rest. Empty spans mark nothing."""
    spans = [(max(0, s), min(len(context), e), name) for s, e, name in spans if e > s]
    kept = _kept(context, spans, long, margin)
    cuts = sorted({0, len(context), *(p for s, e, _ in spans for p in (s, e)), *(p for a, b in kept for p in (a, b))})
    pieces: list[Marked] = []
    for a, b in itertools.pairwise(cuts):
        if not any(ka <= a and b <= kb for ka, kb in kept):
            if not pieces or pieces[-1] != GAP:
                pieces.append(GAP)
            continue
        marks = tuple(dict.fromkeys(name for s, e, name in spans if s <= a and b <= e))
        if pieces and pieces[-1].marks == marks and pieces[-1] != GAP:
            pieces[-1] = Marked(pieces[-1].text + context[a:b], marks)
        else:
            pieces.append(Marked(context[a:b], marks))
    return pieces


def _kept(context: str, spans: Sequence[tuple[int, int, str]], long: int, margin: int) -> list[tuple[int, int]]:
    """The merged character ranges shown: all of a short context; around each span of a long one
    (its beginning when nothing is marked)."""
    if len(context) <= long:
        return [(0, len(context))]
    ranges = [(_snap_left(context, s - margin), _snap_right(context, e + margin)) for s, e, _ in spans]
    if not ranges:
        ranges = [(0, _snap_right(context, 2 * margin))]
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _snap_left(context: str, position: int) -> int:
    if position <= 0:
        return 0
    space = context.rfind(" ", max(0, position - SNAP), position)
    return space + 1 if space >= 0 else position


def _snap_right(context: str, position: int) -> int:
    if position >= len(context):
        return len(context)
    space = context.find(" ", position, position + SNAP)
    return space if space >= 0 else position
