"""The checkpoint's own tokenizer behind kbuild's `Tokenizer` interface.

keras_hub loads the tokenizer that belongs to the checkpoint (WordPiece for BERT-family encoders);
this adapter packs its pieces as the encoder was trained to read them, `[CLS] pieces [SEP]`, cut to
`preprocess.max_length` and padded with the checkpoint's padding id, all inside the TensorFlow graph,
so the same code serves in tf.data and in the exported SavedModel (which then takes raw strings). It
never learns a vocabulary: `fit` reads the checkpoint's, `save` writes it (with the keras_hub
tokenizer's config) into the run's assets, and `load` rebuilds it from there, so a trained run and
its export need the checkpoint folder no more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tensorflow as tf

from kbuild.data.tokenizers.base import PAD_ID, Tokenizer
from kbuild.errors import DataError
from kbuild.files import write_atomic
from kbuild.pretrained.checkpoint import CheckpointError

if TYPE_CHECKING:
    from kbuild.pretrained.checkpoint import Checkpoint
    from kbuild.spec.preprocess import TokenizerSpec
    from kbuild.spec.root import Spec

ASSETS = "pretrained_tokenizer"
"""Sub-folder of a run's `assets/` holding the keras_hub tokenizer (config and vocabulary)."""
CONFIG = "config.json"
CHAT_TEMPLATE = "chat_template.json"
SPECIAL_TOKENS = "special_tokens.json"


