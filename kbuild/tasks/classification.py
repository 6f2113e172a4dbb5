"""Text classification (binary and multi-class): softmax head, cross-entropy, accuracy, macro-F1."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kbuild.tasks.base import TASKS, logged_scores
from kbuild.tasks.pooled import PooledTask

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kbuild.spec import Spec
    from kbuild.tasks.bundle import Assets

PROBABILITIES = "probabilities"


class ClassificationTask(PooledTask):
    name = "classification"
    logged_metrics = ("accuracy", "macro_f1")
    owned_fields = (*PooledTask.owned_fields, ("train", "class_weight"))
    head_type_issue = "{head!r} heads are for tagging; classification uses softmax"

    def build_outputs(self, features: Any, spec: Spec, labels: list[str], vocab_size: int) -> Any:
        """Pool the sequence, run the dense head, end in float32 softmax over the labels."""
        import keras

        x = self.pooled(features, spec)
        # float32 output keeps the softmax and the loss stable under mixed precision.
        return keras.layers.Dense(len(labels), activation="softmax", dtype="float32", name=PROBABILITIES)(x)

    def loss(self, spec: Spec) -> Any:
        import keras

        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        import keras

        from kbuild.layers import SparseMacroF1

        # Two labels: also `f1`, the F1 of the second (the positive class when labels sort as 0/1,
        # negative/positive, no/yes), as MRPC and QQP report it.
        binary = [SparseMacroF1(2, name="f1", positive=1)] if len(labels) == 2 else []
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy"), SparseMacroF1(len(labels)), *binary]

    def evaluate(self, model: Any, bundle: Any, split: str, spec: Spec) -> dict:
        """The compiled metrics, `f1` among them for two labels. A model compiled before `f1` was
        one gets it from the confusion matrix the macro-F1 metric just accumulated."""
        metrics = super().evaluate(model, bundle, split, spec)
        confusion = _confusion(model)
        if len(bundle.labels) == 2 and "f1" not in metrics and confusion is not None:
            tp, actual, predicted = confusion[1, 1], confusion[1].sum(), confusion[:, 1].sum()
            metrics["f1"] = float(2 * tp / max(actual + predicted, 1e-9))
        return metrics

    def scores_from_validation(self, logs: Mapping[str, float], bundle: Any, split: str, spec: Spec) -> dict | None:
        return logged_scores(logs, ("loss", *self.logged_metrics, *(("f1",) if len(bundle.labels) == 2 else ())))

    def serving_functions(self, model: Any, assets: Assets, spec: Spec) -> dict[str, Any]:
        """The default `serving_default`, plus `explain(text)` when the model has attention to
        show (attention pooling, or a Transformer encoder): its outputs and `tokens`, `attention`
        (each token's weight), for `kbuild predict --explain`. A second signature keeps
        `serving_default` lean: explaining costs an extra attention pass. Sentence pairs have no
        `explain` (their tokens' weights would mix two texts)."""
        import tensorflow as tf

        from kbuild.names import TEXT_INPUT

        functions = super().serving_functions(model, assets, spec)
        if len(self.input_names(spec)) > 1:  # explained per token of one text; pairs are served plain
            return functions
        if _attention_pooling(model) is None and _last_transformer(model) is None:
            return functions
        tokenizer, labels = assets.tokenizer, assets.labels
        explainer = _explainer(model)
        vocabulary = tf.constant(tokenizer.vocabulary)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=TEXT_INPUT)])
        def explain(text):
            ids = tokenizer.encode(text)
            probabilities, weights = explainer(ids, training=False)
            outputs = self.serving_outputs(probabilities, labels)
            outputs["tokens"] = tf.where(ids != 0, tf.gather(vocabulary, ids), "")
            outputs["attention"] = tf.cast(weights, tf.float32)
            return outputs

        return {**functions, "explain": explain}

    def serving_outputs(self, outputs: Any, labels: list[str]) -> dict[str, Any]:
        """Graph-side post-processing for the SavedModel: probabilities and the winning label."""
        import tensorflow as tf

        probabilities = tf.cast(outputs, tf.float32)
        label = tf.gather(tf.constant(labels), tf.argmax(probabilities, axis=-1))
        return {"probabilities": probabilities, "label": label}

    def to_rows(self, texts: list[str], outputs: dict[str, Any], labels: list[str]) -> list[dict]:
        """JSON-ready predictions, one per input text."""
        rows = []
        for i, text in enumerate(texts):
            probs = outputs["probabilities"][i]
            label = outputs["label"][i]
            rows.append({
                "text": text,
                "label": label.decode() if isinstance(label, bytes) else str(label),
                "probabilities": {name: round(float(p), 6) for name, p in zip(labels, probs, strict=True)},
            })
            if "attention" in outputs:
                rows[-1]["attention"] = [
                    [token.decode("utf-8"), round(float(weight), 6)]
                    for token, weight in zip(outputs["tokens"][i], outputs["attention"][i], strict=True)
                    if token
                ]
        return rows


