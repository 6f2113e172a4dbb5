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