class PretrainedTokenizer(Tokenizer):
    """A keras_hub tokenizer of a pretrained checkpoint, packed `[CLS] ... [SEP]`.

    Args:
        spec: `preprocess.tokenizer` (unused by the encoding; kept for the interface).
        max_length: tokens per example, `[CLS]` and `[SEP]` included.
        word_starts: also encode where each whitespace-separated word starts (taggers).
        locate: returns the checked checkpoint `fit` reads the tokenizer from (None: only `load`).

    Examples:
        >>> tokenizer = PretrainedTokenizer(TokenizerSpec(), 8, locate=lambda: inspect(spec)).fit([])
        >>> tokenizer.encode(["a witty film"])  # [[101, 1037, 25591, 2143, 102, 0, 0, 0]]
    """

    end_tokens = 1  # [SEP]

    def __init__(self, spec: TokenizerSpec, max_length: int, word_starts: bool = False,
                 locate: Callable[[], Checkpoint] | None = None):
        if max_length < 3:
            raise ValueError(f"Expected max_length >= 3 ([CLS], one piece, [SEP]); received {max_length}")
        super().__init__(spec, max_length, start_token=True, word_starts=word_starts)
        self.locate = locate
        self._layer: Any = None
        self._tokenize: Any = None

    # --- vocabulary: the checkpoint's --------------------------------------------------------
    def fit(self, texts: Sequence[str], extra_tokens: Sequence[str] = ()) -> PretrainedTokenizer:
        """Take the checkpoint's tokenizer (nothing is learned from `texts`; no task that adds
        `extra_tokens` takes a checkpoint, so there are none)."""
        import keras_hub

        if self.locate is None:
            raise ValueError("PretrainedTokenizer.fit needs `locate`, the checkpoint to read")
        path = self.locate().path
        try:
            layer = keras_hub.tokenizers.Tokenizer.from_preset(str(path))
        except (OSError, ValueError, KeyError) as error:
            raise CheckpointError(f"model.backbone.from: keras_hub could not load the tokenizer of {path}: {error}") from None
        self._use(layer)
        return self

    def save(self, assets_dir: str | Path) -> Path:
        """Write the keras_hub tokenizer (config + its vocabulary files) to `assets/pretrained_tokenizer/`
        and the vocabulary, one token per line, to `assets/vocab.txt`; returns the folder."""
        import keras

        folder = Path(assets_dir) / ASSETS
        folder.mkdir(parents=True, exist_ok=True)
        config = keras.saving.serialize_keras_object(self.layer)
        write_atomic(folder / CONFIG, json.dumps(config, indent=2))
        self.layer.save_assets(str(folder))
        super().save(assets_dir)
        return folder

    def load(self, assets_dir: str | Path) -> PretrainedTokenizer:
        """Rebuild the tokenizer `save` wrote into a run's assets."""
        import keras
        import keras_hub  # noqa: F401  (registers the tokenizer classes for deserialisation)

        folder = Path(assets_dir) / ASSETS
        if not (folder / CONFIG).is_file():
            raise DataError(f"pretrained tokenizer not found: {folder / CONFIG} (was the run trained?)")
        layer = keras.saving.deserialize_keras_object(json.loads((folder / CONFIG).read_text(encoding="utf-8")))
        layer.load_assets(str(folder))
        self._use(layer)
        return self

    @property
    def layer(self) -> Any:
        """The keras_hub tokenizer."""
        if self._layer is None:
            raise RuntimeError("PretrainedTokenizer has no tokenizer yet: call fit() or load()")
        return self._layer

    def _use(self, layer: Any) -> None:
        """Adopt `layer`: its vocabulary, special ids and a graph function over its `tokenize`."""
        missing = [name for name in ("cls_token_id", "sep_token_id", "pad_token_id") if getattr(layer, name, None) is None]
        if missing:
            raise CheckpointError(f"model.backbone.from: the checkpoint's tokenizer ({type(layer).__name__}) has no "
                                  f"{', '.join(n.removesuffix('_id') for n in missing)}; kbuild packs [CLS] text [SEP]")
        if layer.pad_token_id != PAD_ID:
            raise CheckpointError(f"model.backbone.from: the checkpoint pads with id {layer.pad_token_id}; "
                                  f"kbuild's pipeline pads with id {PAD_ID}")
        self._layer = layer
        self._layer.build(None)  # no weights; built, so ExportArchive.track() accepts it
        self.cls_id, self.sep_id = int(layer.cls_token_id), int(layer.sep_token_id)
        oov = getattr(layer, "oov_token", None)
        self.unknown_id = int(layer.token_to_id(oov)) if oov is not None else self.sep_id
        self._vocabulary = list(layer.get_vocabulary())
        # keras_hub runs a pure-Python path when called eagerly; a graph function keeps eager
        # encoding on the same TensorFlow path as training and serving (see wordpiece.py).
        self._tokenize = tf.function(layer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)],
                                     autograph=False)

    @property
    def separator_id(self) -> int:
        """The checkpoint's `[SEP]`: it ends each text of a pair, as the encoder was trained."""
        return self.sep_id

    @property
    def target_end_id(self) -> int:
        """`[SEP]` ends a target written in the checkpoint's vocabulary, `[CLS]` starts it, as
        BERT2BERT's decoder does (Rothe, Narayan and Severyn 2020): both tokens mean what the
        checkpoint's embeddings learned, and `detokenize` drops them."""
        return self.sep_id

    def _learn_tokens(self, texts: list[str]) -> list[str]:
        # Never called: `fit` adopts the checkpoint's vocabulary instead of learning one.
        return self.vocabulary

    def _build(self, vocabulary: list[str]) -> None:
        # The graph objects come with the keras_hub tokenizer (`_use`), not from a vocabulary list.
        if vocabulary != self._vocabulary:
            raise ValueError("a pretrained tokenizer's vocabulary is the checkpoint's; it cannot be replaced")

    # --- encoding (TensorFlow graph) ---------------------------------------------------------
    def token_ids(self, texts: tf.Tensor) -> tf.RaggedTensor:
        return tf.cast(self._tokenize(texts), tf.int32)

    def _pad(self, ids: tf.RaggedTensor) -> tf.Tensor:
        # [CLS] pieces [SEP], the pieces cut so both special tokens always fit.
        ids = ids[:, : self.max_length - 2]
        rows = ids.nrows()
        cls = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], tf.constant(self.cls_id, tf.int32)))
        sep = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], tf.constant(self.sep_id, tf.int32)))
        packed = tf.concat([cls, tf.cast(ids, tf.int32), sep], axis=1)
        return packed.to_tensor(default_value=PAD_ID, shape=[None, self.max_length])

    def detokenize(self, ids: tf.Tensor | tf.RaggedTensor) -> tf.Tensor:
        """ids -> text, padding and the `[CLS]`/`[SEP]` packing dropped, `##` pieces joined."""
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids)
        ids = tf.ragged.boolean_mask(ids, (ids != PAD_ID) & (ids != self.cls_id) & (ids != self.sep_id))
        tokens = tf.gather(tf.constant(self.vocabulary, tf.string), tf.cast(ids, tf.int32))
        return self.postprocess(tf.strings.reduce_join(tokens, axis=-1, separator=self.joiner))

    def postprocess(self, texts: tf.Tensor) -> tf.Tensor:
        return tf.strings.regex_replace(texts, " ##", "")

    def trackables(self) -> list[Any]:
        return [self.layer]


