"""task: masked_lm — BERT masking in tf.data, the [MASK] token, training, export and prediction."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TINY_SPEC

MLM_SPEC = TINY_SPEC.replace("name: tiny", "name: tiny-mlm").replace("task: classification", "task: masked_lm") \
    .replace("  pooling: mean\n  head: {hidden: [8]}\n", "").replace("max_steps: 4", "max_steps: 6")


def _masking(vocab_size=1000):
    from kbuild.data.masking import Masking

    return Masking(mask_id=vocab_size - 1, vocab_size=vocab_size, first_ordinary=3)


def _batch(rows=512, length=40, seed=0):
    """Token ids with [CLS] first, [UNK]s sprinkled in and padding of random length."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, 999, (rows, length)).astype("int32")
    ids[:, 0] = 2
    ids[rng.random(ids.shape) < 0.05] = 1
    for row, length_ in enumerate(rng.integers(2, length, rows)):
        ids[row, length_:] = 0
    return ids


def test_masking_chooses_15_percent_of_real_tokens_split_80_10_10_and_never_specials_or_padding():
    import tensorflow as tf

    from kbuild.data.masking import mask_tokens

    ids = _batch()
    corrupted, targets = (t.numpy() for t in mask_tokens(ids, tf.constant([3, 4], tf.int64), _masking()))
    chosen = targets != 0
    ordinary = ids >= 3
    assert not (chosen & ~ordinary).any()  # padding, [UNK] and [CLS] are never chosen
    assert (corrupted[~chosen] == ids[~chosen]).all()  # nothing else changes
    assert (targets[chosen] == ids[chosen]).all()
    assert chosen.sum() / ordinary.sum() == pytest.approx(0.15, abs=0.015)
    masked = corrupted[chosen] == 999
    unchanged = corrupted[chosen] == ids[chosen]
    replaced = ~masked & ~unchanged
    assert masked.mean() == pytest.approx(0.8, abs=0.03)
    assert replaced.mean() == pytest.approx(0.1, abs=0.02)
    assert unchanged.mean() == pytest.approx(0.1, abs=0.02)
    assert ((corrupted[chosen][replaced] >= 3) & (corrupted[chosen][replaced] < 999)).all()


def test_every_text_with_a_real_token_gets_a_target():
    import tensorflow as tf

    from kbuild.data.masking import mask_tokens

    ids = np.zeros((4, 8), "int32")
    ids[0, :2] = [2, 7]  # one real token
    ids[1, :3] = [2, 1, 1]  # only specials: no target possible
    ids[2, :] = 5
    ids[3, :1] = [9]
    _, targets = mask_tokens(ids, tf.constant([0, 1], tf.int64), _masking(100))
    chosen = targets.numpy() != 0
    assert chosen.sum(axis=1)[[0, 2, 3]].min() >= 1
    assert chosen[1].sum() == 0


def test_train_masks_are_fresh_each_epoch_reproducible_from_the_seed_and_fixed_for_valid():
    from kbuild.data.masking import masked_dataset

    ids = _batch(rows=64)

    def epochs(fresh, seed=7):
        dataset = masked_dataset(ids, _masking(), 16, seed=seed, fresh_each_pass=fresh).repeat(2)
        targets = np.concatenate([t.numpy() for _, t in dataset])
        return targets[:64], targets[64:]

    first, second = epochs(fresh=True)
    assert (first != 0).any() and not np.array_equal(first != 0, second != 0)
    assert np.array_equal(epochs(fresh=True)[1], second)  # the same seed, the same masks
    assert not np.array_equal(epochs(fresh=True, seed=8)[0], first)
    valid_first, valid_second = epochs(fresh=False)
    assert np.array_equal(valid_first, valid_second)


def test_mask_token_closes_the_vocabulary_and_leaves_every_other_id_as_before():
    from kbuild.data.tokenizers import make_tokenizer
    from kbuild.names import MASK_TOKEN
    from kbuild.spec.preprocess import WordTokenizerSpec

    texts = ["a fine film", "a dull film", "the best film of the year"]
    plain = make_tokenizer(WordTokenizerSpec(vocab_size=8), 8).fit(texts)
    masked = make_tokenizer(WordTokenizerSpec(vocab_size=8), 8).fit(texts, [MASK_TOKEN])
    assert masked.vocabulary == [*plain.vocabulary[:7], MASK_TOKEN]
    assert masked.token_id(MASK_TOKEN) == 7 and plain.token_id(MASK_TOKEN) is None


