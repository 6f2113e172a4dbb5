"""Pretrained backbones (model.backbone): spec rules, folder checks, loading, tokenizer packing,
trainable / freeze_layers / LoRA. Tiny checkpoints are built in the session (no network)."""

from __future__ import annotations

import json
import shutil
import textwrap

import numpy as np
import pytest

from kbuild import load_spec
from kbuild.errors import SpecError

pytest.importorskip("keras_hub")

from kbuild.pretrained.checkpoint import CheckpointError, inspect  # noqa: E402
from tests.pretrained_fixtures import POSITIONS, write_hugging_face, write_keras_preset  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    written = write_hugging_face(root / "hf")
    write_keras_preset(root / "preset")
    return {"hf": root / "hf", "preset": root / "preset", "written": written}


def _spec_text(source: str, extra: str = "", task: str = "classification") -> str:
    return textwrap.dedent(f"""\
        name: tiny-pretrained
        task: {task}
        seed: 5
        data: {{builtin: sentiment, limit: 64}}
        preprocess: {{max_length: 16}}
        model:
          backbone: {{from: {source}}}
          head: {{dropout: 0.1}}
        train: {{epochs: 1, batch_size: 16, max_steps: 2}}
        """) + textwrap.dedent(extra)


def _spec(write_spec, source, extra: str = "", sets: list[str] | None = None):
    return load_spec(write_spec(_spec_text(source, extra)), overrides=sets or [])


def _errors(write_spec, text: str) -> str:
    with pytest.raises(SpecError) as error:
        load_spec(write_spec(text))
    return str(error.value)


# --- spec rules (no TensorFlow needed) -------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("bert_tiny_en_uncased", "bare name 'bert_tiny_en_uncased'"),
    ("hf://sentence-transformers/all-MiniLM-L6-v2", "URL"),
    ("kaggle://keras/bert/keras/bert_tiny_en_uncased", "URL"),
])
def test_values_keras_hub_would_download_are_spec_errors(write_spec, value, expected):
    message = _errors(write_spec, _spec_text(value))
    assert "model.backbone.from" in message and expected in message


def test_backbone_rules_out_tokenizer_embedding_and_blocks(write_spec):
    text = _spec_text("./ckpt").replace("preprocess: {max_length: 16}",
                                        "preprocess: {max_length: 16, tokenizer: {type: word}}")
    text = text.replace("  head: {dropout: 0.1}", "  embedding: {dim: 32}\n  blocks: [{type: bilstm, units: 8}]\n"
                                                 "  head: {dropout: 0.1}")
    message = _errors(write_spec, text)
    assert "preprocess.tokenizer: the backbone's checkpoint brings its own tokenizer" in message
    assert "model.embedding: the backbone brings its own embeddings" in message
    assert "model.blocks: the backbone is the encoder" in message


def test_backbone_on_a_task_that_reads_no_checkpoint_is_an_error(write_spec):
    message = _errors(write_spec, _spec_text("./ckpt", task="masked_lm"))
    assert "model.backbone: task masked_lm cannot use a pretrained checkpoint" in message


def test_lora_with_freeze_layers_is_an_error(write_spec):
    text = _spec_text("./ckpt").replace("backbone: {from: ./ckpt}", "backbone: {from: ./ckpt, freeze_layers: 1, lora: {rank: 4}}")
    assert "lora freezes every backbone weight" in _errors(write_spec, text)


def test_resolved_spec_writes_from_and_reloads(write_spec, tmp_path):
    spec = _spec(write_spec, "./ckpt")
    resolved = spec.resolved()
    assert resolved["model"]["backbone"]["from"] == "./ckpt" and "from_" not in resolved["model"]["backbone"]
    import yaml

    again = tmp_path / "resolved.yaml"
    again.write_text(yaml.safe_dump(resolved))
    assert load_spec(again).model.backbone.from_ == "./ckpt"


# --- folder checks, before anything heavy ----------------------------------------------------
def _copy(folders, tmp_path, kind="hf"):
    target = tmp_path / "ckpt"
    shutil.copytree(folders[kind], target)
    return target


def _inspect_error(write_spec, folder, extra="") -> str:
    with pytest.raises(CheckpointError) as error:
        inspect(_spec(write_spec, str(folder), extra))
    return str(error.value)


def test_both_folder_formats_pass_and_paths_become_absolute(folders, write_spec, tmp_path, monkeypatch):
    monkeypatch.chdir(folders["hf"].parent)
    checkpoint = inspect(_spec(write_spec, "./hf"))
    assert checkpoint.path.is_absolute() and checkpoint.path == folders["hf"]
    assert (checkpoint.layers, checkpoint.positions, checkpoint.architecture.model_type) == (2, POSITIONS, "bert")
    preset = inspect(_spec(write_spec, str(folders["preset"])))
    assert (preset.layers, preset.positions, preset.architecture.model_type) == (2, POSITIONS, "bert")


def test_folder_without_config_json(folders, write_spec, tmp_path):
    folder = _copy(folders, tmp_path)
    (folder / "config.json").unlink()
    assert f"{folder} has no config.json" in _inspect_error(write_spec, folder)