class CausalLMTokenizer(PretrainedTokenizer):
    """The byte-level BPE (or other) tokenizer of a causal language model: text in, its pieces'
    ids out, with no `[CLS]`/`[SEP]` packing (a chat template writes the model's special tokens as
    text, and they tokenize as one id each). `detokenize` gives the text back, special tokens
    included; `end_id` is the checkpoint's end token (None if it names none)."""

    end_tokens = 0
    chat_template: Any = None
    """The checkpoint's `ChatTemplate` (from its tokenizer_config.json), kept with the run's
    assets; None when it has none."""

    def fit(self, texts: Sequence[str], extra_tokens: Sequence[str] = ()) -> CausalLMTokenizer:
        """The checkpoint's tokenizer and chat template."""
        from kbuild.pretrained.chat_template import ChatTemplate

        super().fit(texts, extra_tokens)
        try:
            self.chat_template = ChatTemplate.from_folder(self.locate().path)
        except CheckpointError:
            self.chat_template = None
        return self

    def save(self, assets_dir: str | Path) -> Path:
        """As an encoder's, plus the special tokens its config leaves out and the chat template."""
        folder = super().save(assets_dir)
        (folder / SPECIAL_TOKENS).write_text(json.dumps(_special_token_arguments(self.layer), indent=2), encoding="utf-8")
        if self.chat_template is not None:
            template = {"source": self.chat_template.source, "special_tokens": self.chat_template.special_tokens}
            (folder / CHAT_TEMPLATE).write_text(json.dumps(template, indent=2), encoding="utf-8")
        return folder

    def load(self, assets_dir: str | Path) -> CausalLMTokenizer:
        import keras
        import keras_hub  # noqa: F401  (registers the tokenizer classes for deserialisation)

        from kbuild.pretrained.chat_template import ChatTemplate

        folder = Path(assets_dir) / ASSETS
        if not (folder / CONFIG).is_file():
            raise DataError(f"pretrained tokenizer not found: {folder / CONFIG} (was the run trained?)")
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
        if (folder / SPECIAL_TOKENS).is_file():
            arguments = json.loads((folder / SPECIAL_TOKENS).read_text(encoding="utf-8"))
            if "misc_special_tokens" in arguments:  # the constructor takes a set
                arguments["misc_special_tokens"] = set(arguments["misc_special_tokens"])
            config["config"].update(arguments)
        layer = keras.saving.deserialize_keras_object(config)
        layer.load_assets(str(folder))
        self._use(layer)
        if (folder / CHAT_TEMPLATE).is_file():
            template = json.loads((folder / CHAT_TEMPLATE).read_text(encoding="utf-8"))
            self.chat_template = ChatTemplate(template["source"], template["special_tokens"])
        return self

    def _use(self, layer: Any) -> None:
        self._layer = layer
        self._layer.build(None)
        self.end_id = getattr(layer, "end_token_id", None)
        self.pad_id = int(getattr(layer, "pad_token_id", None) or 0)
        self._vocabulary = list(layer.get_vocabulary())
        specials = sorted(set(getattr(layer, "special_tokens", None) or []), key=lambda token: (-len(token), token))
        # keras_hub 0.32 hides each unsplittable token behind a placeholder "ĴA", "ĴB", ... and puts
        # them back in turn, so with 11 or more ("ĴB" is a prefix of "ĴBA"; SmolLM2 has 17, in set
        # order) `<|im_end|>` came out as ordinary pieces, differently per PYTHONHASHSEED. The special
        # tokens are split out here instead, as `tokenizers` does, and only the text between them is
        # BPE'd; keras_hub's own mechanism is switched off.
        layer.unsplittable_tokens = []
        # Longest first, so a special token that starts another never splits it.
        self._special_pattern = "|".join(re.escape(token) for token in specials)
        self._special_ids = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            specials, [int(layer.token_to_id(token)) for token in specials], tf.string, tf.int64), -1) if specials else None
        self._tokenize = tf.function(self._split_and_tokenize if specials else layer.tokenize,
                                     input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
        self._detokenize = tf.function(layer.detokenize, input_signature=[tf.RaggedTensorSpec([None, None], tf.int32)],
                                       autograph=False)

    def _split_and_tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """`[batch]` strings -> ragged ids: each special token one id, the text around them BPE'd."""
        import tensorflow_text as tf_text

        pieces = tf_text.regex_split(texts, self._special_pattern, self._special_pattern)
        flat = pieces.flat_values
        special = self._special_ids.lookup(flat)
        is_special = special >= 0
        text_ids = tf.cast(self.layer.tokenize(tf.where(is_special, "", flat)), tf.int64)
        special_ids = tf.RaggedTensor.from_row_lengths(tf.boolean_mask(special, is_special),
                                                       tf.cast(is_special, tf.int64))
        per_piece = tf.concat([text_ids, special_ids], axis=1)  # one side is empty for every piece
        return tf.RaggedTensor.from_row_splits(per_piece, pieces.row_splits).merge_dims(1, 2)

    @property
    def separator_id(self) -> int:
        raise CheckpointError("model.backbone.from: a causal language model packs no text pairs")

    def _pad(self, ids: tf.RaggedTensor) -> tf.Tensor:
        return tf.cast(ids[:, : self.max_length], tf.int32).to_tensor(default_value=self.pad_id,
                                                                      shape=[None, self.max_length])

    def detokenize(self, ids: tf.Tensor | tf.RaggedTensor) -> tf.Tensor:
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))
        return self._detokenize(tf.cast(ids, tf.int32))

    def trackables(self) -> list[Any]:
        # keras_hub's BPE keeps its merge cache (a mutable hash table) in a plain Python object,
        # which an export does not find by itself.
        cache = getattr(getattr(self.layer, "cache", None), "id2value", None)
        return [self.layer, *(table for table in (self._special_ids, cache) if table is not None)]


