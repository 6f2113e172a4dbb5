"""A pretrained encoder as the model's backbone: keras_hub loads it, kbuild sets what trains.

`backbone_features(spec, segments)` is the seam `kbuild.model.build_backbone` calls when
`model.backbone` is set: it returns the model's inputs (`token_ids` as for kbuild's own encoders,
with `segment_ids` for packed text pairs) and the encoder's per-token features `[batch, time,
hidden]` with the padding mask attached, and the task adds its head on top (pooled, or per word
through `FirstSubtoken`) as usual. The weights come only from keras_hub (`Backbone.from_preset`
on the checked, absolute folder); nothing here maps weights by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kbuild.pretrained.checkpoint import CheckpointError, inspect

if TYPE_CHECKING:
    import keras

    from kbuild.spec.backbone import BackboneSpec
    from kbuild.spec.root import Spec

SEQUENCE_OUTPUT = "sequence_output"
"""The per-token output of keras_hub backbones that return a dict (BERT: also `pooled_output`)."""


def load_backbone(spec: Spec) -> Any:
    """The keras_hub backbone of `spec.model.backbone`, pretrained weights loaded and the
    trainable / freeze_layers / lora controls applied."""
    import keras_hub

    checkpoint = inspect(spec)
    try:
        backbone = keras_hub.models.Backbone.from_preset(str(checkpoint.path))
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"model.backbone.from: keras_hub could not load {checkpoint.path}: {error}") from None
    apply_controls(backbone, spec.model.backbone)
    return backbone


def backbone_features(spec: Spec, segments: int = 1) -> tuple[Any, keras.KerasTensor]:
    """(the model's inputs: the `token_ids` input, or a dict with `segment_ids` too for packed
    texts; the backbone's per-token features masked where ids are padding)."""
    import keras

    from kbuild.layers.pretrained import BackboneInputs, MaskedFeatures
    from kbuild.names import SEGMENT_IDS, TOKEN_IDS

    backbone = load_backbone(spec)
    ids = keras.Input(shape=(None,), dtype="int32", name=TOKEN_IDS)
    inputs, fed = ids, ids
    if segments > 1:
        if "segment_ids" not in backbone.input:
            raise CheckpointError(f"model.backbone.from: {type(backbone).__name__} reads no segment ids, so it "
                                  "cannot tell the texts of a pair apart; use a BERT-family checkpoint")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name=SEGMENT_IDS)
        inputs, fed = {TOKEN_IDS: ids, SEGMENT_IDS: segment_ids}, [ids, segment_ids]
    outputs = backbone(BackboneInputs(tuple(backbone.input), name="backbone_inputs")(fed))
    sequence = outputs[SEQUENCE_OUTPUT] if isinstance(outputs, dict) else outputs
    return inputs, MaskedFeatures(name="backbone_features")([sequence, ids])


def token_embedding_table(model: keras.Model) -> Any:
    """The token-embedding variable [vocabulary, hidden] of the checkpoint inside `model` (built
    by `backbone_features`): what a seq2seq decoder sharing the checkpoint's vocabulary starts its
    own target embedding from."""
    for layer in _checkpoints(model):
        if layer.token_embedding is not None:
            return layer.token_embedding.embeddings
    raise CheckpointError("model.backbone.from: the checkpoint has no token embedding layer to start the decoder's "
                          "embedding from; give the target its own preprocess.target_tokenizer")


def backbone_variables(model: keras.Model) -> list[Any]:
    """The trainable variables of the checkpoint(s) inside `model`: what
    `model.backbone.learning_rate_scale` scales (a seq2seq decoder's embedding is a copy, not these)."""
    return [variable for layer in _checkpoints(model) for variable in layer.trainable_variables]


def _checkpoints(model: keras.Model) -> list[Any]:
    """The keras_hub backbones inside `model` (the model itself, when it is one)."""
    import keras_hub

    layers = [model, *model._flatten_layers(include_self=False)]
    return [layer for layer in layers if isinstance(layer, keras_hub.models.Backbone)]


LAYER_PARTS = {"_self_attention_layer": "heads", "_self_attention_layer_norm": "layers",
               "_feedforward_intermediate_dense": "ff_dim", "_feedforward_output_dense": "ff_dim",
               "_feedforward_layer_norm": "layers"}