def test_missing_folder_points_at_make_pretrained(write_spec, tmp_path):
    assert "make pretrained" in _inspect_error(write_spec, tmp_path / "absent")


def test_pytorch_weights_only_says_how_to_convert(folders, write_spec, tmp_path):
    folder = _copy(folders, tmp_path)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    message = _inspect_error(write_spec, folder)
    assert "only as pytorch_model.bin" in message and "safetensors.torch" in message and "model.safetensors" in message


def test_unsupported_model_type_lists_the_supported_ones(folders, write_spec, tmp_path):
    folder = _copy(folders, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "deberta-v2"}))
    message = _inspect_error(write_spec, folder)
    assert "model_type 'deberta-v2'" in message and "supported model types: bert, distilbert" in message


@pytest.mark.parametrize("name", ["vocab.txt", "tokenizer_config.json"])
def test_missing_tokenizer_file_is_named(folders, write_spec, tmp_path, name):
    folder = _copy(folders, tmp_path)
    (folder / name).unlink()
    assert f"has no {name}, which the bert tokenizer needs" in _inspect_error(write_spec, folder)


def test_tokenizer_config_without_do_lower_case(folders, write_spec, tmp_path):
    folder = _copy(folders, tmp_path)
    (folder / "tokenizer_config.json").write_text("{}")
    assert "has no do_lower_case" in _inspect_error(write_spec, folder)


@pytest.mark.parametrize("kind", ["hf", "preset"])
def test_max_length_above_the_checkpoints_positions(folders, write_spec, kind):
    spec = _spec(write_spec, str(folders[kind]), sets=[f"preprocess.max_length={POSITIONS + 1}"])
    with pytest.raises(CheckpointError, match=rf"preprocess.max_length: {POSITIONS + 1} is above the {POSITIONS} positions"):
        inspect(spec)


def test_freeze_layers_beyond_the_depth(folders, write_spec):
    spec = _spec(write_spec, str(folders["hf"]), sets=["model.backbone.freeze_layers=3"])
    with pytest.raises(CheckpointError, match="freeze_layers: 3 is more than the checkpoint's 2 layers"):
        inspect(spec)


