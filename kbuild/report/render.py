"""`build_report`: run, comparison or search folder -> one self-contained HTML file.

The page is Jinja2 (autoescaped) over the typed sections the section modules build; figures are
inline SVG; the CSS is inline; there is no script and no URL, so the file opens from disk in a
browser with JavaScript and network off.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from kbuild import __version__
from kbuild.errors import KbuildError
from kbuild.report.content import Section
from kbuild.report.loader import is_search_folder, load_run, load_search
from kbuild.report.sections import ReportOptions, run_sections

REPORT_FILE = "report.html"
_ENTITY_COLORS = ("#ffd8a8", "#b2f2bb", "#a5d8ff", "#eebefa", "#ffec99", "#ffc9c9", "#c5f6fa", "#d0bfff", "#e9ecef")


class ReportUsageError(KbuildError):
    exit_code = 2


@dataclass(frozen=True)
class Page:
    title: str
    subtitle: str
    sections: list[Section]


@dataclass(frozen=True)
class Report:
    """A written report: where, how big, how long it took, and its section ids in page order."""

    path: Path
    bytes: int
    seconds: float
    sections: list[str]


def build_report(paths: Sequence[str | os.PathLike], out: str | os.PathLike | None = None,
                 options: ReportOptions | None = None) -> Report:
    """Write the report of one run folder, several (a comparison) or one search folder.

    Args:
        paths: run folders (finished: spec.yaml, results.json, model.keras) or one search folder.
        out: the HTML file; default `report.html` inside the run or search folder (required for
            a comparison).
        options: how many examples, mistakes, sentences, ... (see `ReportOptions`).
    """
    started = time.perf_counter()
    options = options or ReportOptions()
    if not paths:
        raise ReportUsageError("pass at least one run folder (or a search folder)")
    searches = [p for p in paths if is_search_folder(p)]
    if searches and len(paths) > 1:
        raise ReportUsageError(f"{searches[0]}: a search folder is reported on its own; pass it alone")
    if len(paths) > 1 and out is None:
        raise ReportUsageError("a comparison of several runs needs --out FILE (e.g. --out compare.html)")
    page = _search_page(paths[0], options) if searches else (
        _run_page(paths[0], options) if len(paths) == 1 else _comparison_page(paths, options))
    target = Path(out) if out is not None else Path(paths[0]) / REPORT_FILE
    html = render_page(page)
    _write(target, html)
    return Report(target, len(html.encode("utf-8")), round(time.perf_counter() - started, 2),
                  [section.key for section in page.sections])


def _run_page(path, options: ReportOptions) -> Page:
    record = load_run(path)
    return Page(f"{record.name}: {record.task}", str(record.folder.path), run_sections(record, options))


def _comparison_page(paths, options: ReportOptions) -> Page:
    from kbuild.report.sections.compare import comparison_sections

    records = [load_run(path) for path in paths]
    return Page(f"Comparison of {len(records)} runs", ", ".join(r.label for r in records), comparison_sections(records))


def _search_page(path, options: ReportOptions) -> Page:
    from kbuild.report.sections.search import search_sections

    search = load_search(path)
    return Page(f"Search: {search.name}", f"{search.goal} {search.metric} over {len(search.trials)} trials",
                search_sections(search))


def render_page(page: Page) -> str:
    return _environment().get_template("report.html.j2").render(page=page, version=__version__)


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("kbuild.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["number"] = format_number
    environment.filters["entity_color"] = entity_color
    return environment


def format_number(value: float | int, decimals: int | None = None) -> str:
    """An int with thousands separators; a float to `decimals` places (4 by default: metrics),
    or 3 significant digits when huge or tiny, so a diverged loss or a learning rate stays readable."""
    if isinstance(value, int):
        return f"{value:,}"
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if decimals is None and value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:,.{4 if decimals is None else decimals}f}"


def entity_color(kind: str) -> str:
    """A stable colour per entity type (the same type, the same colour, in every report)."""
    return _ENTITY_COLORS[int(hashlib.md5(kind.encode()).hexdigest(), 16) % len(_ENTITY_COLORS)]


def _write(target: Path, html: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        raise KbuildError(f"cannot write {target}: {exc.strerror or exc}") from None
