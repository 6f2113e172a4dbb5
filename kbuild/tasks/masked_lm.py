"""Masked language modelling (BERT's pretraining objective) over unlabelled text: each text is a row
of token ids, 15 % of its tokens are corrupted per batch (`kbuild.data.masking`: 80 % `[MASK]`,
10 % a random token, 10 % unchanged) and the model predicts the originals at those positions only.
Loss is cross-entropy over the chosen positions; `masked_accuracy` and `perplexity` count them
only. The run's backbone (embedding + blocks) and tokenizer are what `init_from: RUN` starts a
later spec from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kbuild.names import LOGITS, MASK_TOKEN
from kbuild.tasks.base import TASKS, SplitData, Task
from kbuild.tasks.token_loss import perplexity, token_loss

if TYPE_CHECKING:
    from kbuild.data.example import ReadResult
    from kbuild.data.tokenizers import Tokenizer
    from kbuild.spec import Spec
    from kbuild.tasks.bundle import Assets, DataBundle

TOP_K = 5
"""Candidates `serving_default` returns for each `[MASK]` of the input."""
TRAIN_SCORE_BATCHES = 100
"""Batches of the train split that its final scores are computed on (see `evaluate`)."""


class MaskedLanguageModelTask(Task):
    name = "masked_lm"
    logged_metrics = ("masked_accuracy", "perplexity")
    uses_labels = False
    extra_tokens = (MASK_TOKEN,)

    def spec_issues(self, spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """kbuild's own encoder only, and every block must see the whole text: a masked token is
        guessed from both sides."""
        if spec.model.backbone is not None:
            yield ("model", "backbone"), ("masked_lm pretrains kbuild's own embedding and blocks; a "
                                          "pretrained checkpoint is already pretrained: remove model.backbone")
        for i, block in enumerate(spec.model.blocks):
            if block.not_causal_reason() is None:
                yield ("model", "blocks", i, "type"), (
                    f"a masked language model needs encoder blocks that see the whole text, but "
                    f"`{block.type}` reads it left to right only; use transformer_encoder (or a bidirectional block)"
                )

    def label_vocabulary(self, train: ReadResult) -> list[str]:
        return []

    def make_dataset(self, bundle: DataBundle, split: ReadResult, spec: Spec, key: str, train: bool) -> SplitData:
        """Each text's ids (truncated at `preprocess.max_length`), masked anew every epoch for
        train and the same way every time for valid and test."""
        import functools

        from kbuild.data.masking import masked_dataset
        from kbuild.data.pipeline import encode_all

        features = encode_all(bundle.tokenizer, self.texts(split))
        factory = functools.partial(
            masked_dataset, features, masking_for(bundle.tokenizer), spec.train.batch_size,
            seed=spec.seed, fresh_each_pass=train, shuffle=train, shuffle_buffer=spec.train.shuffle_buffer,
            bucketing=train and spec.preprocess.bucketing,
        )
        return SplitData(factory, len(split.examples), features)

    def build_outputs(self, features: Any, spec: Spec, labels: list[str], vocab_size: int) -> Any:
        """Logits over the vocabulary at every position (float32 for a stable loss)."""
        import keras

        return keras.layers.Dense(vocab_size, dtype="float32", name=LOGITS)(features)

    def loss(self, spec: Spec) -> Any:
        return token_loss()  # positions that were not chosen carry the target PAD_ID: nothing to predict

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        from kbuild.data.tokenizers import PAD_ID
        from kbuild.layers import TokenAccuracy

        return [TokenAccuracy(padding=PAD_ID, name="masked_accuracy"), perplexity()]

    def evaluate(self, model: Any, bundle: DataBundle, split: str, spec: Spec) -> dict:
        """The compiled metrics; on train, over its first TRAIN_SCORE_BATCHES batches only. Train
        scores of a masked LM are a sample of random masks anyway, and pretraining text is large:
        scoring all 49,000 IMDB reviews again would take minutes of a 30-minute budget."""
        dataset = bundle.datasets[split]
        if split == "train":
            dataset = dataset.take(TRAIN_SCORE_BATCHES)
        metrics = model.evaluate(dataset, verbose=0, return_dict=True)
        return {name: float(value) for name, value in metrics.items()}

    def serving_functions(self, model: Any, assets: Assets, spec: Spec) -> dict[str, Any]:
        """`serving_default(text)`: each `[MASK]` in the text filled with the model's best token.
        Outputs: `filled` [batch] (the text with every mask filled), and per position `tokens` and
        `probabilities` [batch, max_length, TOP_K], the best candidates at each mask ("" and 0
        elsewhere)."""
        import tensorflow as tf

        from kbuild.names import TEXT_INPUT

        tokenizer = assets.tokenizer
        mask_id = masking_for(tokenizer).mask_id
        vocabulary = tf.constant(tokenizer.vocabulary)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=TEXT_INPUT)])
        def serving_default(text):
            ids = tokenizer.encode_marked(text, MASK_TOKEN, mask_id)
            probabilities = tf.nn.softmax(tf.cast(model(ids, training=False), tf.float32), axis=-1)
            best, candidates = tf.math.top_k(probabilities, TOP_K)
            masked = tf.equal(ids, mask_id)
            filled = tf.where(masked, candidates[..., 0], ids)
            return {
                "filled": tokenizer.detokenize(filled),
                "tokens": tf.where(masked[..., None], tf.gather(vocabulary, candidates), ""),
                "probabilities": tf.where(masked[..., None], best, 0.0),
            }

        return {"serving_default": serving_default}

    def to_rows(self, texts: list[str], outputs: dict[str, Any], labels: list[str]) -> list[dict]:
        """One row per text: the filled text and, for each mask in order, its candidates."""
        rows = []
        for i, text in enumerate(texts):
            masks = [
                [[token.decode("utf-8"), round(float(p), 6)] for token, p in zip(tokens, probabilities, strict=True)]
                for tokens, probabilities in zip(outputs["tokens"][i], outputs["probabilities"][i], strict=True)
                if tokens[0]
            ]
            rows.append({"text": text, "filled": outputs["filled"][i].decode("utf-8"), "masks": masks})
        return rows


def masking_for(tokenizer: Tokenizer) -> Any:
    """BERT's masking over `tokenizer`'s vocabulary, which must hold `[MASK]`."""
    from kbuild.data.masking import Masking
    from kbuild.data.tokenizers import SPECIAL_TOKENS
    from kbuild.errors import DataError

    mask_id = tokenizer.token_id(MASK_TOKEN)
    if mask_id is None:
        raise DataError(f"the vocabulary has no {MASK_TOKEN} token, so it cannot mask; a masked_lm run's "
                        "tokenizer adds it when it is fitted")
    return Masking(mask_id, tokenizer.vocabulary_size, len(SPECIAL_TOKENS))


TASKS.register("masked_lm")(MaskedLanguageModelTask())
