"""The tokenizer interface shared by every `preprocess.tokenizer.type`.

A tokenizer has two halves with different homes:

- `fit` (learn a vocabulary from the train split) and `save`/`load` (a plain `vocab.txt`, one token
  per line, in the run's `assets/` folder) run in Python, once per run;
- `encode` (raw strings -> padded ids) runs inside the TensorFlow graph, so the same code serves in
  the tf.data pipeline and in the exported SavedModel, which therefore takes raw strings.

Ids 0, 1 and 2 are always `[PAD]`, `[UNK]` and `[CLS]` in every vocabulary, so padding, masking and
the optional start token never depend on the tokenizer type.

With `word_starts`, `encode` also says where each whitespace-separated word begins among the ids
(for taggers over subwords, which label a word by its first sub-token): every word is tokenised on
its own, so no sub-token ever spans two words, and a word the tokenizer drops entirely (a lone
control character) still gets one `[UNK]`, so every word keeps a position.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tensorflow as tf

from kbuild.errors import DataError
from kbuild.files import write_atomic
from kbuild.names import (  # noqa: F401  (ids re-exported)
    CLS_ID,
    PAD_ID,
    SEGMENT_IDS,
    SEPARATOR_TOKEN,
    TOKEN_IDS,
    UNK_ID,
    WORD_STARTS,
)

if TYPE_CHECKING:
    from kbuild.spec.preprocess import TokenizerSpec

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]")
VOCABULARY_FILE = "vocab.txt"

TRIMMERS = {
    "longest_first": lambda budget: _tf_text().ShrinkLongestTrimmer(budget),
    "round_robin": lambda budget: _tf_text().RoundRobinTrimmer(budget),
    "waterfall": lambda budget: _tf_text().WaterfallTrimmer(budget),
}
"""`preprocess.truncation` -> the tf-text trimmer that fits several texts into a token budget."""


def _tf_text():
    import tensorflow_text

    return tensorflow_text


WHITESPACE = r"[\s\p{Z}]+"
"""Any run of whitespace, Unicode spaces included (RE2's `\\s` alone is ASCII only)."""


class Tokenizer(ABC):
    """Raw text -> int32 ids `[batch, max_length]`, padded with `[PAD]` (0).

    Args:
        spec: the spec's `preprocess.tokenizer` section (type, vocab_size, lowercase, ...).
        max_length: tokens per example after truncation, the start token included.
        start_token: prepend `[CLS]` to every example (for `pooling: cls`).
        word_starts: `encode` returns a dict: `token_ids` and `word_starts`, int32 `[batch,
            max_length]`, the position of each word's first sub-token, 0 past the last word that
            fits (needs `start_token`: `[CLS]` holds position 0, so 0 can mean "no word").

    Examples:
        >>> tokenizer = make_tokenizer(WordTokenizerSpec(), max_length=8)
        >>> tokenizer.fit(["a fine film", "a dull film"])
        >>> tokenizer.encode(tf.constant(["a fine day"]))  # [[3, 6, 1, 0, 0, 0, 0, 0]]
    """

    def __init__(self, spec: TokenizerSpec, max_length: int, start_token: bool = False, word_starts: bool = False):
        if max_length < (2 if start_token else 1):
            raise ValueError(
                f"Expected max_length >= {2 if start_token else 1}; received {max_length}"
            )
        if word_starts and not start_token:
            raise ValueError("Expected start_token=True with word_starts=True ([CLS] holds position 0)")
        self.spec = spec
        self.max_length = max_length
        self.start_token = start_token
        self.word_starts = word_starts
        self._vocabulary: list[str] | None = None

    unknown_id: int = UNK_ID
    cls_id: int = CLS_ID
    """The id that starts a packed sequence of several texts (`encode_segments`)."""
    """The id a word the tokenizer drops entirely gets (a pretrained vocabulary has its own)."""
    end_tokens: int = 0
    """Special tokens `_pad` appends after the pieces (a pretrained checkpoint's `[SEP]`): a word
    starting among them does not fit."""

    # --- vocabulary (Python) -------------------------------------------------------------------
    @property
    def vocabulary(self) -> list[str]:
        """Tokens by id; ids 0..2 are the special tokens."""
        if self._vocabulary is None:
            raise RuntimeError(f"{type(self).__name__} has no vocabulary yet: call fit() or load()")
        return list(self._vocabulary)

    @property
    def vocabulary_size(self) -> int:
        """Number of ids `encode` can produce (the embedding's input dimension)."""
        return len(self.vocabulary)

    def fit(self, texts: Sequence[str], extra_tokens: Sequence[str] = ()) -> Tokenizer:
        """Learn the vocabulary from `texts` (the train split), at most `spec.vocab_size` tokens.

        `extra_tokens` (a masked LM's `[MASK]`) close the vocabulary, within `vocab_size`, so the
        special and learned ids are those a fit without them gives."""
        extra = [t for t in extra_tokens if t not in SPECIAL_TOKENS]
        learned = [t for t in self._learn_tokens(list(texts)) if t not in SPECIAL_TOKENS and t not in extra]
        room = max(len(SPECIAL_TOKENS), self.spec.vocab_size - len(extra))
        self._set_vocabulary([*[*SPECIAL_TOKENS, *learned][:room], *extra])
        return self

    def token_id(self, token: str) -> int | None:
        """The id of `token` in the vocabulary (a special token such as `[MASK]`), or None."""
        vocabulary = self.vocabulary
        return vocabulary.index(token) if token in vocabulary else None

    def save(self, assets_dir: str | Path) -> Path:
        """Write `vocab.txt` (one token per line) into `assets_dir`; returns its path."""
        path = Path(assets_dir) / VOCABULARY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, "".join(f"{token}\n" for token in self.vocabulary))
        return path

    def load(self, assets_dir: str | Path) -> Tokenizer:
        """Read the vocabulary `save` wrote, so a trained run encodes exactly as it did in training."""
        path = Path(assets_dir) / VOCABULARY_FILE
        if not path.is_file():
            raise DataError(f"tokenizer vocabulary not found: {path} (was the run trained?)")
        lines = path.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if tuple(lines[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise DataError(
                f"expected the first tokens to be {', '.join(SPECIAL_TOKENS)}; "
                f"received {', '.join(lines[:3]) or 'an empty file'}",
                str(path),
                1,
            )
        seen: set[str] = set()
        for line, token in enumerate(lines, 1):
            if token in seen:
                raise DataError(f"token {token!r} appears twice", str(path), line)
            seen.add(token)
        self._set_vocabulary(lines)
        return self

    def _set_vocabulary(self, vocabulary: list[str]) -> None:
        self._vocabulary = vocabulary
        self._build(vocabulary)

    # --- encoding (TensorFlow graph) -----------------------------------------------------------
    def encode(self, texts: tf.Tensor | Sequence[str]) -> tf.Tensor | dict[str, tf.Tensor]:
        """Strings `[batch]` -> int32 ids `[batch, max_length]`: `[CLS]` first when `start_token`,
        truncated to `max_length`, padded with 0 (and the `word_starts` with them, when asked).
        TF ops only, so it runs eagerly, in tf.data and in an exported serving function alike."""
        self.vocabulary  # noqa: B018  (raises the "call fit() or load()" error)
        texts = tf.convert_to_tensor(texts, tf.string)
        if not self.word_starts:
            return self._pad(self.token_ids(texts))
        pieces = self.word_pieces(texts)
        ids = pieces.merge_dims(1, 2)
        # Each word starts after the pieces of the words before it, and after [CLS].
        lengths = pieces.row_lengths(axis=2).to_tensor(0)
        starts = tf.math.cumsum(lengths, axis=1, exclusive=True) + 1
        fits = tf.sequence_mask(pieces.row_lengths(), tf.shape(starts)[1]) & (starts < self.max_length - self.end_tokens)
        starts = tf.cast(tf.where(fits, starts, 0), tf.int32)
        starts = tf.pad(starts, [[0, 0], [0, self.max_length]])[:, : self.max_length]
        return {TOKEN_IDS: self._pad(ids), WORD_STARTS: tf.ensure_shape(starts, [None, self.max_length])}

    def encode_segments(self, texts: Sequence[tf.Tensor], truncation: str = "longest_first") -> dict[str, tf.Tensor]:
        """Several strings `[batch]` per example -> one packed sequence `[CLS] a [SEP] b [SEP]`:
        `token_ids` and `segment_ids` (0 for `[CLS]`, the first text and its `[SEP]`, 1 for the
        second, ...), int32 `[batch, max_length]`, padded with 0.

        The texts share `max_length`: `truncation` picks which loses tokens first when they do not
        fit (`longest_first`: the longest, one token at a time, as BERT's pair packing does;
        `round_robin`: each in turn; `waterfall`: the last texts first). TF ops only."""
        import tensorflow_text as tf_text

        separator = self.separator_id
        pieces = [tf.cast(self.token_ids(tf.convert_to_tensor(t, tf.string)), tf.int32) for t in texts]
        budget = self.max_length - 1 - len(pieces)  # [CLS], and one [SEP] per text
        if budget < len(pieces):
            raise ValueError(f"Expected max_length >= {2 * len(pieces) + 1} for {len(pieces)} texts "
                             f"([CLS], a [SEP] and a token each); received {self.max_length}")
        trimmed = TRIMMERS[truncation](budget).trim(pieces)
        ids, segments = tf_text.combine_segments(trimmed, start_of_sequence_id=self.cls_id, end_of_segment_id=separator)
        shape = [None, self.max_length]
        return {TOKEN_IDS: tf.cast(ids, tf.int32).to_tensor(PAD_ID, shape=shape),
                SEGMENT_IDS: tf.cast(segments, tf.int32).to_tensor(0, shape=shape)}

    def segments_truncated(self, texts: Sequence[Sequence[str]], batch_size: int = 4096) -> int:
        """How many examples `encode_segments` cuts: their texts' tokens (with `[CLS]` and a
        `[SEP]` each) exceed `max_length`. Columns of equal length, one per text."""
        count, total = len(texts[0]), 0
        for start in range(0, count, batch_size):
            lengths = sum(self.token_ids(tf.constant(list(column[start:start + batch_size]), tf.string)).row_lengths()
                          for column in texts)
            total += int(tf.reduce_sum(tf.cast(lengths + 1 + len(texts) > self.max_length, tf.int32)))
        return total

    @property
    def separator_id(self) -> int:
        """The id of `[SEP]`, which ends each text of a packed sequence; a vocabulary fitted for
        a task that reads several texts has it (see `Task.extra_tokens`)."""
        found = self.token_id(SEPARATOR_TOKEN)
        if found is None:
            raise ValueError(f"the vocabulary has no {SEPARATOR_TOKEN} token to separate texts; fit it with "
                             f"extra_tokens=[{SEPARATOR_TOKEN!r}]")
        return found

    def encode_marked(self, texts: tf.Tensor | Sequence[str], mark: str, mark_id: int) -> tf.Tensor:
        """Like `encode` (token ids only), but each `mark` in a text (`[MASK]`) becomes the one id
        `mark_id`, however the tokenizer would cut the mark's characters: the text is split at the
        marks, each piece tokenised on its own, and one `mark_id` put between the pieces."""
        self.vocabulary  # noqa: B018  (raises the "call fit() or load()" error)
        texts = tf.convert_to_tensor(texts, tf.string)
        segments = tf.strings.split(texts, sep=mark)  # [batch, (segments)]
        pieces = self.token_ids(segments.flat_values)  # [segments, (ids)]
        # Every segment but the last of its text is followed by a mark.
        counts = segments.row_lengths()
        position = tf.ragged.range(counts).flat_values
        marked = position < tf.repeat(counts, counts) - 1
        marks = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(tf.cast(marked, tf.int32))], tf.constant(mark_id, pieces.dtype)),
            tf.cast(marked, pieces.row_splits.dtype),
        )
        ids = segments.with_flat_values(tf.concat([pieces, marks], axis=1)).merge_dims(1, 2)
        return self._pad(tf.cast(ids, tf.int32))

    def _pad(self, ids: tf.RaggedTensor) -> tf.Tensor:
        if self.start_token:
            starts = tf.fill([ids.nrows(), 1], tf.constant(CLS_ID, tf.int32))
            ids = tf.concat([tf.RaggedTensor.from_tensor(starts), ids], axis=1)
        return ids.to_tensor(default_value=PAD_ID, shape=[None, self.max_length])

    def words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Strings `[batch]` -> ragged whitespace-separated words `[batch, (words)]`, case kept,
        not truncated: the units a tagger labels."""
        texts = tf.convert_to_tensor(texts, tf.string)
        return tf.strings.split(tf.strings.strip(tf.strings.regex_replace(texts, WHITESPACE, " ")))

    def word_pieces(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Strings `[batch]` -> ids `[batch, (words), (pieces)]`: each word tokenised on its own,
        at least one id per word."""
        words = self.words(texts)
        pieces = self.token_ids(words.flat_values)
        empty = tf.equal(pieces.row_lengths(), 0)
        unknown = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(tf.cast(empty, tf.int32))], tf.constant(self.unknown_id, pieces.dtype)),
            tf.cast(empty, pieces.row_splits.dtype),
        )
        return words.with_flat_values(tf.concat([pieces, unknown], axis=1))

    joiner: str = " "
    """What `detokenize` puts between tokens (`""` for characters)."""

    def detokenize(self, ids: tf.Tensor | tf.RaggedTensor) -> tf.Tensor:
        """int ids `[batch, (length)]` (dense or ragged) -> strings `[batch]`: padding and `[CLS]`
        dropped, tokens joined by `joiner`, then `postprocess`ed. TF ops only, so it also runs in
        an export."""
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids)
        ids = tf.ragged.boolean_mask(ids, (ids != PAD_ID) & (ids != CLS_ID))
        tokens = tf.gather(tf.constant(self.vocabulary, tf.string), tf.cast(ids, tf.int32))
        return self.postprocess(tf.strings.reduce_join(tokens, axis=-1, separator=self.joiner))

    def postprocess(self, texts: tf.Tensor) -> tf.Tensor:
        """Joined tokens -> text (undo subword marks, restore line breaks); none by default."""
        return texts

    def decode(self, ids: Sequence[int]) -> str:
        """Python twin of `detokenize` for one sequence of ids."""
        return self.detokenize(tf.constant([list(ids)], tf.int32))[0].numpy().decode("utf-8")

    def unknown_tokens(self, text: str) -> list[str]:
        """The pieces of `text` that map to `[UNK]` (whitespace-separated words by default)."""
        words = text.split()
        ids = self.token_ids(tf.constant(words or [""], tf.string))
        return [word for word, row in zip(words, ids.numpy(), strict=False) if UNK_ID in row.tolist()]

    @abstractmethod
    def token_ids(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Strings `[batch]` -> ragged int32 ids `[batch, (tokens)]`, no special tokens added."""

    @abstractmethod
    def trackables(self) -> list[Any]:
        """Keras layers and TF resources (lookup tables) that an exporter must `track()` in its
        `keras.export.ExportArchive`; untracked tables are missing from the SavedModel."""

    @abstractmethod
    def _learn_tokens(self, texts: list[str]) -> list[str]:
        """Tokens learned from `texts`, most useful first (special tokens are added by `fit`)."""

    @abstractmethod
    def _build(self, vocabulary: list[str]) -> None:
        """Create the graph objects (tables, layers) for `vocabulary`."""
