"""Read back a kbuild report with the standard library's HTML parser: its sections, the cells of
its tables (with their exact `data-value`), its figures and every URL it references."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class ParsedTable:
    section: str
    caption: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    """Each cell's data-value when it has one (the exact number), else its text."""

    def cell(self, row_name: str, column: str) -> str:
        index = self.columns.index(column)
        return next(row[index] for row in self.rows if row[0] == row_name)


@dataclass
class ParsedFigure:
    section: str
    has_svg: bool = False
    caption: str = ""
    has_table: bool = False


class ReportParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections: list[str] = []
        self.tables: list[ParsedTable] = []
        self.figures: list[ParsedFigure] = []
        self.urls: list[str] = []
        self.tags: set[str] = set()
        self.marks: list[str] = []
        self.mark_classes: list[str] = []
        """The class attribute of each of `marks`, in the same order."""
        self._text: list[str] | None = None
        self._cell_value: str | None = None
        self._row: list[str] | None = None
        self._in_head = False
        self._figure: ParsedFigure | None = None

    @property
    def section(self) -> str:
        return self.sections[-1] if self.sections else ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        for name in ("src", "href", "xlink:href", "action", "srcset", "poster", "data"):
            if attrs.get(name):
                self.urls.append(attrs[name])
        if tag == "section":
            self.sections.append(attrs.get("id", ""))
        elif tag == "figure":
            self._figure = ParsedFigure(self.section)
            self.figures.append(self._figure)
        elif tag == "svg" and self._figure is not None:
            self._figure.has_svg = True
        elif tag == "table":
            self.tables.append(ParsedTable(self.section))
            if self._figure is not None:
                self._figure.has_table = True
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr" and not self._in_head:
            self._row = []
        elif tag in ("th", "td", "caption", "figcaption", "mark"):
            self._text, self._cell_value = [], attrs.get("data-value")
            if tag == "mark":
                self.mark_classes.append(attrs.get("class") or "")

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_head = False
        elif tag == "figure":
            self._figure = None
        elif tag in ("th", "td", "caption", "figcaption", "mark") and self._text is not None:
            text = "".join(self._text).strip()
            if tag == "caption":
                self.tables[-1].caption = text
            elif tag == "figcaption" and self._figure is not None:
                self._figure.caption = text
            elif tag == "mark":
                self.marks.append(text)
            elif self._in_head:
                self.tables[-1].columns.append(text)
            elif self._row is not None:
                self._row.append(self._cell_value if self._cell_value is not None else text)
            self._text = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


def parse_report(path) -> ReportParser:
    parser = ReportParser()
    parser.feed(open(path, encoding="utf-8").read())
    return parser
