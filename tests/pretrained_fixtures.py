"""Tiny pretrained checkpoints built in the test session, no network: a keras-hub preset
(`save_to_preset` of a random BertBackbone and its BertTokenizer) and a Hugging Face folder
(`config.json`, `model.safetensors`, `vocab.txt`, `tokenizer_config.json`) holding the same
weights under Hugging Face's BERT names, as keras_hub's converter reads them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
HIDDEN, HEADS, INTERMEDIATE, LAYERS, POSITIONS = 16, 2, 32, 2, 32


def vocabulary() -> list[str]:
    """Specials (padding id 0, as BERT's), the built-in sentiment data's words and a few pieces."""
    from kbuild.data.builtin import load_builtin

    words = set()
    for split in load_builtin("sentiment").values():
        for example in split.examples:
            words.update(example.text.lower().split())
    # Words of the other tests' tiny datasets (regression, multilabel, tagging), so few are [UNK].
    words |= {"great", "good", "dull", "awful", "film", "news", "about", "and", "goal", "match", "vote", "senate",
              "stock", "angela", "merkel", "john", "smith", "maria", "garcia", "paris", "berlin", "new", "york",
              "visited", ".", ","}
    return [*SPECIALS, *sorted(words), "##s", "##ing"]


def tiny_backbone(vocab: list[str], seed: int = 0):
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    return keras_hub.models.BertBackbone(
        vocabulary_size=len(vocab), num_layers=LAYERS, num_heads=HEADS, hidden_dim=HIDDEN,
        intermediate_dim=INTERMEDIATE, max_sequence_length=POSITIONS, dropout=0.0,
    )


def write_keras_preset(folder: Path, seed: int = 0) -> Path:
    import keras_hub

    vocab = vocabulary()
    tiny_backbone(vocab, seed).save_to_preset(str(folder))
    keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=True).save_to_preset(str(folder))
    return folder


def hugging_face_weights(backbone) -> dict[str, np.ndarray]:
    """The backbone's weights under Hugging Face's BertModel names and layouts (torch's Linear
    stores [out, in]); the exact inverse of keras_hub's convert_bert.convert_weights."""

    def value(variable):
        return np.asarray(variable.numpy(), np.float32)

    weights = {
        "embeddings.word_embeddings.weight": value(backbone.get_layer("token_embedding").embeddings),
        "embeddings.position_embeddings.weight": value(backbone.get_layer("position_embedding").position_embeddings),
        "embeddings.token_type_embeddings.weight": value(backbone.get_layer("segment_embedding").embeddings),
        "embeddings.LayerNorm.weight": value(backbone.get_layer("embeddings_layer_norm").gamma),
        "embeddings.LayerNorm.bias": value(backbone.get_layer("embeddings_layer_norm").beta),
        "pooler.dense.weight": value(backbone.get_layer("pooled_dense").kernel).T.copy(),
        "pooler.dense.bias": value(backbone.get_layer("pooled_dense").bias),
    }
    for i in range(backbone.num_layers):
        block = backbone.get_layer(f"transformer_layer_{i}")
        attention, prefix = block._self_attention_layer, f"encoder.layer.{i}."
        for name, dense in (("query", attention.query_dense), ("key", attention.key_dense), ("value", attention.value_dense)):
            weights[f"{prefix}attention.self.{name}.weight"] = np.ascontiguousarray(np.reshape(value(dense.kernel), (HIDDEN, HIDDEN)).T)
            weights[f"{prefix}attention.self.{name}.bias"] = np.reshape(value(dense.bias), (HIDDEN,))
        weights[f"{prefix}attention.output.dense.weight"] = np.ascontiguousarray(
            np.reshape(value(attention.output_dense.kernel), (HIDDEN, HIDDEN)).T)
        weights[f"{prefix}attention.output.dense.bias"] = value(attention.output_dense.bias)
        weights[f"{prefix}attention.output.LayerNorm.weight"] = value(block._self_attention_layer_norm.gamma)
        weights[f"{prefix}attention.output.LayerNorm.bias"] = value(block._self_attention_layer_norm.beta)
        weights[f"{prefix}intermediate.dense.weight"] = value(block._feedforward_intermediate_dense.kernel).T.copy()
        weights[f"{prefix}intermediate.dense.bias"] = value(block._feedforward_intermediate_dense.bias)
        weights[f"{prefix}output.dense.weight"] = value(block._feedforward_output_dense.kernel).T.copy()
        weights[f"{prefix}output.dense.bias"] = value(block._feedforward_output_dense.bias)
        weights[f"{prefix}output.LayerNorm.weight"] = value(block._feedforward_layer_norm.gamma)
        weights[f"{prefix}output.LayerNorm.bias"] = value(block._feedforward_layer_norm.beta)
    return weights


def write_hugging_face(folder: Path, seed: int = 0, vocab: list[str] | None = None):
    """A Hugging Face BERT folder (`vocab`: its vocabulary, `vocabulary()` by default); returns
    the keras backbone whose weights it holds."""
    from safetensors.numpy import save_file

    vocab = vocab or vocabulary()
    backbone = tiny_backbone(vocab, seed)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": len(vocab), "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": POSITIONS, "type_vocab_size": 2, "hidden_act": "gelu", "pad_token_id": 0,
        "layer_norm_eps": 1e-12,
    }
    (folder / "config.json").write_text(json.dumps(config))
    save_file(hugging_face_weights(backbone), str(folder / "model.safetensors"))
    (folder / "vocab.txt").write_text("".join(f"{token}\n" for token in vocab))
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}))
    return backbone
