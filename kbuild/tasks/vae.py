"""Text variational autoencoder (Bowman et al. 2016, "Generating Sentences from a Continuous
Space"): an encoder maps a sentence to a Gaussian posterior over a latent code z, a recurrent
decoder rebuilds the sentence from z. Trained on the negative ELBO, reconstruction cross-entropy
plus the KL term, annealed from 0 and floored by free bits against posterior collapse. Reported
per split: `elbo`, `reconstruction`, `kl`, `perplexity`, `active_units` (see kbuild.tasks.vae_evaluation).
`kbuild generate RUN --samples N | --interpolate A B` decodes sentences (see kbuild.generation.vae_generator).

Examples are single texts; labels, if the data has them, are ignored. Targets are encoded as
seq2seq encodes them (kbuild.data.pairs), with the sentence as its own target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kbuild.names import TEXT_INPUT
from kbuild.tasks.base import TASKS, SplitData, Task

if TYPE_CHECKING:
    from kbuild.data.example import ReadResult
    from kbuild.spec import Spec
    from kbuild.tasks.bundle import Assets, DataBundle

RECONSTRUCTION = "reconstruction"
MEAN = "mean"
SAMPLED_TEXT = "text"


class VaeTask(Task):
    name = "vae"
    backbone_init = False
    logged_metrics = ("token_accuracy",)
    owned_fields = (("model", "latent"),)
    uses_labels = False

    def spec_issues(self, spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
        if spec.model.latent is None:
            yield ("model", "latent"), ("a vae needs a latent code, e.g. latent: {dim: 32, kl_anneal_steps: 2000, "
                                        "free_bits: 0.25, decoder: {type: gru, units: 256}}")
        if spec.model.decoder is not None:
            yield ("model", "decoder"), "model.decoder is for seq2seq; a vae's decoder is model.latent.decoder"
        if spec.model.embedding.pretrained is not None:
            yield ("model", "embedding", "pretrained"), "pretrained vectors are not supported for vae yet"
        if spec.preprocess.bucketing:
            yield ("preprocess", "bucketing"), ("a vae trims every batch to its longest sentence already; "
                                                "set bucketing: false")
        if spec.model.head.hidden or spec.model.head.type != "softmax":
            yield ("model", "head"), "a vae has no head; its output layer is the decoder's (model.latent.decoder)"

    def needs_start_token(self, spec: Spec) -> bool:
        from kbuild.blocks.pooling import POOLINGS

        return POOLINGS.get(spec.model.pooling).needs_start_token

    # --- data ----------------------------------------------------------------------------------
    def label_vocabulary(self, train: ReadResult) -> list[str]:
        return []

    def make_dataset(self, bundle: DataBundle, split: ReadResult, spec: Spec, key: str, train: bool) -> SplitData:
        """Batches of ({source_ids, target_ids: [CLS] w1..wn}, w1..wn [CLS]), each batch trimmed
        to its longest sentence; train is shuffled."""
        import functools

        from kbuild.data.pairs import encode_pairs, pair_dataset

        # The sentence is its own target; whatever label the rows carry is ignored.
        examples = [dataclasses.replace(example, label=example.text) for example in split.examples]
        pairs = encode_pairs(bundle.tokenizer, bundle.tokenizer, examples, spec.preprocess.max_length, key)
        factory = functools.partial(pair_dataset, pairs, spec.train.batch_size, shuffle=train, seed=spec.seed,
                                    shuffle_buffer=spec.train.shuffle_buffer)
        return SplitData(factory, len(examples))

    # --- model ---------------------------------------------------------------------------------
    def build_model(self, spec: Spec, bundle: DataBundle) -> Any:
        from kbuild.tasks.vae_model import build_vae_model

        return build_vae_model(spec, bundle.tokenizer.vocabulary_size)

    def loss(self, spec: Spec) -> Any:
        """Reconstruction in nats per sentence; the posterior layer adds the weighted KL."""
        from kbuild.layers.vae import SentenceCrossEntropy

        return SentenceCrossEntropy()

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        from kbuild.layers import TokenAccuracy

        return [TokenAccuracy(padding=0)]

    def evaluate(self, model: Any, bundle: DataBundle, split: str, spec: Spec) -> dict:
        """The ELBO and its terms, token accuracy, and `loss` (the negative ELBO, as `val_loss` in
        training) in one pass over the split (see kbuild.tasks.vae_evaluation)."""
        from kbuild.tasks.vae_evaluation import elbo_metrics

        return elbo_metrics(model, bundle.datasets[split])

    # --- serving -------------------------------------------------------------------------------
    def serving_functions(self, model: Any, bundle: Assets, spec: Spec) -> dict[str, Any]:
        """`serving_default(text)`: `reconstruction` strings [batch] (greedy, from the posterior
        mean) and the posterior `mean` [batch, dim]; `sample(z)`: latent codes -> `text`."""
        import keras_hub
        import tensorflow as tf

        from kbuild.decoding.vae import TextVae

        codec = TextVae(model, bundle.tokenizer, spec.preprocess.max_length)
        sampler = keras_hub.samplers.GreedySampler()

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=TEXT_INPUT)])
        def serving_default(text):
            mean = codec.encode(text)
            return {RECONSTRUCTION: codec.decode(mean, sampler), MEAN: mean}

        @tf.function(input_signature=[tf.TensorSpec([None, spec.model.latent.dim], tf.float32, name="z")])
        def sample(z):
            return {SAMPLED_TEXT: codec.decode(z, sampler)}

        return {"serving_default": serving_default, "sample": sample}

    def to_rows(self, texts: list[str], outputs: dict[str, Any], labels: list[str]) -> list[dict]:
        return [{"text": text, RECONSTRUCTION: reconstruction.decode("utf-8"), MEAN: [round(float(v), 6) for v in mean]}
                for text, reconstruction, mean in zip(texts, outputs[RECONSTRUCTION], outputs[MEAN], strict=True)]


TASKS.register("vae")(VaeTask())
