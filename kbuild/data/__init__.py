"""Data: readers, built-in datasets, tokenizers and tf.data pipelines.

    kbuild.data.read_splits(spec.data, spec.seed, ("train", "valid"))   # examples per split
    kbuild.data.make_tokenizer(spec.preprocess.tokenizer, 64).fit(texts)
    kbuild.data.encode_texts(tokenizer, ["a fine film"], batch_size=64)

It knows no task: what a task makes of the examples (the data bundle) is `kbuild.tasks.bundle`.

Names are resolved lazily (PEP 562): the spec loader imports `kbuild.paths`, and validating a
spec must not pay for the TensorFlow import that tokenizers and pipelines need.
"""

from __future__ import annotations

from kbuild.lazy import lazy_getattr

# public name -> "module:attribute"
_LAZY = {
    "SplitData": "kbuild.data.split_data:SplitData",
    "encode_texts": "kbuild.data.pipeline:encode_texts",
    "Example": "kbuild.data.example:Example",
    "ReadResult": "kbuild.data.example:ReadResult",
    "read_examples": "kbuild.data.readers:read_examples",
    "read_splits": "kbuild.data.splits:read_splits",
    "SPLITS": "kbuild.data.splits:SPLITS",
    "data_root": "kbuild.paths:data_root",
    "Tokenizer": "kbuild.data.tokenizers:Tokenizer",
    "make_tokenizer": "kbuild.data.tokenizers:make_tokenizer",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
