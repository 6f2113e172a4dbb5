"""What each fuzz case ended in, counted per target (spec, data, serve)."""

from __future__ import annotations

from collections import Counter, defaultdict

OUTCOMES: defaultdict[str, Counter] = defaultdict(Counter)


def record(target: str, outcome: str) -> None:
    """`outcome`: `clean_error` or `accepted_valid`; a defect is a test failure instead."""
    OUTCOMES[target][outcome] += 1
