"""A causal LM's special tokens are one id each wherever they stand, however many the checkpoint has.

keras_hub 0.32 hides each unsplittable token behind a placeholder ("ĴA", "ĴB", ...) and restores them
in turn; from the 11th on ("ĴBA" starts with "ĴB") a token came back as ordinary pieces, in an order
that changed with PYTHONHASHSEED. SmolLM2 has 17 special tokens, so `<|im_end|>` after a reply was
trained and served as seven pieces in some processes. kbuild splits the special tokens out itself.
"""

from __future__ import annotations

import pytest

pytest.importorskip("keras_hub")

from tests.llama_fixtures import MERGES, vocabulary  # noqa: E402

EXTRA = [f"<extra_{i}>" for i in range(14)]


@pytest.fixture(scope="module")
def tokenizer():
    import keras_hub

    from kbuild.pretrained.tokenizer import CausalLMTokenizer
    from kbuild.spec.preprocess import WordPieceTokenizerSpec

    tokens = [*vocabulary(), *EXTRA]
    layer = keras_hub.tokenizers.Llama3Tokenizer(
        vocabulary={token: i for i, token in enumerate(tokens)}, merges=MERGES,
        bos_token="<|im_start|>", eos_token="<|im_end|>", misc_special_tokens={"<|endoftext|>", *EXTRA})
    made = CausalLMTokenizer(WordPieceTokenizerSpec(), max_length=64)
    made._use(layer)
    return made, {token: i for i, token in enumerate(tokens)}


def test_every_special_token_is_one_id_beside_text(tokenizer):
    import tensorflow as tf

    made, ids = tokenizer
    plain = made.token_ids(tf.constant(["the cat", "\n", "is"])).to_list()
    got = made.token_ids(tf.constant(["the cat<|im_end|>\n<|im_start|>is<extra_13><extra_1>"])).to_list()
    assert got == [[*plain[0], ids["<|im_end|>"], *plain[1], ids["<|im_start|>"], *plain[2],
                    ids["<extra_13>"], ids["<extra_1>"]]]


def test_text_without_special_tokens_is_bpe_as_before_and_round_trips(tokenizer):
    import tensorflow as tf

    made, _ = tokenizer
    texts = tf.constant(["the cat is", "", "<not special> cat"])
    eager = made.layer.tokenize(texts)  # keras_hub's own (Python) path, given no special token
    assert made.token_ids(texts).to_list() == [list(row) for row in (eager.to_list() if hasattr(eager, "to_list") else eager)]
    assert made.detokenize(made.token_ids(tf.constant(["the cat<|im_end|>"]))).numpy().tolist() == [b"the cat<|im_end|>"]
