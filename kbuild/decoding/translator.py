"""`Translator`: source strings in, translations out, entirely in the TensorFlow graph (tokenise,
encode, decode with the spec's search, detokenise), so `kbuild evaluate`, `kbuild predict` on a run
and the exported `serving_default` translate identically."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import tensorflow as tf

from kbuild.decoding.seq2seq import TargetTokens, decode_ids, finished_mask, make_sampler

DECODING_ROWS = 16
"""Rows (sentences times beams) per decoding call on a CPU. Smaller calls keep each step's caches
in the CPU's caches, and a call ends as soon as its own rows have: 128 CSL abstracts, 4 beams, 31
steps each, took 129 ms a sentence at 4 sentences a call against 267 ms at 128 (greedy: 48 against
94 ms at 16 against 128; benchmarks/RESULTS.md, Session 33)."""
ACCELERATOR_BATCH = 128
"""Sentences per decoding call on a GPU, where larger calls pay (not measured here)."""


def decoding_batch(beams: int) -> int:
    """Sentences per `translate` call: `DECODING_ROWS` rows on a CPU, `ACCELERATOR_BATCH`
    sentences where TensorFlow sees a GPU."""
    if tf.config.list_logical_devices("GPU"):
        return ACCELERATOR_BATCH
    return max(1, DECODING_ROWS // max(beams, 1))


class Translator:
    """Args:
        model: a trained seq2seq model (see kbuild.tasks.seq2seq_model).
        source_tokenizer, target_tokenizer: the run's tokenizers (the same one when shared).
        spec: the run's spec (`model.decoder`: its type, search, beams, length penalty and length
            and n-gram constraints; `preprocess.max_length`).
        use_cache: a Transformer decoder runs one position per step with key/value caches; False
            re-runs the target prefix each step (the same translations, for speed comparisons).
    """

    def __init__(self, model: Any, source_tokenizer: Any, target_tokenizer: Any, spec: Any, use_cache: bool = True):
        self.model, self.source, self.target = model, source_tokenizer, target_tokenizer
        self.decoder_spec, self.use_cache = spec.model.decoder, use_cache
        self.sampler = make_sampler(self.decoder_spec.search, self.decoder_spec.beams, self.decoder_spec.length_penalty)
        self.max_length = self.decoder_spec.decode_length(spec.preprocess.max_length)
        self.tokens = TargetTokens.of(target_tokenizer)
        self._compiled = None

    def translate_graph(self, text: tf.Tensor) -> tf.Tensor:
        """Strings [batch] -> translations [batch] (TF ops only)."""
        ids = decode_ids(self.model, self.sampler, self.source.encode(text), self.max_length,
                         self.decoder_spec, self.use_cache, self.tokens)
        return self.target.detokenize(tf.ragged.boolean_mask(ids, finished_mask(ids, self.tokens.end)))

    def translate(self, texts: Sequence[str], batch_size: int | None = None) -> list[str]:
        """Translations of `texts`, in order (compiled once, run in batches of `batch_size`,
        by default `decoding_batch`)."""
        batch_size = batch_size or decoding_batch(getattr(self.sampler, "num_beams", 1))
        if self._compiled is None:
            self._compiled = tf.function(self.translate_graph, input_signature=[tf.TensorSpec([None], tf.string)])
        out: list[str] = []
        with quiet_masks():
            for start in range(0, len(texts), batch_size):
                batch = tf.constant(list(texts[start : start + batch_size]), tf.string)
                out.extend(t.decode("utf-8") for t in self._compiled(batch).numpy())
        return out


@contextlib.contextmanager
def quiet_masks() -> Iterator[None]:
    """Silence Keras's "does not support masking" warnings while decoding is traced: the
    attention layers read the padding masks themselves (see kbuild.blocks.decoders)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not support masking.*")
        yield
