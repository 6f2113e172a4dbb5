"""Task seq2seq with a warm-started encoder (`model.backbone`): a tiny BERT checkpoint's
tokenizer reads the source, kbuild's decoder cross-attends to its features, and the target is
written in the checkpoint's vocabulary (`[CLS]` starts it, `[SEP]` ends it, the decoder's embedding
starts as the checkpoint's) or in a vocabulary of its own. Trained, exported and served raw text in
a fresh process.

The checkpoint's vocabulary puts its special tokens where BERT's are not kbuild's ([CLS] is not
id 2), so a decoder that started or stopped on kbuild's own ids would fail here."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("keras_hub")

import kbuild  # noqa: E402
from kbuild.errors import SpecError  # noqa: E402
from kbuild.pretrained.checkpoint import CheckpointError  # noqa: E402
from tests.pretrained_fixtures import write_hugging_face  # noqa: E402

WORDS = ["great", "good", "dull", "awful", "film", "news", "goal", "match", "vote", "senate", "stock", "paris"]
VOCABULARY = ["[PAD]", "[unused0]", "[unused1]", "[unused2]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s"]
CLS, SEP = VOCABULARY.index("[CLS]"), VOCABULARY.index("[SEP]")


def _lead_pairs(count: int, seed: int) -> list[dict]:
    """An email's "subject" is its first two words: a lead summary a tiny model learns quickly."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 6))]
        rows.append({"email": " ".join(words), "subject": " ".join(words[:2])})
    return rows


def _jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("warm")
    checkpoint = folder / "tiny-bert"
    write_hugging_face(checkpoint, vocab=VOCABULARY)
    return {"checkpoint": checkpoint, "train": _jsonl(folder / "train.jsonl", _lead_pairs(320, 1)),
            "test": _jsonl(folder / "test.jsonl", _lead_pairs(24, 2))}


