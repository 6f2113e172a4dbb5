"""A causal language model checkpoint as keras_hub's `CausalLM` (backbone, head and preprocessor).

`CausalLM.from_preset` on a Hugging Face folder loses two things this module restores from the
folder itself: values keras_hub's converter does not read (llama's `rms_norm_eps`: its Llama3 converter
keeps the backbone's 1e-6, where SmolLM2 and llama 2 were trained with 1e-5; the checkpoint's
`backbone_arguments`), and `add_bos_token` from `tokenizer_config.json` (keras_hub's preprocessor
prepends the start token to every text, which a ChatML prompt, beginning with `<|im_start|>` itself,
must not get twice), and `tie_word_embeddings` in the config a saved model is rebuilt from.
Loading is the only thing done here; nothing downloads.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import keras

from kbuild.names import LOSS_POSITIONS
from kbuild.pretrained.checkpoint import CAUSAL_LM, HF_TOKENIZER_CONFIG, Checkpoint, CheckpointError

if TYPE_CHECKING:
    import keras_hub


def load_causal_lm(checkpoint: Checkpoint) -> keras_hub.models.CausalLM:
    """keras_hub's `CausalLM` of a checked causal-LM folder (`checkpoint.read_folder`).

    Raises:
        CheckpointError: the folder holds an encoder, or keras_hub cannot load it.

    Examples:
        >>> model = load_causal_lm(read_folder("./pretrained/SmolLM2-135M-Instruct"))
        >>> model.generate("<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n", max_length=64)
    """
    import keras_hub

    if checkpoint.kind != CAUSAL_LM:
        raise CheckpointError(f"{checkpoint.path} holds an encoder ({checkpoint.architecture.model_type}), "
                              "not a causal language model")
    path = str(checkpoint.path)
    try:
        backbone = keras_hub.models.Backbone.from_preset(path, **dict(checkpoint.backbone_arguments))
        model = keras_hub.models.CausalLM.from_preset(path, backbone=backbone)
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"keras_hub could not load the causal LM in {path}: {error}") from None
    _keep_tied_embeddings(model.backbone)
    add_bos = _add_bos_token(checkpoint)
    if add_bos is not None and model.preprocessor is not None:
        model.preprocessor.add_start_token = add_bos
    return model


def _keep_tied_embeddings(backbone: Any) -> None:
    """keras_hub 0.32's `LlamaBackbone.get_config` leaves `tie_word_embeddings` out, so a saved model
    with tied embeddings (SmolLM2) reloads untied and fails ("expected 2 variables"): put the value
    into the config this backbone is saved with."""
    get_config = backbone.get_config
    if not hasattr(backbone, "tie_word_embeddings") or "tie_word_embeddings" in get_config():
        return
    backbone.get_config = lambda: {**get_config(), "tie_word_embeddings": backbone.tie_word_embeddings}


def _add_bos_token(checkpoint: Checkpoint) -> bool | None:
    """`add_bos_token` of the folder's tokenizer config, if it says."""
    path = checkpoint.path / HF_TOKENIZER_CONFIG
    if not path.is_file():
        return None
    config: Any = json.loads(path.read_text(encoding="utf-8"))
    value = config.get("add_bos_token") if isinstance(config, dict) else None
    return value if isinstance(value, bool) else None


def target_positions_model(causal_lm: Any) -> Any:
    """`TargetPositions` around a keras_hub `CausalLM` (kept as it is: a model already wrapped)."""
    return causal_lm if isinstance(causal_lm, TargetPositions) else TargetPositions(causal_lm)


def causal_lm_of(model: Any) -> Any:
    """The `CausalLM` a generation reads: `model`, or the one inside the training model."""
    return model.causal_lm if isinstance(model, TargetPositions) else model


class TargetPositions(keras.Model):
    """A fine-tuned causal LM as training runs it: the output layer computed only where a target
    carries a loss.

    A chat's loss reads the replies only (an AESLC exchange: about 200 tokens, a subject of about
    15), yet keras_hub's `CausalLM` computes the 49,152-word output layer of SmolLM2 at every
    position, and the loss's softmax over each: without them, SmolLM2's LoRA steps on AESLC run
    about 1.7x as fast (benchmarks/RESULTS.md, Session 30). Given
    `inputs[LOSS_POSITIONS]` (`[batch, k]`, from the data pipeline), this model gathers the
    backbone's outputs at those positions first; without it, it is the `CausalLM`.

    What is saved (`save`, so model.keras and everything that loads it) is the `CausalLM` itself:
    exports, generation and `evaluate` see the model they always did. Checkpoints for `--resume`
    are this model's weights and optimizer. A `CausalLM` whose outputs are not its token
    embedding read in reverse (a soft cap on the logits, say) is gathered after its own output
    layer instead: slower, never different.
    """

    def __init__(self, causal_lm: Any, **kwargs: Any):
        super().__init__(name=causal_lm.name, **kwargs)
        self.causal_lm = causal_lm
        self.gathers_features = _outputs_are_reverse_embedding(causal_lm)
        self.built = True

    def call(self, inputs: dict[str, Any], training: bool | None = None) -> Any:
        features = {name: value for name, value in inputs.items() if name != LOSS_POSITIONS}
        positions = inputs.get(LOSS_POSITIONS)
        if positions is None:
            return self.causal_lm(features, training=training)
        if not self.gathers_features:
            return _at(self.causal_lm(features, training=training), positions)
        backbone = self.causal_lm.backbone
        return backbone.token_embedding(_at(backbone(features, training=training), positions), reverse=True)

    def save(self, filepath: Any, *args: Any, **kwargs: Any) -> None:
        self.causal_lm.save(filepath, *args, **kwargs)


def _at(values: Any, positions: Any) -> Any:
    """`values[b, positions[b, j]]`: `[batch, k, ...]` from `[batch, time, ...]`."""
    from keras import ops

    index = ops.expand_dims(positions, -1)
    return ops.take_along_axis(values, ops.broadcast_to(index, (*ops.shape(positions), ops.shape(values)[-1])), axis=1)


def _outputs_are_reverse_embedding(causal_lm: Any) -> bool:
    """Whether the model's logits are its backbone's features through the token embedding in
    reverse (llama, SmolLM2, Mistral, Qwen...), checked on three tokens."""
    import numpy as np

    backbone = causal_lm.backbone
    if not hasattr(backbone, "token_embedding"):
        return False
    features = {"token_ids": np.array([[1, 2, 3]], np.int32), "padding_mask": np.ones((1, 3), np.int32)}
    try:
        direct = backbone.token_embedding(backbone(features), reverse=True)
        return bool(np.allclose(keras.ops.convert_to_numpy(causal_lm(features)), keras.ops.convert_to_numpy(direct),
                                rtol=1e-4, atol=1e-4))
    except (TypeError, ValueError, KeyError):
        return False