@pytest.mark.parametrize("kind", ["word", "wordpiece", "char"])
def test_a_mark_in_the_text_becomes_one_mask_id_whatever_the_tokenizer(kind):
    from kbuild.data.tokenizers import make_tokenizer
    from kbuild.names import MASK_TOKEN
    from kbuild.spec.preprocess import PreprocessSpec

    spec = PreprocessSpec.model_validate({"tokenizer": {"type": kind, "vocab_size": 60}}).tokenizer
    tokenizer = make_tokenizer(spec, 16).fit(["a fine film", "a dull film"] * 20, [MASK_TOKEN])
    mask = tokenizer.token_id(MASK_TOKEN)
    ids = tokenizer.encode_marked(["a [MASK] film", "[MASK]", "a fine film"], MASK_TOKEN, mask).numpy()
    plain = tokenizer.encode(["a ", "", "a fine film"]).numpy()
    assert (ids == mask).sum(axis=1).tolist() == [1, 1, 0]
    assert ids[1, 0] == mask and ids[1, 1] == 0
    np.testing.assert_array_equal(ids[2], plain[2])
    assert ids[0, : (plain[0] != 0).sum()].tolist() == plain[0, : (plain[0] != 0).sum()].tolist()


@pytest.mark.parametrize("block, reason", [
    ("{type: lstm, units: 8}", "left to right"),
    ("{type: transformer_decoder, layers: 1, heads: 2, ff_dim: 16}", "left to right"),
])
def test_a_causal_block_in_a_masked_lm_is_a_spec_error(write_spec, block, reason):
    from kbuild import load_spec
    from kbuild.errors import SpecError

    text = MLM_SPEC.replace("{type: transformer_encoder, layers: 1, heads: 2, ff_dim: 32}", block)
    with pytest.raises(SpecError, match=reason) as error:
        load_spec(write_spec(text))
    assert "model.blocks.0.type" in str(error.value)


@pytest.fixture(scope="module")
def mlm_run(tmp_path_factory):
    import kbuild

    folder = tmp_path_factory.mktemp("mlm")
    (folder / "mlm.yaml").write_text(MLM_SPEC)
    return kbuild.train(kbuild.load_spec(folder / "mlm.yaml"), run_dir=folder / "run")


def test_a_tiny_masked_lm_trains_and_reports_masked_accuracy_and_perplexity(mlm_run):
    import json

    results = json.loads((mlm_run.path / "results.json").read_text())
    assert results["task"] == "masked_lm" and results["labels"] == []
    for split in ("train", "valid", "test"):
        scores = results["metrics"][split]
        assert {"loss", "masked_accuracy", "perplexity"} <= set(scores)
        # Loss and perplexity count the same (chosen) positions: perplexity = exp(loss), but for
        # Keras averaging the loss per batch rather than per token.
        assert scores["perplexity"] == pytest.approx(np.exp(scores["loss"]), rel=0.02)
        assert 0 <= scores["masked_accuracy"] <= 1
    vocabulary = (mlm_run.path / "assets" / "vocab.txt").read_text().split("\n")
    assert vocabulary[-2:] == ["[MASK]", ""]


def test_an_exported_masked_lm_fills_each_mask_in_a_fresh_process_like_the_run(mlm_run, tmp_path):
    import json
    import os
    import subprocess
    import sys
    import textwrap

    from kbuild.exporter import export
    from kbuild.prediction import predict

    texts = ["a [MASK] film", "[MASK] is [MASK]", "the film is good"]
    from_run = predict(mlm_run.path, texts)
    out = export(mlm_run.path, tmp_path / "export")
    code = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        import tensorflow_text  # registers tf-text ops; nothing else is imported
        out = tf.saved_model.load({str(out)!r}).signatures["serving_default"](text=tf.constant({texts!r}))
        assert not [m for m in sys.modules if m == "kbuild" or m.startswith("kbuild.")]
        print(json.dumps([text.decode() for text in out["filled"].numpy()]))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    from_export = [{"filled": text} for text in json.loads(proc.stdout.strip().splitlines()[-1])]
    assert [len(row["masks"]) for row in from_run] == [1, 2, 0]
    assert from_run[0]["filled"].startswith("a ") and from_run[0]["filled"].endswith(" film")
    assert "[MASK]" not in from_run[1]["filled"]
    assert from_run[0]["filled"].split()[1] == from_run[0]["masks"][0][0][0]  # the best candidate fills it
    assert [row["filled"] for row in from_export] == [row["filled"] for row in from_run]
    assert from_run[2]["filled"] == "the film is good"  # no mask: the text as the tokenizer reads it
