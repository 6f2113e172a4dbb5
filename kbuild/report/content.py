"""What a report is made of, independent of how it is drawn: sections holding blocks (text,
tables, figures with their numbers, code, highlighted sentences). Sections build these; the
Jinja2 templates render each block kind (templates/blocks/<kind>.html.j2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Table:
    """A table of numbers or text; a float cell is shown rounded and kept exact in `data-value`."""

    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    decimals: dict[str, int] = field(default_factory=dict)
    """column -> decimals shown for its floats (durations, rates); 4 otherwise."""
    kind: ClassVar[str] = "table"


@dataclass(frozen=True)
class Figure:
    """An inline SVG figure, its caption, and the numbers it draws (a collapsible table)."""

    svg: str
    caption: str
    table: Table
    kind: ClassVar[str] = "figure"


@dataclass(frozen=True)
class Text:
    text: str
    kind: ClassVar[str] = "text"


@dataclass(frozen=True)
class Code:
    """Preformatted text (the resolved spec), collapsible under `summary`."""

    text: str
    summary: str
    kind: ClassVar[str] = "code"


@dataclass(frozen=True)
class Span:
    """A run of tokens; `entity` names its type when the tokens form one."""

    text: str
    entity: str | None = None


@dataclass(frozen=True)
class Sentence:
    """One tagged sentence, gold and predicted, as spans of tokens."""

    gold: list[Span]
    predicted: list[Span]
    correct: bool


@dataclass(frozen=True)
class Sentences:
    """Sentences with their gold and predicted entities highlighted."""

    sentences: list[Sentence]
    caption: str
    kind: ClassVar[str] = "sentences"


@dataclass(frozen=True)
class Marked:
    """A run of a passage's text; `marks` names the answers it is part of (`gold`, `predicted`,
    both, or none), or is `("gap",)` for a part of a long passage left out."""

    text: str
    marks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Passage:
    """One question over its context: the reference answer(s) and the model's answer, listed and
    marked in the context (a window around the marks when the context is long)."""

    question: str
    references: list[str]
    prediction: str
    f1: float
    score: float
    context: list[Marked]


@dataclass(frozen=True)
class Passages:
    """Questions with their answers marked in the context."""

    passages: list[Passage]
    caption: str
    kind: ClassVar[str] = "passages"


Block = Table | Figure | Text | Code | Sentences | Passages


@dataclass
class Section:
    """One titled part of the page; `key` is its HTML id (tests and the table of contents use it)."""

    key: str
    title: str
    blocks: list[Block] = field(default_factory=list)
