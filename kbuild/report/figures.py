"""Matplotlib figures as inline SVG strings: the report's only drawing code.

Figures are drawn on `matplotlib.figure.Figure` objects directly (no pyplot, no global backend
state, nothing shown on screen) and saved as SVG with text kept as text, so the page stays small,
sharp at any zoom, and needs no font file or network. The hash salt is fixed so the same numbers
give the same bytes.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # if anything does reach pyplot, it must never need a display

from matplotlib.figure import Figure as MplFigure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

_STYLE = {
    "svg.fonttype": "none",
    "svg.hashsalt": "kbuild-report",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
}
TRAIN_COLOR, VALID_COLOR, ACCENT = "#1f77b4", "#d62728", "#2ca02c"
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class Curve:
    """One line: a label and its points."""

    label: str
    x: Sequence[float]
    y: Sequence[float]


@dataclass(frozen=True)
class Panel:
    """One small plot of a grid: its title and its curves."""

    title: str
    curves: list[Curve]


def to_svg(figure: MplFigure) -> str:
    """The figure as an `<svg>` element (no XML prolog), scaled by CSS to the page width."""
    buffer = io.StringIO()
    with matplotlib.rc_context(_STYLE):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    # Drop the prolog (its DTD URL) and the RDF metadata block: bytes that draw nothing, and URLs
    # a reader of the page should not have to wonder about. What stays are namespace names.
    return _METADATA.sub("", text[text.index("<svg"):])


def _figure(width: float, height: float) -> MplFigure:
    with matplotlib.rc_context(_STYLE):
        return MplFigure(figsize=(width, height), layout="constrained")


def _grid(figure: MplFigure, count: int, columns: int = 3):
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    with matplotlib.rc_context(_STYLE):
        axes = figure.subplots(rows, columns, squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[count:]:
        ax.set_visible(False)
    return flat[:count]


def panels(panels: list[Panel], xlabel: str, marker: float | None = None, marker_label: str = "",
           log_titles: Sequence[str] = ()) -> str:
    """A grid of line plots sharing an x axis meaning (epochs, usually); `marker` draws a dashed
    vertical line (the best epoch) on each; titles in `log_titles` get a log y axis."""
    columns = min(3, len(panels))
    figure = _figure(3.2 * columns, 2.4 * math.ceil(len(panels) / columns))
    for ax, panel in zip(_grid(figure, len(panels), columns), panels, strict=True):
        with matplotlib.rc_context(_STYLE):
            for index, curve in enumerate(panel.curves):
                ax.plot(curve.x, curve.y, marker="o", markersize=3, label=curve.label,
                        color=_PALETTE[index % len(_PALETTE)])
            if marker is not None:
                ax.axvline(marker, color="#555", linestyle="--", linewidth=1, label=marker_label or None)
            if panel.title in log_titles:
                ax.set_yscale("log")
            ax.set_title(panel.title)
            ax.set_xlabel(xlabel)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(fontsize=7)
    return to_svg(figure)


def heatmap(matrix: Sequence[Sequence[float]], rows: Sequence[str], columns: Sequence[str], title: str,
            xlabel: str, ylabel: str, fmt: str = "{:.0f}") -> str:
    """A matrix with each cell's value written in it (confusion matrices)."""
    size = max(len(rows), len(columns))
    side = min(max(2.6, 0.45 * size + 1.6), 9.0)
    figure = _figure(side + 0.8, side)
    with matplotlib.rc_context(_STYLE):
        ax = figure.subplots()
        ax.grid(False)
        image = ax.imshow(matrix, cmap="Blues", aspect="auto")
        figure.colorbar(image, ax=ax, shrink=0.8)
        ax.set_xticks(range(len(columns)), [str(c) for c in columns], rotation=45 if size > 4 else 0, ha="right" if size > 4 else "center")
        ax.set_yticks(range(len(rows)), [str(r) for r in rows])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if size <= 25:  # beyond that the numbers are unreadable; the table below has them
            peak = max((v for row in matrix for v in row), default=0) or 1
            for i, row in enumerate(matrix):
                for j, value in enumerate(row):
                    ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=7,
                            color="white" if value > peak / 2 else "black")
    return to_svg(figure)


