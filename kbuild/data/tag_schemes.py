"""Tag schemes for sequence labelling: read IOB1, BIO (IOB2), BIOES or BMES tags, train on BIO,
BIOES or BMES.

Every input is first normalised to BIO: an `I-X` that does not continue an `X` entity starts one
(IOB1, CoNLL-2003's original scheme, only writes `B-X` between two adjacent `X` entities), `S-X`
becomes `B-X`, and `E-X` and `M-X` become `I-X`. BIO already in that form passes through unchanged,
so the same loader reads all four. BIOES is then derived from BIO, and BMES is BIOES with `M-` for
`I-` (the scheme of Chinese NER corpora such as Resume and Weibo). Plain Python, no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

SCHEMES = ("bio", "bioes", "bmes")
OUTSIDE = "O"
_PREFIXES = frozenset("BIEMS")
_INSIDE = frozenset("IEM")  # prefixes that continue an entity open before them


def split_tag(tag: str) -> tuple[str, str]:
    """`B-PER` -> (`B`, `PER`); `O` -> (`O`, ``). Raises ValueError for a tag of neither form."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, dash, kind = tag.partition("-")
    if not dash or prefix not in _PREFIXES or not kind:
        raise ValueError(f"tag {tag!r} is neither O nor PREFIX-TYPE with PREFIX one of B, I, M, E, S")
    return prefix, kind


def to_bio(tags: Sequence[str]) -> list[str]:
    """IOB1, BIO, BIOES or BMES tags -> BIO with the same entities."""
    out: list[str] = []
    open_type = None  # type of the entity the previous token left open, if any
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == OUTSIDE:
            out.append(OUTSIDE)
            open_type = None
            continue
        continues = prefix in _INSIDE and open_type == kind
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


def bio_to_bmes(tags: Sequence[str]) -> list[str]:
    """BIO -> BMES: BIOES with `M-` in place of `I-`."""
    return [f"M-{tag[2:]}" if tag.startswith("I-") else tag for tag in bio_to_bioes(tags)]


_FROM_BIO = {"bio": list, "bioes": bio_to_bioes, "bmes": bio_to_bmes}


def convert(tags: Sequence[str], scheme: str) -> list[str]:
    """Tags in any accepted scheme -> `scheme` (`bio`, `bioes` or `bmes`)."""
    if scheme not in SCHEMES:
        raise ValueError(f"Expected scheme in {SCHEMES}; received {scheme!r}")
    return _FROM_BIO[scheme](to_bio(tags))