def _confusion(model: Any) -> Any:
    """The confusion matrix (true x predicted) of the model's last evaluation, or None."""
    import keras

    from kbuild.layers import SparseMacroF1

    stack = list(model.metrics)
    while stack:
        metric = stack.pop()
        if isinstance(metric, SparseMacroF1):
            return keras.ops.convert_to_numpy(metric.confusion)
        stack.extend(getattr(metric, "metrics", []))
    return None


def _attention_pooling(model: Any) -> Any:
    """The model's AttentionPooling layer, or None."""
    from kbuild.layers import AttentionPooling

    return next((layer for layer in model.layers if isinstance(layer, AttentionPooling)), None)


def _last_transformer(model: Any) -> Any:
    from kbuild.layers import TransformerEncoder

    return next((layer for layer in reversed(model.layers) if isinstance(layer, TransformerEncoder)), None)


def _explainer(model: Any) -> Any:
    """The same network with a second output: per-token weights `[batch, time]` summing to 1.

    With attention pooling, its weights. Otherwise the last Transformer encoder layer's attention:
    the attention each token receives, averaged over heads and over the (non-padding) tokens that
    attend, as a distribution over tokens. Built on the trained model's own layers and tensors, so
    the encoder runs once for both outputs.
    """
    import keras

    pooling = _attention_pooling(model)
    if pooling is None:
        return keras.Model(model.input, [model.output, _received_attention(model.input, _last_transformer(model))],
                           name=f"{model.name}_explained")
    from keras import ops

    ids = model.input
    features = pooling.input
    # The pooling's recorded input holds its padding mask too when one flowed into it.
    features = features[0] if isinstance(features, (list, tuple)) else features
    scores = ops.squeeze(pooling.score(features), axis=-1)
    scores = ops.where(ops.not_equal(ids, 0), ops.cast(scores, "float32"), -1e9)
    weights = ops.softmax(scores, axis=-1)
    return keras.Model(ids, [model.output, weights], name=f"{model.name}_explained")


def _received_attention(ids: Any, layer: Any) -> Any:
    from keras import ops

    x = layer.input[0] if isinstance(layer.input, (list, tuple)) else layer.input
    real = ops.not_equal(ids, 0)
    h = layer.attention_norm(x) if layer.norm_first else x
    _, scores = layer.attention(h, h, attention_mask=ops.expand_dims(real, 1), return_attention_scores=True)
    queries = ops.cast(ops.expand_dims(real, -1), "float32")  # [batch, queries, 1]
    received = ops.sum(ops.mean(ops.cast(scores, "float32"), axis=1) * queries, axis=1)  # [batch, keys]
    received = ops.where(real, received, 0.0)
    return received / ops.maximum(ops.sum(received, axis=-1, keepdims=True), 1e-9)


TASKS.register("classification")(ClassificationTask())