def _spec(data, folder, *, decoder: str = "{type: transformer, layers: 1, heads: 2, ff_dim: 32, dropout: 0.0}",
          target: str = "", steps: int = 4, epochs: int = 1, backbone: str = ""):
    path = folder / "spec.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: tiny-warm
        task: seq2seq
        seed: 3
        data: {{train: {data['train']}, test: {data['test']}, format: jsonl, columns: {{text: email, label: subject}}}}
        preprocess: {{max_length: 12{target}}}
        model:
          backbone: {{from: {data['checkpoint']}{backbone}}}
          decoder: {decoder}
        eval: {{metrics: [rouge]}}
        train: {{epochs: {epochs}, batch_size: 32, max_steps: {steps}, optimizer: {{name: adam, learning_rate: 0.01}}}}
        """))
    return kbuild.load_spec(path)


def test_backbone_is_a_valid_seq2seq_encoder_but_blocks_beside_it_are_not(data, write_spec):
    spec = write_spec(f"""\
        name: x
        task: seq2seq
        data: {{train: t.jsonl, format: jsonl, columns: {{text: email, label: subject}}}}
        model:
          backbone: {{from: {data['checkpoint']}}}
          decoder: {{type: transformer, layers: 1, heads: 3, ff_dim: 32}}
        """)
    # heads: 3 is checked against the checkpoint's hidden size when the model is built, not here.
    assert kbuild.load_spec(spec).model.backbone is not None
    blocks = write_spec(spec.read_text().replace("  decoder:", "  blocks: [{type: lstm, units: 8}]\n  decoder:"), "b.yaml")
    with pytest.raises(SpecError, match=r"model\.blocks.*the backbone is the encoder"):
        kbuild.load_spec(blocks)


def test_decoder_heads_not_dividing_the_checkpoints_width_are_a_located_error(data, tmp_path):
    spec = _spec(data, tmp_path, decoder="{type: transformer, layers: 1, heads: 3, ff_dim: 32}")
    with pytest.raises(CheckpointError, match=r"model\.decoder\.heads: .*hidden size \(16\).*heads=3"):
        kbuild.train(spec, run_dir=tmp_path / "run")


def test_shared_vocabulary_targets_start_with_cls_end_with_sep_and_reuse_the_embeddings(data, tmp_path):
    from kbuild.data.pairs import encode_pairs
    from kbuild.names import TARGET_EMBEDDING
    from kbuild.pretrained.backbone import token_embedding_table
    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import build

    spec = _spec(data, tmp_path)
    bundle = build(spec, splits=("test",))
    assert bundle.target is bundle.tokenizer and bundle.tokenizer.vocabulary == VOCABULARY
    pairs = encode_pairs(bundle.tokenizer, bundle.target, bundle.examples["test"][:1], 12)
    subject = [VOCABULARY.index(word) for word in bundle.examples["test"][0].label.split()]
    assert pairs.target_in[0, :3].tolist() == [CLS, *subject]
    assert pairs.target_out[0, :3].tolist() == [*subject, SEP]
    assert pairs.source[0, 0] == CLS  # the checkpoint's packing: [CLS] email [SEP]

    model = TASKS.get("seq2seq").build_model(spec, bundle)
    target = model.get_layer("decoder").get_layer(TARGET_EMBEDDING).token.embeddings.numpy()
    np.testing.assert_array_equal(target, token_embedding_table(model).numpy())


FROM_CHECKPOINT = ("{type: transformer, layers: 2, heads: 2, ff_dim: 32, activation: gelu, dropout: 0.0, "
                   "from_backbone: true, search: beam, beams: 2, max_length: 5}")


def test_a_decoder_started_from_the_checkpoint_holds_its_layers_positions_and_embedding_norm(data, tmp_path):
    import keras_hub

    from kbuild.names import TARGET_EMBEDDING, TARGET_EMBEDDING_NORM
    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import build

    spec = _spec(data, tmp_path, decoder=FROM_CHECKPOINT)
    model = TASKS.get("seq2seq").build_model(spec, build(spec, splits=("test",)))
    (checkpoint,) = [layer for layer in model._flatten_layers() if isinstance(layer, keras_hub.models.Backbone)]
    decoder = model.get_layer("decoder")

    def same(a, b):
        return all(np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a.weights, b.weights, strict=True))

    for i, source in enumerate(checkpoint.transformer_layers):
        target = decoder.get_layer(f"decoder_layer{i}")
        for part in ("_self_attention_layer", "_self_attention_layer_norm", "_feedforward_intermediate_dense",
                     "_feedforward_output_dense", "_feedforward_layer_norm"):
            assert same(getattr(source, part), getattr(target, part)), (i, part)
        assert target._cross_attention_layer.weights  # the decoder's own, fresh
    norm = decoder.get_layer(TARGET_EMBEDDING_NORM)
    assert same(checkpoint.embeddings_layer_norm, norm) and norm.epsilon == checkpoint.embeddings_layer_norm.epsilon
    positions = decoder.get_layer(TARGET_EMBEDDING).positions.position_embeddings.numpy()
    expected = checkpoint.position_embedding.position_embeddings.numpy()[:12] + checkpoint.segment_embedding.embeddings.numpy()[0]
    np.testing.assert_allclose(positions, expected, rtol=1e-6)


def test_a_decoder_from_the_checkpoint_decodes_the_same_with_and_without_caches(data, tmp_path):
    from kbuild.decoding.translator import Translator
    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import build

    spec = _spec(data, tmp_path, decoder=FROM_CHECKPOINT)
    bundle = build(spec, splits=("test",))
    model = TASKS.get("seq2seq").build_model(spec, bundle)
    emails = [row.text for row in bundle.examples["test"][:6]] + ["", "paris"]
    translate = {cached: Translator(model, bundle.tokenizer, bundle.target, spec, use_cache=cached).translate(emails)
                 for cached in (True, False)}
    assert translate[True] == translate[False]
    assert any(translate[True])  # the copied layers and the shared embedding write words before any training


@pytest.mark.parametrize(("change", "message"), [
    ("ff_dim: 32", "model\\.decoder\\.ff_dim: decoder layer 0 .*shaped.*; set ff_dim: 32"),
    ("heads: 2", "model\\.decoder\\.heads: decoder layer 0 .*shaped.*; set heads: 2"),
    ("layers: 2", "model\\.decoder\\.layers: the checkpoint has 2 layers to start the decoder's 3"),
    ("activation: gelu", "model\\.decoder\\.activation: .* uses gelu; set activation: gelu"),
])
def test_a_decoder_shaped_unlike_the_checkpoint_is_a_located_error(data, tmp_path, change, message):
    wrong = {"ff_dim: 32": "ff_dim: 64", "heads: 2": "heads: 4", "layers: 2": "layers: 3",
             "activation: gelu": "activation: relu"}[change]
    spec = _spec(data, tmp_path, decoder=FROM_CHECKPOINT.replace(change, wrong))
    with pytest.raises(CheckpointError, match=message):
        kbuild.train(spec, run_dir=tmp_path / "run")


def test_from_backbone_without_a_checkpoint_is_refused_by_validate(write_spec):
    spec = write_spec("""\
        name: x
        task: seq2seq
        data: {train: t.jsonl, format: jsonl, columns: {text: email, label: subject}}
        preprocess: {tokenizer: {type: word, vocab_size: 100}}
        model:
          embedding: {dim: 16}
          blocks: [{type: transformer_encoder, layers: 1, heads: 2, ff_dim: 32}]
          decoder: {type: transformer, layers: 1, heads: 2, ff_dim: 32, from_backbone: true}
        """)
    with pytest.raises(SpecError, match=r"model\.decoder\.from_backbone: there is no checkpoint"):
        kbuild.load_spec(spec)


@pytest.fixture(scope="module")
def warm_run(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("warm-run")
    spec = _spec(data, folder, decoder="{type: transformer, layers: 1, heads: 2, ff_dim: 32, dropout: 0.0, "
                                       "search: beam, beams: 2, min_length: 1, max_length: 4}", steps=60, epochs=6)
    return kbuild.train(spec, run_dir=folder / "run")


@pytest.fixture(scope="module")
def short_run(data, tmp_path_factory):
    """A few steps: what training, scoring and export do with a warm start, not what it learns;
    the decoder started from the checkpoint too, its output layer the checkpoint's embeddings in
    reverse (tied), and the checkpoint at a tenth of the decoder's rate."""
    folder = tmp_path_factory.mktemp("warm-short")
    spec = _spec(data, folder, decoder="{type: transformer, layers: 1, heads: 2, ff_dim: 32, activation: gelu, "
                                       "from_backbone: true, tie_embeddings: true, dropout: 0.0, search: beam, "
                                       "beams: 2, min_length: 1, "
                                       "max_length: 4}", steps=3, backbone=", learning_rate_scale: 0.1")
    return kbuild.train(spec, run_dir=folder / "run")


