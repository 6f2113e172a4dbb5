"""`data:` where the examples come from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from kbuild.spec.base import StrictModel, not_a_folder

DataFormat = Literal["tsv", "csv", "jsonl", "text", "conll", "parallel"]


class DataSpec(StrictModel):
    """Files (or a built-in generated dataset) for the train, valid and test splits."""

    train: str | None = Field(default=None, min_length=1)
    """Path of the training file; `${KBUILD_DATA}` expands to the data root."""
    valid: str | None = Field(default=None, min_length=1)
    test: str | None = Field(default=None, min_length=1)
    builtin: str | None = Field(default=None, min_length=1)
    """Name of a dataset kbuild generates itself (e.g. `sentiment`); replaces train/valid/test."""
    format: DataFormat | None = None
    """File format; inferred from the train file's extension when omitted."""
    columns: dict[str, str | int] = Field(default_factory=lambda: {"text": "text", "label": "label"}, min_length=1)
    """Role -> column name (or 0-based index for files without a header). The roles are the task's
    text inputs (`text`; `text` + `text_pair` for sentence pairs) and `label`. Unset, a task whose
    inputs are not just `text` reads columns named like its inputs."""
    header: bool = True
    """Whether csv/tsv files start with a header row."""
    limit: int | None = Field(default=None, gt=0)
    """Cap on rows read per split, for quick runs."""
    valid_fraction: float | None = Field(default=None, gt=0, lt=1)
    """Hold out this share of train as the valid split when no valid file is given."""
    target_suffix: str | None = Field(default=None, min_length=1)
    """`format: parallel`: the extension of the aligned target file beside each split's source
    file (`train.en` with `.de` reads `train.de`)."""
    label_separator: str = Field(default=",", min_length=1)
    """multilabel: the separator between an example's labels in the label column."""
    holdout: Literal["random", "tail"] = "random"
    """Which rows `valid_fraction` holds out: a seeded random sample, or the last rows of the file
    (the convention for running text, where a random sample of lines would leak context)."""
    drop_labels: list[str] = Field(default_factory=list)
    """Rows whose label is one of these are left out, counted with the skipped rows (an NLI set's
    `-`: no majority among the annotators)."""
    max_bytes: int = Field(default=1 << 30, gt=0)
    """The largest data file read (bytes; checked before reading): a wrong path to a disk image
    or a 2 GB file without line breaks is an error, not a machine out of memory."""
    max_row_bytes: int = Field(default=16 << 20, gt=0)
    """The longest line of a data file (bytes)."""
    on_error: Literal["fail", "skip"] = "fail"
    """Bad rows: stop naming file and line, or skip them and report the count."""

    _files_not_folders = field_validator("train", "valid", "test")(lambda value: not_a_folder(value))

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if self.builtin is None and self.train is None:
            raise ValueError("give either `train` (a file) or `builtin` (a generated dataset)")
        if self.builtin is not None and any((self.train, self.valid, self.test)):
            raise ValueError("`builtin` replaces train/valid/test; give one or the other")
        return self