"""What a decoder layer takes from the checkpoint's layer of the same index (keras_hub's
TransformerEncoder and TransformerDecoder name them alike), and the `model.decoder` key that
shapes each. Cross-attention is the decoder's own: it starts fresh."""

SHAPED_BY = {"heads": lambda weights: weights[0].shape[1], "ff_dim": lambda weights: weights[0].shape[-1]}
"""The value of a `model.decoder` key that the checkpoint's part implies: its attention's query
kernel is [hidden, heads, head size], its first feed-forward kernel [hidden, ff_dim]."""


def start_decoder_from_checkpoint(model: keras.Model, layers: list[Any], embedding_norm: Any, positions: Any) -> None:
    """`model.decoder.from_backbone`: copy the checkpoint's first `len(layers)` transformer layers
    (self-attention, feed-forward, layer norms) into the decoder's `layers`, its embedding
    normalisation into `embedding_norm`, and its position embeddings (plus the first segment's,
    which the checkpoint adds to every token of a single text) into `positions`."""
    (checkpoint,) = _checkpoints(model)
    name = type(checkpoint).__name__
    parts = ("transformer_layers", "embeddings_layer_norm", "position_embedding", "segment_embedding")
    if missing := [part for part in parts if getattr(checkpoint, part, None) is None]:
        raise CheckpointError(f"model.decoder.from_backbone: {name} has no {', '.join(missing)} to start a decoder "
                              "from (BERT-family checkpoints have them); remove from_backbone")
    sources = checkpoint.transformer_layers
    if len(layers) > len(sources):
        raise CheckpointError(f"model.decoder.layers: the checkpoint has {len(sources)} layers to start the decoder's "
                              f"{len(layers)} from; received layers={len(layers)}")
    for index, (source, target) in enumerate(zip(sources[: len(layers)], layers, strict=True)):
        where = f"decoder layer {index} from the checkpoint's layer {index}"
        if source.normalize_first != target.normalize_first:
            raise CheckpointError(f"model.decoder.norm: {where}: the checkpoint normalises "
                                  f"{'before' if source.normalize_first else 'after'} each branch; set norm: "
                                  f"{'pre' if source.normalize_first else 'post'}")
        # BERT's tanh approximation of gelu and the exact gelu differ by under 1e-3: the same function here.
        wanted, used = (layer.activation.__name__.removesuffix("_approximate") for layer in (source, target))
        if wanted != used:
            raise CheckpointError(f"model.decoder.activation: {where}: the checkpoint's feed-forward uses {wanted}; "
                                  f"set activation: {wanted}")
        for part, key in LAYER_PARTS.items():
            weights = getattr(source, part).weights
            hint = f"; set {key}: {SHAPED_BY[key](weights)}" if key in SHAPED_BY else ""
            _copy_weights(getattr(source, part), getattr(target, part), f"model.decoder.{key}: {where}", hint)
    norm = checkpoint.embeddings_layer_norm
    _copy_weights(norm, embedding_norm, "model.decoder.from_backbone: the embedding normalisation")
    embedding_norm.epsilon = norm.epsilon
    table = positions.position_embeddings
    source_positions = checkpoint.position_embedding.position_embeddings
    if table.shape[0] > source_positions.shape[0] or table.shape[1] != source_positions.shape[1]:
        raise CheckpointError(f"preprocess.max_length: the decoder's {table.shape[0]} positions are more than the "
                              f"checkpoint's {source_positions.shape[0]}")
    first_segment = checkpoint.segment_embedding.embeddings[0]
    table.assign(source_positions[: table.shape[0]] + first_segment[None, :])


def _copy_weights(source: Any, target: Any, where: str, hint: str = "") -> None:
    shapes = [tuple(w.shape) for w in source.weights], [tuple(w.shape) for w in target.weights]
    if shapes[0] != shapes[1]:
        raise CheckpointError(f"{where}: the checkpoint's weights are shaped {shapes[0]}, the decoder's "
                              f"{shapes[1]}{hint}")
    for source_weight, target_weight in zip(source.weights, target.weights, strict=True):
        target_weight.assign(source_weight)


def apply_controls(backbone: Any, spec: BackboneSpec) -> None:
    """Set what trains: everything (the default), nothing (`trainable: false`), all but the
    embeddings and first `freeze_layers` transformer layers, or LoRA adapters only. Weights the
    per-token features never use (BERT's pooler) are frozen in every case, so they count as
    neither trained nor updated."""
    if not spec.trainable:
        backbone.trainable = False
        return
    if spec.lora is not None:
        enable_lora(backbone, spec.lora.rank, spec.lora.alpha, spec.lora.targets)
    elif spec.freeze_layers:
        freeze_first_layers(backbone, spec.freeze_layers)
    freeze_unused(backbone)