@pytest.mark.slow  # 60 training steps and a decode: about 4 minutes on 2 busy cores
def test_warm_started_model_learns_lead_subjects_and_reports_rouge(warm_run):
    from kbuild.prediction import load_predictor

    test = warm_run.results["metrics"]["test"]
    assert {"rouge1", "rouge2", "rougeL"} <= set(test)
    # Copying the email's first two words: a decoder that started or ended on the wrong ids scores near 0.
    assert test["rougeL"] > 70, test
    assert load_predictor(warm_run.path).predict(["stock news paris"])[0]["translation"] == "stock news"


def test_exported_warm_start_summarises_raw_text_in_a_fresh_process_equal_to_in_process(short_run, tmp_path):
    from kbuild.prediction import load_predictor

    assert {"rouge1", "rouge2", "rougeL"} <= set(short_run.results["metrics"]["test"])
    emails = ["great film about the senate vote", "stock news paris", ""]
    export = kbuild.export(short_run.path, tmp_path / "export")
    in_process = [row["translation"] for row in load_predictor(short_run.path).predict(emails)]
    code = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        import tensorflow_text  # registers tf-text ops; nothing else is imported
        serve = tf.saved_model.load({str(export)!r}).signatures["serving_default"]
        out = serve(text=tf.constant({emails!r}))["translation"].numpy()
        assert not [m for m in sys.modules if m == "kbuild" or m.startswith("kbuild.") or m.startswith("keras_hub")]
        print(json.dumps([t.decode() for t in out]))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == in_process
    # Words of the checkpoint's vocabulary (at most max_length of them), whatever 3 steps taught it.
    pieces = {*VOCABULARY, *(f"{word}s" for word in VOCABULARY)}  # "##s" joins its word
    assert all(len(text.split()) <= 4 and set(text.split()) <= pieces for text in in_process), in_process


def test_only_the_checkpoints_weights_train_at_the_scaled_rate_and_the_run_reloads(short_run):
    import keras_hub

    from kbuild.runs import RunFolder, load_trained_model

    model = load_trained_model(RunFolder(short_run.path))
    optimizer = model.optimizer
    assert type(optimizer).__name__ == "ScaledAdam" and optimizer.rate_scale == 0.1
    (checkpoint,) = [layer for layer in model._flatten_layers() if isinstance(layer, keras_hub.models.Backbone)]
    # All the checkpoint's weights but its pooler, which the per-token features never use (frozen in
    # training; a reloaded model does not keep flags below the layer, hence the filter).
    expected = {v.path for v in checkpoint.trainable_variables if not v.path.startswith("pooled_dense")}
    assert set(optimizer.scaled_paths) == expected and expected
    # The decoder (its embedding copy included) is not the checkpoint's: it trains at the full rate.
    decoder = {v.path for v in model.get_layer("decoder").trainable_variables}
    assert decoder and not decoder & set(optimizer.scaled_paths)


def test_a_target_tokenizer_of_its_own_gets_kbuilds_ids_and_a_fresh_embedding(data, tmp_path):
    from kbuild.data.pairs import encode_pairs
    from kbuild.names import CLS_ID, TARGET_EMBEDDING
    from kbuild.pretrained.backbone import token_embedding_table
    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import build

    spec = _spec(data, tmp_path, target=", target_tokenizer: {type: word}")
    bundle = build(spec, splits=("test",))
    target = bundle.target
    assert target is not bundle.tokenizer and bundle.tokenizer.vocabulary == VOCABULARY
    assert target.vocabulary[:3] == ["[PAD]", "[UNK]", "[CLS]"] and set(target.vocabulary[3:]) <= set(WORDS)
    pairs = encode_pairs(bundle.tokenizer, target, bundle.examples["test"][:1], 12)
    subject = [target.vocabulary.index(word) for word in bundle.examples["test"][0].label.split()]
    assert pairs.target_in[0, :3].tolist() == [CLS_ID, *subject]  # kbuild's [CLS] starts and ends it
    assert pairs.target_out[0, :3].tolist() == [*subject, CLS_ID]
    assert pairs.source[0, 0] == CLS  # the source is still the checkpoint's

    model = TASKS.get("seq2seq").build_model(spec, bundle)
    embedding = model.get_layer("decoder").get_layer(TARGET_EMBEDDING).token.embeddings
    assert tuple(embedding.shape) == (len(target.vocabulary), 16)  # at the checkpoint's width, started fresh
    assert tuple(token_embedding_table(model).shape) == (len(VOCABULARY), 16)
