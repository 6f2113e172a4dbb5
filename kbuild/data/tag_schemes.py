"""Tag schemes for sequence labelling: read IOB1, BIO (IOB2) or BIOES tags, train on BIO or BIOES.

Every input is first normalised to BIO: an `I-X` that does not continue an `X` entity starts one
(IOB1, CoNLL-2003's original scheme, only writes `B-X` between two adjacent `X` entities), `S-X`
becomes `B-X` and `E-X` becomes `I-X`. BIO already in that form passes through unchanged, so the
same loader reads all three. BIOES is then derived from BIO. Plain Python, no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

SCHEMES = ("bio", "bioes")
OUTSIDE = "O"
_PREFIXES = frozenset("BIES")


def split_tag(tag: str) -> tuple[str, str]:
    """`B-PER` -> (`B`, `PER`); `O` -> (`O`, ``). Raises ValueError for a tag of neither form."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, dash, kind = tag.partition("-")
    if not dash or prefix not in _PREFIXES or not kind:
        raise ValueError(f"tag {tag!r} is neither O nor PREFIX-TYPE with PREFIX one of B, I, E, S")
    return prefix, kind


def to_bio(tags: Sequence[str]) -> list[str]:
    """IOB1, BIO or BIOES tags -> BIO with the same entities."""
    out: list[str] = []
    open_type = None  # type of the entity the previous token left open, if any
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == OUTSIDE:
            out.append(OUTSIDE)
            open_type = None
            continue
        continues = prefix in ("I", "E") and open_type == kind
        out.append(f"{'I' if continues else 'B'}-{kind}")
        open_type = None if prefix in ("E", "S") else kind
    return out


def bio_to_bioes(tags: Sequence[str]) -> list[str]:
    """BIO -> BIOES: single-token entities become `S-`, last tokens of longer ones `E-`."""
    out = []
    for i, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        if prefix == OUTSIDE:
            out.append(OUTSIDE)
            continue
        following = tags[i + 1] if i + 1 < len(tags) else OUTSIDE
        continued = following == f"I-{kind}"
        if prefix == "B":
            out.append(f"B-{kind}" if continued else f"S-{kind}")
        else:
            out.append(f"I-{kind}" if continued else f"E-{kind}")
    return out


def convert(tags: Sequence[str], scheme: str) -> list[str]:
    """Tags in any accepted scheme -> `scheme` (`bio` or `bioes`)."""
    if scheme not in SCHEMES:
        raise ValueError(f"Expected scheme in {SCHEMES}; received {scheme!r}")
    bio = to_bio(tags)
    return bio_to_bioes(bio) if scheme == "bioes" else bio
