"""GGUF -> Hugging Face llama folder (kbuild.pretrained.gguf), checked against an independent numpy
forward pass of the tiny random llama the test writes (no network), and causal-LM folders in
`model.backbone.from` (kbuild.pretrained.checkpoint)."""

from __future__ import annotations

import json
import shutil
import textwrap

import numpy as np
import pytest

pytest.importorskip("gguf")
pytest.importorskip("keras_hub")

from kbuild import load_spec  # noqa: E402
from kbuild.pretrained.checkpoint import CAUSAL_LM, CheckpointError, inspect, read_folder  # noqa: E402
from kbuild.pretrained.gguf import ConversionError, convert, main, unpermute  # noqa: E402
from tests.llama_fixtures import (  # noqa: E402
    CHAT_TEMPLATE,
    TinyLlama,
    llama_cpp_permute,
    reference_logits,
    vocabulary,
    write_tiny_gguf,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf")
    weights = write_tiny_gguf(root / "tiny.gguf")
    conversion = convert(root / "tiny.gguf", root / "tiny-llama")
    return {"root": root, "gguf": root / "tiny.gguf", "folder": conversion.folder, "weights": weights,
            "conversion": conversion}


@pytest.fixture(scope="module")
def causal_lm(tiny):
    from kbuild.pretrained.causal_lm import load_causal_lm

    return load_causal_lm(read_folder(tiny["folder"]))


@pytest.mark.parametrize("rows, heads", [(32, 4), (16, 2), (576, 9)])
def test_unpermute_inverts_llama_cpps_permutation(rows, heads):
    weight = np.random.default_rng(0).standard_normal((rows, 8))
    np.testing.assert_array_equal(unpermute(llama_cpp_permute(weight, heads), heads), weight)
    assert not np.array_equal(llama_cpp_permute(weight, heads), weight)


def test_converted_keras_hub_model_matches_the_source_models_logits(tiny, causal_lm):
    ids = [1, 40, 3, 200, 263, 90, 2, 17]
    expected = reference_logits(tiny["weights"], ids)
    logits = causal_lm({"token_ids": np.array([ids], np.int32), "padding_mask": np.ones((1, len(ids)), bool)})
    np.testing.assert_allclose(np.asarray(logits)[0], expected, atol=2e-4, rtol=1e-4)
    assert type(causal_lm).__name__ == "Llama3CausalLM"
    assert causal_lm.backbone.layer_norm_epsilon == pytest.approx(1e-5)  # the file's, not keras_hub's 1e-6


def test_an_untied_output_layer_converts_to_lm_head(tmp_path):
    from kbuild.pretrained.causal_lm import load_causal_lm

    untied = TinyLlama(tied=False)
    weights = write_tiny_gguf(tmp_path / "untied.gguf", untied, seed=1)
    folder = convert(tmp_path / "untied.gguf", tmp_path / "untied").folder
    assert json.loads((folder / "config.json").read_text())["tie_word_embeddings"] is False
    ids = [5, 6, 7, 263]
    logits = load_causal_lm(read_folder(folder))({"token_ids": np.array([ids], np.int32),
                                                  "padding_mask": np.ones((1, len(ids)), bool)})
    np.testing.assert_allclose(np.asarray(logits)[0], reference_logits(weights, ids, untied), atol=2e-4, rtol=1e-4)


def test_a_keras_hub_preset_of_a_causal_lm_is_read_as_one(causal_lm, tmp_path):
    causal_lm.backbone.save_to_preset(str(tmp_path / "preset"))
    causal_lm.preprocessor.tokenizer.save_to_preset(str(tmp_path / "preset"))
    checkpoint = read_folder(tmp_path / "preset")
    assert (checkpoint.kind, checkpoint.architecture.model_type, checkpoint.layers, checkpoint.positions) == (
        CAUSAL_LM, "llama", 2, None)


def test_written_weights_are_the_files_dequantised_values_in_hugging_face_layout(tiny):
    from safetensors.numpy import load_file

    written = load_file(str(tiny["folder"] / "model.safetensors"))
    assert set(written) == set(tiny["weights"])
    for name, value in tiny["weights"].items():
        np.testing.assert_array_equal(written[name], value, err_msg=name)


def test_config_and_tokenizer_files(tiny):
    folder = tiny["folder"]
    config = json.loads((folder / "config.json").read_text())
    model = TinyLlama()
    assert (config["model_type"], config["num_hidden_layers"], config["num_key_value_heads"], config["rms_norm_eps"],
            config["tie_word_embeddings"]) == ("llama", model.layers, model.kv_heads, 1e-5, True)
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert (tokenizer_config["bos_token"], tokenizer_config["eos_token"]) == ("<|im_start|>", "<|im_end|>")
    assert tokenizer_config["chat_template"] == CHAT_TEMPLATE and tokenizer_config["add_bos_token"] is False
    provenance = json.loads((folder / "conversion.json").read_text())
    assert provenance["source"] == "tiny.gguf" and provenance["weights_sha256"] == tiny["conversion"].weights_sha256


def test_tokenizers_and_keras_hub_split_text_the_same_way(tiny, causal_lm):
    tokenizers = pytest.importorskip("tokenizers")

    reference = tokenizers.Tokenizer.from_file(str(tiny["folder"] / "tokenizer.json"))
    text = "<|im_start|>the cat is 42<|im_end|>"
    ids = reference.encode(text).ids
    tokens = vocabulary()
    # The specials stay whole, merges apply by rank, and SmolLM's pre-tokenizer puts each digit alone.
    assert [tokens[i] for i in ids] == ["<|im_start|>", "t", "he", "Ġcat", "Ġ", "is", "Ġ", "4", "2", "<|im_end|>"]
    keras_ids = causal_lm.preprocessor.tokenizer(text)
    assert np.asarray(keras_ids).tolist() == ids
    assert reference.decode(ids, skip_special_tokens=True) == "the cat is 42"


def test_generation_is_the_reference_models_greedy_continuation(tiny, causal_lm):
    prompt = [1, 40, 3, 200]
    expected = list(prompt)
    for _ in range(4):
        expected.append(int(np.argmax(reference_logits(tiny["weights"], expected)[-1])))
    causal_lm.compile(sampler="greedy")  # keras_hub's default samples from the top k
    preprocessor, causal_lm.preprocessor = causal_lm.preprocessor, None  # generate from token ids
    try:
        out = causal_lm.generate({"token_ids": np.array([prompt + [0] * 4], np.int32),
                                  "padding_mask": np.array([[True] * 4 + [False] * 4])}, stop_token_ids=None)
    finally:
        causal_lm.preprocessor = preprocessor
    assert np.asarray(out["token_ids"])[0].tolist() == expected


def test_cli_converts_and_reports(tiny, tmp_path, capsys):
    assert main([str(tiny["gguf"]), str(tmp_path / "out")]) == 0
    assert "converted" in capsys.readouterr().out and (tmp_path / "out" / "model.safetensors").is_file()
    assert not (tmp_path / "out.partial").exists()


def test_missing_and_damaged_files_are_named(tiny, tmp_path):
    with pytest.raises(ConversionError, match="absent.gguf: no such GGUF file"):
        convert(tmp_path / "absent.gguf", tmp_path / "out")
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(tiny["gguf"].read_bytes()[:3000])
    with pytest.raises(ConversionError, match="damaged.gguf: not a readable GGUF file"):
        convert(damaged, tmp_path / "out")
    (tmp_path / "text.gguf").write_text("not gguf")
    with pytest.raises(ConversionError, match="text.gguf: not a readable GGUF file"):
        convert(tmp_path / "text.gguf", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_other_architectures_are_refused_by_name(tmp_path):
    import gguf

    writer = gguf.GGUFWriter(str(tmp_path / "phi.gguf"), "phi2")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ConversionError, match="general.architecture is 'phi2'; only 'llama'"):
        convert(tmp_path / "phi.gguf", tmp_path / "out")


# --- causal-LM folders in model.backbone.from --------------------------------------------------
def test_read_folder_tells_a_causal_lm_from_an_encoder(tiny):
    checkpoint = read_folder(tiny["folder"])
    assert (checkpoint.kind, checkpoint.architecture.model_type, checkpoint.layers) == (CAUSAL_LM, "llama", 2)
    assert checkpoint.positions is None  # rotary: no position table to run out of
    assert dict(checkpoint.backbone_arguments) == {"layer_norm_epsilon": pytest.approx(1e-5)}


def test_an_encoder_task_refuses_a_causal_lm_folder(tiny, write_spec):
    spec = load_spec(write_spec(textwrap.dedent(f"""\
        name: wrong-kind
        task: classification
        data: {{builtin: sentiment, limit: 16}}
        model: {{backbone: {{from: {tiny['folder']}}}}}
        """)))
    with pytest.raises(CheckpointError, match=r"is a causal language model \(llama\); task classification needs an "
                                              r"encoder \(bert, distilbert\)"):
        inspect(spec)


@pytest.mark.parametrize("edit, expected", [
    (lambda f: (f / "tokenizer.json").unlink(), "has no tokenizer.json, which the llama tokenizer needs"),
    (lambda f: _drop(f / "config.json", "tie_word_embeddings"), "has no tie_word_embeddings, which keras_hub's llama"),
    (lambda f: _drop(f / "tokenizer_config.json", "eos_token"), "has no eos_token, which the llama tokenizer needs"),
    (lambda f: (f / "model.safetensors").unlink(), "has no model.safetensors"),
])
def test_an_incomplete_causal_lm_folder_names_what_is_missing(tiny, tmp_path, edit, expected):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny["folder"], folder)
    edit(folder)
    with pytest.raises(CheckpointError, match=expected):
        read_folder(folder)


def _drop(path, key):
    content = json.loads(path.read_text())
    del content[key]
    path.write_text(json.dumps(content))
