"""The unit every reader produces and every later stage consumes.

Kept free of TensorFlow: readers, built-in datasets and split handling are plain Python, so
`kbuild validate` and data error reporting never pay for a TensorFlow import.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled (or unlabelled) text.

    Args:
        text: the raw text, exactly as read (tokenizers normalise it later, inside the graph).
        label: the label as a string (classification), a tuple of tags, one per whitespace-separated
            token of `text` (tagging), or `None` for unlabelled input (prediction).
        line: 1-based line where the row starts in its file, so later errors (an unseen label,
            say) can point at it.
    """

    text: str
    label: str | tuple[str, ...] | None
    line: int


@dataclass(frozen=True)
class ReadResult:
    """What reading one file (or generating one split) gives.

    Args:
        examples: the rows kept, in file order.
        skipped: rows dropped under `data.on_error: skip` (0 under `fail`).
        source: the file path, or `<builtin:NAME>/SPLIT`, for messages about these examples.
    """

    examples: list[Example]
    skipped: int = 0
    source: str = field(default="<memory>")

    def __len__(self) -> int:
        return len(self.examples)
