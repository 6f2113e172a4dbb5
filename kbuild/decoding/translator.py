"""`Translator`: source strings in, translations out, entirely in the TensorFlow graph (tokenise,
encode, decode with the spec's search, detokenise), so `kbuild evaluate`, `kbuild predict` on a run
and the exported `serving_default` translate identically."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import tensorflow as tf

from kbuild.decoding.seq2seq import decode_ids, finished_mask, make_sampler

BATCH = 128
"""Sentences per decoding call in `translate`."""


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
        self._compiled = None

    def translate_graph(self, text: tf.Tensor) -> tf.Tensor:
        """Strings [batch] -> translations [batch] (TF ops only)."""
        ids = decode_ids(self.model, self.sampler, self.source.encode(text), self.max_length,
                         self.decoder_spec, self.use_cache)
        return self.target.detokenize(tf.ragged.boolean_mask(ids, finished_mask(ids)))

    def translate(self, texts: Sequence[str], batch_size: int = BATCH) -> list[str]:
        """Translations of `texts`, in order (compiled once, run in batches)."""
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
