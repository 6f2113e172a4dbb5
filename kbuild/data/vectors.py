"""Pretrained word vectors (word2vec / GloVe) for a tokenizer's vocabulary. Plain Python + NumPy.

Only the vocabulary's words are kept while the file streams past, so a multi-gigabyte file costs
memory for the vocabulary alone. Formats:

- text (GloVe; word2vec `.txt`/`.vec`): an optional `COUNT DIM` header, then `WORD v1 ... vDIM`;
- binary (word2vec `.bin`): a `COUNT DIM` header line, then per word `WORD ` and DIM little-endian
  float32 values (optionally followed by a newline).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kbuild.errors import DataError
from kbuild.paths import expand_data_path

BINARY_EXTENSIONS = (".bin",)


@dataclass
class PretrainedVectors:
    """Rows found for a vocabulary: `vectors[i]` is the vector of vocabulary id `ids[i]`."""

    ids: np.ndarray
    vectors: np.ndarray
    vocabulary_size: int
    source: str

    @property
    def coverage(self) -> float:
        """Share of the vocabulary found in the file."""
        return len(self.ids) / self.vocabulary_size if self.vocabulary_size else 0.0


def load_vectors(path: str, vocabulary: list[str], dim: int, skip: int = 0) -> PretrainedVectors:
    """Vectors of `vocabulary[skip:]` (ids kept) from a word2vec/GloVe file of `dim` values a word.

    Exact matches win; otherwise the first vector of the word's lowercase form is used.

    Raises:
        DataError: missing file, or a line with a number of values other than `dim` (naming it).
    """
    file = expand_data_path(path)
    if not file.is_file():
        raise DataError(f"model.embedding.pretrained: file not found: {file}")
    wanted = {word: i for i, word in enumerate(vocabulary) if i >= skip}
    lower = {}
    for word, i in wanted.items():
        lower.setdefault(word.lower(), []).append(i)
    reader = _binary if file.suffix.lower() in BINARY_EXTENSIONS else _text
    exact: dict[int, np.ndarray] = {}
    folded: dict[int, np.ndarray] = {}
    for word, values in reader(file, dim):
        if word in wanted:
            exact[wanted[word]] = values()
        for i in lower.get(word.lower(), ()):
            folded.setdefault(i, values())
    found = {**folded, **exact}
    ids = np.array(sorted(found), np.int64)
    vectors = np.stack([found[i] for i in ids]) if len(ids) else np.zeros((0, dim), np.float32)
    return PretrainedVectors(ids, vectors.astype(np.float32), len(vocabulary) - skip, str(file))


def _dimension_error(file: Path, line: int, dim: int, received: int) -> DataError:
    return DataError(
        f"expected {dim} values after the word (model.embedding.dim); received {received}",
        str(file), line,
    )


def _text(file: Path, dim: int):
    with file.open("r", encoding="utf-8", errors="replace") as stream:
        for number, line in enumerate(stream, 1):
            parts = line.rstrip("\n\r").rstrip(" ").split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                if int(parts[1]) != dim:
                    raise _dimension_error(file, 1, dim, int(parts[1]))
                continue
            if len(parts) <= 1:
                continue
            if len(parts) - 1 != dim:
                raise _dimension_error(file, number, dim, len(parts) - 1)

            def values(parts=parts, number=number):
                try:
                    return np.asarray(parts[1:], np.float32)
                except ValueError:
                    raise DataError("a vector value is not a number", str(file), number) from None

            yield parts[0], values


def _binary(file: Path, dim: int):
    with file.open("rb") as stream:
        header = stream.readline().split()
        if len(header) != 2 or not all(h.isdigit() for h in header):
            raise DataError("word2vec binary: expected a `COUNT DIM` header line", str(file), 1)
        count, file_dim = int(header[0]), int(header[1])
        if file_dim != dim:
            raise _dimension_error(file, 1, dim, file_dim)
        for index in range(count):
            word = bytearray()
            while (byte := stream.read(1)) != b" ":
                if not byte:
                    raise DataError(f"word2vec binary: the file ends inside word {index + 1} of {count}", str(file))
                if byte != b"\n":
                    word += byte
            data = stream.read(4 * dim)
            if len(data) != 4 * dim:
                raise DataError(f"word2vec binary: the file ends inside vector {index + 1} of {count}", str(file))
            yield word.decode("utf-8", errors="replace"), lambda data=data: np.frombuffer(data, "<f4").copy()
