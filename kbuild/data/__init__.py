"""Data: readers, built-in datasets, tokenizers and tf.data pipelines.

    bundle = kbuild.data.build(spec, assets_dir=run / "assets")   # fits tokenizer + labels
    bundle.datasets["train"]                                      # (ids, label_id) batches
    bundle = kbuild.data.load_bundle(spec, run / "assets", splits=("test",))   # reuse, no refit
    kbuild.data.encode_texts(bundle.tokenizer, ["a fine film"], batch_size=64)

Names are resolved lazily (PEP 562): the spec loader imports `kbuild.data.paths`, and validating a
spec must not pay for the TensorFlow import that tokenizers and pipelines need.
"""

from __future__ import annotations

from kbuild.lazy import lazy_getattr

# public name -> "module:attribute"
_LAZY = {
    "DataBundle": "kbuild.data.bundle:DataBundle",
    "build": "kbuild.data.bundle:build",
    "load_bundle": "kbuild.data.bundle:load_bundle",
    "tokenizer_for": "kbuild.data.bundle:tokenizer_for",
    "encode_texts": "kbuild.data.pipeline:encode_texts",
    "Example": "kbuild.data.example:Example",
    "ReadResult": "kbuild.data.example:ReadResult",
    "read_examples": "kbuild.data.readers:read_examples",
    "read_splits": "kbuild.data.splits:read_splits",
    "SPLITS": "kbuild.data.splits:SPLITS",
    "data_root": "kbuild.data.paths:data_root",
    "Tokenizer": "kbuild.data.tokenizers:Tokenizer",
    "make_tokenizer": "kbuild.data.tokenizers:make_tokenizer",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
