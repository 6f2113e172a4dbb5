"""The unit every reader produces and every later stage consumes.

Kept free of TensorFlow: readers, built-in datasets and split handling are plain Python, so
`kbuild validate` and data error reporting never pay for a TensorFlow import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

TEXT = "text"
"""The input every one-text task reads (the first of `Task.inputs`)."""


@dataclass(frozen=True, slots=True, init=False)
class Example:
    """One labelled (or unlabelled) example: one or more named texts and a label.

    Args:
        inputs: the raw texts, exactly as read, by input name in the task's declared order
            (`{"text": ...}`, `{"text": ..., "text_pair": ...}`, `{"question": ..., "context": ...}`);
            a bare string means the one input `text`. Tokenizers normalise them later, in the graph.
        label: the label as a string (classification), a tuple of tags, one per whitespace-separated
            token of the text (tagging), or `None` for unlabelled input (prediction).
        line: 1-based line where the row starts in its file, so later errors (an unseen label,
            say) can point at it.

    Examples:
        >>> Example("a fine film", "1", 2).text
        'a fine film'
        >>> Example({"text": "a man sings", "text_pair": "a person sings"}, "4.2", 7)["text_pair"]
        'a person sings'
    """

    inputs: Mapping[str, str]
    label: str | tuple[str, ...] | None
    line: int

    def __init__(self, inputs: Mapping[str, str] | str, label: str | tuple[str, ...] | None, line: int):
        # Readers build hundreds of thousands of these: a dict they made is kept as it is (read-only
        # through the proxy), a string is the one input `text`.
        texts = {TEXT: inputs} if type(inputs) is str else inputs
        if not texts:
            raise ValueError("Expected at least one input text; received none")
        setattr_ = object.__setattr__
        setattr_(self, "inputs", texts if type(texts) is MappingProxyType else MappingProxyType(texts))
        setattr_(self, "label", label)
        setattr_(self, "line", line)

    @property
    def text(self) -> str:
        """The first input: the whole example for a one-text task."""
        return next(iter(self.inputs.values()))

    def __getitem__(self, name: str) -> str:
        return self.inputs[name]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Example):
            return NotImplemented
        return (dict(self.inputs), self.label, self.line) == (dict(other.inputs), other.label, other.line)

    def __hash__(self) -> int:
        return hash((tuple(self.inputs.items()), self.label, self.line))

    def __repr__(self) -> str:
        inputs = self.text if tuple(self.inputs) == (TEXT,) else dict(self.inputs)
        return f"Example({inputs!r}, {self.label!r}, {self.line})"

    def __getstate__(self):  # MappingProxyType does not pickle (search workers pickle examples)
        return dict(self.inputs), self.label, self.line

    def __setstate__(self, state) -> None:
        Example.__init__(self, *state)


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

    def texts(self, name: str = TEXT) -> list[str]:
        """The input `name` of every example, in order."""
        return [example.inputs[name] for example in self.examples]