def reliability(confidence: Sequence[float | None], accuracy: Sequence[float | None], counts: Sequence[int],
                edges: Sequence[float], title: str, outcome: str = "accuracy", xlabel: str = "confidence") -> str:
    """A reliability diagram: the observed rate (`outcome`: accuracy, or the share of positives)
    per confidence bin against the diagonal of perfect calibration, with each bin's share of the
    examples beneath."""
    figure = _figure(4.6, 4.2)
    with matplotlib.rc_context(_STYLE):
        top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        width = edges[1] - edges[0]
        centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
        shown = [(c, a) for c, a in zip(centres, accuracy, strict=True) if a is not None]
        top.bar([c for c, _ in shown], [a for _, a in shown], width=width * 0.9, color=TRAIN_COLOR, label=outcome)
        top.plot([0, 1], [0, 1], linestyle="--", color="#555", label="perfect calibration")
        conf = [(c, v) for c, v in zip(centres, confidence, strict=True) if v is not None]
        top.plot([c for c, _ in conf], [v for _, v in conf], "o", color=VALID_COLOR, markersize=3, label="mean confidence")
        top.set_ylim(0, 1)
        top.set_ylabel(outcome)
        top.set_title(title)
        top.legend(fontsize=7, loc="upper left")
        total = max(sum(counts), 1)
        bottom.bar(centres, [n / total for n in counts], width=width * 0.9, color="#999")
        bottom.set_ylabel("share")
        bottom.set_xlabel(xlabel)
        bottom.set_xlim(edges[0], edges[-1])
    return to_svg(figure)


def scatter(x: Sequence[float], y: Sequence[float], xlabel: str, ylabel: str, title: str, diagonal: bool = True) -> str:
    figure = _figure(4.4, 4.0)
    with matplotlib.rc_context(_STYLE):
        ax = figure.subplots()
        # Few points drawn large, many drawn small and translucent, so density stays visible.
        ax.scatter(x, y, s=min(30.0, max(4.0, 3000.0 / max(len(x), 1))), alpha=0.6, color=TRAIN_COLOR, linewidths=0)
        if diagonal and len(x):
            low, high = min(min(x), min(y)), max(max(x), max(y))
            ax.plot([low, high], [low, high], linestyle="--", color="#555", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
    return to_svg(figure)


def histogram(values: Sequence[float], bins: int, xlabel: str, title: str) -> str:
    figure = _figure(4.4, 3.0)
    with matplotlib.rc_context(_STYLE):
        ax = figure.subplots()
        ax.hist(values, bins=bins, color=TRAIN_COLOR)
        ax.axvline(0, color="#555", linestyle="--", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("examples")
        ax.set_title(title)
    return to_svg(figure)


def bars(names: Sequence[str], values: Sequence[float], xlabel: str, title: str) -> str:
    """Horizontal bars, the first name on top (importances, per-class scores)."""
    figure = _figure(5.0, max(1.6, 0.3 * len(names) + 0.9))
    with matplotlib.rc_context(_STYLE):
        ax = figure.subplots()
        ax.barh(range(len(names)), values, color=TRAIN_COLOR)
        ax.set_yticks(range(len(names)), list(names))
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        ax.set_title(title)
    return to_svg(figure)


def history(numbers: Sequence[int], values: Sequence[float], best: Sequence[float], pruned: Sequence[tuple[int, float]],
            ylabel: str, title: str) -> str:
    """Each complete trial's value, the best so far as a step line, pruned trials' last values as crosses."""
    figure = _figure(5.6, 3.2)
    with matplotlib.rc_context(_STYLE):
        ax = figure.subplots()
        ax.plot(numbers, values, "o", color=TRAIN_COLOR, markersize=4, label="complete trial")
        if pruned:
            ax.plot([n for n, _ in pruned], [v for _, v in pruned], "x", color="#999", label="pruned (last value)")
        ax.step(numbers, best, where="post", color=VALID_COLOR, label="best so far")
        ax.set_xlabel("trial")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=7)
    return to_svg(figure)


def token_strips(examples: Sequence[tuple[str, Sequence[str], Sequence[float]]]) -> str:
    """One heat strip per example: its tokens and the attention weight each receives, the colour
    scaled from the example's lowest to its highest weight (weights of a long sentence are all
    small; a shared scale would paint them all alike)."""
    longest = max((len(tokens) for _, tokens, _ in examples), default=1)
    figure = _figure(min(max(4.0, 0.42 * longest + 1.0), 16.0), 1.1 * len(examples) + 0.3)
    with matplotlib.rc_context(_STYLE):
        axes = figure.subplots(len(examples), 1, squeeze=False)
        for ax, (title, tokens, weights) in zip((row[0] for row in axes), examples, strict=True):
            ax.grid(False)
            ax.imshow([list(weights)], cmap="Oranges", aspect="auto", vmin=min(weights, default=0), vmax=max(weights, default=1))
            ax.set_xticks(range(len(tokens)), [_short(t) for t in tokens], rotation=60, ha="right", fontsize=7)
            ax.set_yticks([])
            ax.set_title(title, fontsize=8, loc="left")
    return to_svg(figure)


def _short(token: str, limit: int = 14) -> str:
    token = re.sub(r"\s+", " ", token)
    return token if len(token) <= limit else token[: limit - 1] + "…"