def test_train_cli_refuses_a_bad_folder_with_exit_2(folders, write_spec, tmp_path):
    from click.testing import CliRunner

    from kbuild.cli import cli

    folder = _copy(folders, tmp_path)
    (folder / "vocab.txt").unlink()
    result = CliRunner().invoke(cli, ["train", str(write_spec(_spec_text(str(folder)))), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2 and "has no vocab.txt" in result.output


# --- loading through keras_hub ---------------------------------------------------------------
def test_hugging_face_folder_loads_the_weights_it_holds(folders, write_spec):
    import keras

    from kbuild.pretrained.backbone import backbone_features

    ids, features = backbone_features(_spec(write_spec, str(folders["hf"])))
    batch = np.array([[2, 7, 9, 3, 0, 0]], np.int32)
    loaded = keras.Model(ids, features)(batch).numpy()
    written = folders["written"]({"token_ids": batch, "segment_ids": np.zeros_like(batch),
                                  "padding_mask": (batch != 0).astype(np.int32)})["sequence_output"].numpy()
    np.testing.assert_allclose(loaded, written, atol=1e-6)


def test_features_carry_the_padding_mask(folders, write_spec):
    import keras

    from kbuild.pretrained.backbone import backbone_features

    ids, features = backbone_features(_spec(write_spec, str(folders["preset"])))
    model = keras.Model(ids, keras.layers.GlobalAveragePooling1D()(features))
    short = model(np.array([[2, 7, 3]], np.int32)).numpy()
    padded = model(np.array([[2, 7, 3, 0, 0]], np.int32)).numpy()
    np.testing.assert_allclose(short, padded, atol=1e-5)


# --- tokenizer -------------------------------------------------------------------------------
def _tokenizer(write_spec, folder, max_length=8, word_starts=False):
    from kbuild.pretrained.tokenizer import pretrained_tokenizer

    spec = _spec(write_spec, str(folder), sets=[f"preprocess.max_length={max_length}"])
    return pretrained_tokenizer(spec, word_starts=word_starts).fit([])


def test_tokenizer_packs_cls_and_sep_and_truncates(folders, write_spec):
    tokenizer = _tokenizer(write_spec, folders["hf"], max_length=6)
    vocab = tokenizer.vocabulary
    ids = tokenizer.encode(["A Brilliant film", "the film is a brilliant , moving film", ""]).numpy()
    cls, sep = vocab.index("[CLS]"), vocab.index("[SEP]")
    assert ids[0].tolist() == [cls, vocab.index("a"), vocab.index("brilliant"), vocab.index("film"), sep, 0]
    assert ids[1, 0] == cls and ids[1, -1] == sep and 0 not in ids[1]  # cut to fit, [SEP] kept
    assert ids[2].tolist() == [cls, sep, 0, 0, 0, 0]


def test_tokenizer_word_starts_skip_cls_and_stop_before_sep(folders, write_spec):
    tokenizer = _tokenizer(write_spec, folders["hf"], max_length=5, word_starts=True)
    out = tokenizer.encode(["angela merkel visited paris"])
    # [CLS] angela merkel visited [SEP]: three words fit, paris does not.
    assert out["word_starts"].numpy().tolist() == [[1, 2, 3, 0, 0]]
    assert out["token_ids"].numpy()[0, -1] == tokenizer.vocabulary.index("[SEP]")


def test_tokenizer_saved_in_assets_encodes_the_same_without_the_checkpoint(folders, write_spec, tmp_path):
    from kbuild.pretrained.tokenizer import pretrained_tokenizer

    folder = _copy(folders, tmp_path)
    spec = _spec(write_spec, str(folder))
    fitted = pretrained_tokenizer(spec).fit([])
    fitted.save(tmp_path / "assets")
    shutil.rmtree(folder)
    loaded = pretrained_tokenizer(spec).load(tmp_path / "assets")
    texts = ["a brilliant , moving film", "unseenword"]
    np.testing.assert_array_equal(fitted.encode(texts).numpy(), loaded.encode(texts).numpy())
    assert (tmp_path / "assets" / "vocab.txt").read_text().split("\n")[:3] == ["[PAD]", "[UNK]", "[CLS]"]


# --- what trains -----------------------------------------------------------------------------
def _model(write_spec, folder, sets=()):
    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import build as build_data

    spec = _spec(write_spec, str(folder), sets=list(sets))
    return TASKS.get(spec.task).build_model(spec, build_data(spec, splits=("train",)))


def _trainable(model) -> set[str]:
    return {variable.path for variable in model.trainable_variables}


def test_full_fine_tuning_trains_everything_but_the_unused_pooler(folders, write_spec):
    trainable = _trainable(_model(write_spec, folders["hf"]))
    assert any("token_embedding" in path for path in trainable)
    assert any("transformer_layer_1" in path for path in trainable)
    assert not any("pooled_dense" in path for path in trainable)  # sequence output only: no gradient


def test_freeze_layers_freezes_embeddings_and_the_first_layers(folders, write_spec):
    trainable = _trainable(_model(write_spec, folders["hf"], ["model.backbone.freeze_layers=1"]))
    assert not any("embedding" in path or "transformer_layer_0" in path for path in trainable)
    assert any("transformer_layer_1" in path for path in trainable) and any("probabilities" in p for p in trainable)


def test_trainable_false_leaves_only_the_head(folders, write_spec):
    trainable = _trainable(_model(write_spec, folders["hf"], ["model.backbone.trainable=false"]))
    assert trainable and all("probabilities" in path for path in trainable)


def test_lora_trains_adapters_and_head_only_and_fewer_parameters(folders, write_spec):
    from kbuild.pretrained.backbone import parameter_counts

    full = parameter_counts(_model(write_spec, folders["hf"]))
    lora_model = _model(write_spec, folders["hf"], ["model.backbone.lora={rank: 2, alpha: 4}"])
    lora = parameter_counts(lora_model)
    assert lora["parameters"] > full["parameters"]  # the adapters are extra weights
    assert lora["trainable_parameters"] < full["trainable_parameters"] / 4
    backbone_trainable = {p for p in _trainable(lora_model) if "probabilities" not in p}
    assert backbone_trainable and all("query" in p or "value" in p for p in backbone_trainable)
    assert any("lora_kernel_a" in p for p in backbone_trainable)
    assert not any(p.endswith("/kernel") for p in backbone_trainable)  # base kernels frozen


def test_fine_tune_starter_spec_validates(write_spec):
    from kbuild.spec.templates import starter_spec

    spec = load_spec(write_spec(starter_spec("fine_tune")))
    assert spec.model.backbone.from_ == "./pretrained/all-MiniLM-L6-v2" and spec.model.blocks == []


def test_lora_adapters_keep_learning_after_a_checkpoint_is_restored(folders, write_spec, tmp_path):
    from kbuild.training.checkpoint import WEIGHTS, restore_checkpoint, save_checkpoint

    model = _model(write_spec, folders["hf"], ["model.backbone.lora={rank: 2}"])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ids = np.array([[2, 7, 9, 3, 0]], np.int32)
    model.fit(ids, np.array([1]), epochs=1, verbose=0)  # B leaves zero: the merge is not a no-op
    before = model.predict(ids, verbose=0)
    save_checkpoint(model, tmp_path / "checkpoints", epoch=1)
    assert (tmp_path / "checkpoints" / WEIGHTS).is_file()
    restore_checkpoint(model, tmp_path / "checkpoints")
    np.testing.assert_allclose(model.predict(ids, verbose=0), before, atol=1e-5)
    adapters = [v for v in model.trainable_variables if "lora_kernel_a" in v.path]
    assert adapters and all(np.abs(v.numpy()).sum() > 0 for v in adapters)  # zeroed A and B would never train