def enable_lora(backbone: Any, rank: int, alpha: float | None, targets: list[str] | None = None) -> None:
    """Freeze the backbone and put rank-`rank` adapters on the layers named `targets` (default:
    the attention projections keras_hub names for LoRA, `default_lora_layer_names`: query and
    value). Like `Backbone.enable_lora`, with `lora_alpha` passed through; a saved model holds the
    merged kernels."""
    targets = set(targets or backbone.default_lora_layer_names())
    backbone.trainable = True
    for layer in backbone._flatten_layers(include_self=False):
        layer.trainable = False
    adapted = 0
    for layer in backbone._flatten_layers(include_self=False):
        if layer.name in targets and layer.weights and hasattr(layer, "enable_lora"):
            layer.trainable = True
            layer.enable_lora(rank, lora_alpha=alpha)
            adapted += 1
    if not adapted:
        raise CheckpointError(f"model.backbone.lora: {type(backbone).__name__} has no layer named "
                              f"{', '.join(sorted(targets))} to adapt")
    found = {layer.name for layer in backbone._flatten_layers(include_self=False) if hasattr(layer, "enable_lora")}
    if missing := sorted(targets - found - set(backbone.default_lora_layer_names())):
        raise CheckpointError(f"model.backbone.lora.targets: {type(backbone).__name__} has no layer named "
                              f"{', '.join(missing)}; layers that take LoRA: {', '.join(sorted(found))}")


def freeze_first_layers(backbone: Any, count: int) -> None:
    """Freeze every backbone layer (embeddings included) but transformer layers `count` onward."""
    stack = getattr(backbone, "transformer_layers", None)
    if stack is None:
        raise CheckpointError(f"model.backbone.freeze_layers: {type(backbone).__name__} has no transformer_layers "
                              "list to count; use trainable: false or lora instead")
    kept = {id(layer) for layer in stack[count:]}
    for layer in backbone.layers:
        if id(layer) not in kept:
            layer.trainable = False


def freeze_unused(backbone: Any) -> None:
    """Freeze trainable variables the per-token output has no gradient for (found with one tiny
    forward pass), so no optimizer step ever sees a missing gradient."""
    import numpy as np
    import tensorflow as tf

    if not backbone.trainable_variables:
        return
    batch = {name: np.ones((1, 2), np.int32) if name != "segment_ids" else np.zeros((1, 2), np.int32)
             for name in backbone.input}
    variables = backbone.trainable_variables
    unused: set[int] = set()

    def probe() -> None:
        with tf.GradientTape() as tape:
            outputs = backbone(batch, training=False)
            sequence = outputs[SEQUENCE_OUTPUT] if isinstance(outputs, dict) else outputs
        unused.update(i for i, gradient in enumerate(tape.gradient(sequence, variables)) if gradient is None)

    # In a replica's context: under MirroredStrategy the model is built in the strategy's scope, and
    # a tape outside a replica cannot read its mirrored variables.
    tf.distribute.get_strategy().run(probe)
    for i in sorted(unused):
        variables[i].trainable = False


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Total and trainable parameters of `model` (LoRA's point is the ratio between them)."""
    import numpy as np

    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    return {"parameters": int(model.count_params()), "trainable_parameters": trainable}


def restart_lora_adapters(model: keras.Model) -> int:
    """Redraw `lora_kernel_a` of every LoRA layer after weights were loaded; returns their count.

    Keras saves a LoRA layer's kernel with the adapters merged in and, on loading, zeroes both
    factors: the function is kept, but with A = B = 0 neither factor gets a gradient again, so a
    resumed LoRA run would train nothing in the backbone. A fresh A (Keras's He-uniform start) with
    B still 0 keeps the function identical and lets the adapters learn on from the merged kernel."""
    import keras

    count = 0
    for layer in model._flatten_layers(include_self=False):
        if getattr(layer, "lora_enabled", False):
            a = layer.lora_kernel_a
            a.assign(keras.initializers.HeUniform(seed=count)(a.shape, a.dtype))
            count += 1
    return count