def _special_token_arguments(layer: Any) -> dict[str, Any]:
    """The constructor arguments that give `layer` its special tokens back: keras_hub 0.32's
    `Llama3Tokenizer.get_config` leaves out `bos_token`, `eos_token` and `misc_special_tokens`, and
    rebuilt from its config alone it looks for Llama 3's own tokens, which SmolLM2 lacks."""
    import inspect

    parameters = inspect.signature(type(layer).__init__).parameters
    start, end = getattr(layer, "start_token", None), getattr(layer, "end_token", None)
    values = {"bos_token": start, "eos_token": end,
              "misc_special_tokens": sorted(set(getattr(layer, "special_tokens", [])) - {start, end})}
    return {name: value for name, value in values.items() if name in parameters and value is not None}


def pretrained_tokenizer(spec: Spec, word_starts: bool = False, kind: str = "encoder") -> PretrainedTokenizer:
    """The tokenizer `spec.model.backbone` implies: an encoder's, packed `[CLS] ... [SEP]`, or a
    causal LM's (`kind`). The folder is inspected only when `fit` reads it, so loading a trained
    run (`load`) never needs the checkpoint."""
    import functools

    from kbuild.pretrained.checkpoint import CAUSAL_LM, inspect

    if kind == CAUSAL_LM:
        return CausalLMTokenizer(spec.preprocess.tokenizer, spec.preprocess.max_length,
                                 locate=functools.partial(inspect, spec, CAUSAL_LM))
    return PretrainedTokenizer(spec.preprocess.tokenizer, spec.preprocess.max_length, word_starts,
                               locate=functools.partial(inspect, spec))
