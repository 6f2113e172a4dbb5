"""Task seq2seq: parallel reader, spec checks, and both decoders from spec to a fresh-process
export on a tiny word-mapping corpus a small model learns in seconds."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from kbuild.cli import cli
from kbuild.data.readers import read_examples
from kbuild.errors import DataError
from kbuild.spec.data import DataSpec

WORDS = {"a": "ein", "man": "Mann", "dog": "Hund", "rides": "fährt", "sees": "sieht", "bike": "Rad",
         "red": "rotes", "big": "großes", "cat": "Katze", "the": "das"}


def _pairs(count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    english = list(WORDS)
    out = []
    for _ in range(count):
        words = [rng.choice(english) for _ in range(rng.randint(2, 5))]
        out.append((" ".join(words), " ".join(WORDS[w] for w in words) + " ."))
    return out


def _write_parallel(folder, name, pairs):
    (folder / f"{name}.en").write_text("".join(f"{s}\n" for s, _ in pairs) + "\n")
    (folder / f"{name}.de").write_text("".join(f"{t}\n" for _, t in pairs) + "\n")
    return folder / f"{name}.en"


def _cli(*args, **kwargs):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, **kwargs)


# --- reader ------------------------------------------------------------------------------------
def test_parallel_reader_pairs_aligned_lines_and_ignores_trailing_blank_lines(tmp_path):
    source = _write_parallel(tmp_path, "train", [("a man", "ein Mann ."), ("a dog", "ein Hund .")])
    result = read_examples(str(source), DataSpec(train=str(source), format="parallel", target_suffix=".de"), "data.train")
    assert [(e.text, e.label, e.line) for e in result.examples] == [("a man", "ein Mann .", 1), ("a dog", "ein Hund .", 2)]


def test_parallel_files_of_different_lengths_are_an_error_naming_both_counts(tmp_path):
    source = _write_parallel(tmp_path, "train", [("a man", "ein Mann ."), ("a dog", "ein Hund .")])
    (tmp_path / "train.de").write_text("ein Mann .\n")
    with pytest.raises(DataError, match=r"train.en has 2 lines but train.de has 1"):
        read_examples(str(source), DataSpec(train=str(source), format="parallel", target_suffix="de"), "data.train")


def test_parallel_reader_names_a_blank_target_line_and_a_missing_target_file(tmp_path):
    source = _write_parallel(tmp_path, "train", [("a man", "ein Mann ."), ("a dog", " "), ("a cat", "eine Katze .")])
    data = DataSpec(train=str(source), format="parallel", target_suffix=".de")
    with pytest.raises(DataError, match=r"train.en:2: empty target text at line 2 of train.de"):
        read_examples(str(source), data, "data.train")
    missing = DataSpec(train=str(source), format="parallel", target_suffix=".fr")
    with pytest.raises(DataError, match=r"target file of train.en is missing"):
        read_examples(str(source), missing, "data.train")


# --- spec --------------------------------------------------------------------------------------
def test_seq2seq_without_a_decoder_is_a_spec_error(write_spec):
    path = write_spec("""\
        name: x
        task: seq2seq
        data: {train: t.en, format: parallel, target_suffix: .de}
        model: {blocks: [{type: lstm, units: 8}]}
        """)
    result = _cli("validate", path)
    assert result.exit_code == 2 and "model.decoder" in result.output and "seq2seq needs a decoder" in result.output


# --- end to end --------------------------------------------------------------------------------
DECODERS = {
    "transformer": ("[{type: transformer_encoder, layers: 1, heads: 2, ff_dim: 64, dropout: 0.0}]",
                    "{type: transformer, layers: 1, heads: 2, ff_dim: 64, dropout: 0.0}", "learned", "{}"),
    "lstm": ("[{type: bilstm, units: 24}]", "{type: lstm, units: 32, attention: bahdanau, dropout: 0.0, search: beam, beams: 3}",
             "none", "{type: word, lowercase: false}"),
}


@pytest.fixture(scope="module", params=sorted(DECODERS))
def trained(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"seq2seq-{request.param}")
    blocks, decoder, position, target_tokenizer = DECODERS[request.param]
    train = _write_parallel(folder, "train", _pairs(600, 1))
    valid = _write_parallel(folder, "valid", _pairs(40, 2))
    spec = folder / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: tiny-{request.param}
        task: seq2seq
        seed: 5
        data: {{format: parallel, train: {train}, valid: {valid}, test: {valid}, target_suffix: .de}}
        preprocess: {{tokenizer: {{type: word, lowercase: false}}, target_tokenizer: {target_tokenizer}, max_length: 10}}
        model:
          embedding: {{dim: 32, position: {position}}}
          blocks: {blocks}
          decoder: {decoder}
        train: {{epochs: 12, batch_size: 32, optimizer: {{name: adam, learning_rate: 0.01}}}}
        """).replace("target_tokenizer: {}, ", ""))
    run = folder / "run"
    result = _cli("train", spec, "--run-dir", run)
    assert result.exit_code == 0, result.output
    return run


def test_training_learns_the_mapping_and_reports_bleu_on_decoded_text(trained):
    metrics = json.loads((trained / "results.json").read_text())["metrics"]
    assert "bleu" not in metrics["train"]  # decoding all of train is skipped
    test = metrics["test"]
    assert {"loss", "token_accuracy", "perplexity", "bleu", "bleu_precision_4", "bleu_brevity_penalty"} <= set(test)
    # A word-for-word mapping of ten words: a working encoder-decoder gets it nearly right.
    assert test["bleu"] > 60, test


def test_exported_translator_serves_raw_strings_in_a_fresh_process_equal_to_in_process(trained, tmp_path):
    from kbuild.prediction import load_predictor

    sentences = ["a big dog sees the cat", "the man rides a red bike", ""]
    assert _cli("export", trained, "--out", tmp_path / "export").exit_code == 0
    out = tmp_path / "export" / "1"
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["task"] == "seq2seq" and metadata["signature"]["serving_default"]["outputs"] == ["translation"]
    in_process = [row["translation"] for row in load_predictor(trained).predict(sentences)]
    code = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        import tensorflow_text
        serve = tf.saved_model.load({str(out)!r}).signatures["serving_default"]
        out = serve(text=tf.constant({sentences!r}))["translation"].numpy()
        assert not [m for m in sys.modules if m == "kbuild" or m.startswith("kbuild.")]
        print(json.dumps([t.decode() for t in out]))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == in_process
    assert _nearly(in_process[0], "ein großes Hund sieht das Katze .")


def test_predict_cli_translates_stdin(trained):
    result = _cli("predict", trained, "--input", "-", input="a man rides a bike\n")
    assert result.exit_code == 0, result.output
    row = json.loads(result.output.strip().splitlines()[-1])
    assert row["source"] == "a man rides a bike" and _nearly(row["translation"], "ein Mann fährt ein Rad .")


def _nearly(translation: str, expected: str) -> bool:
    """At most one word of `expected` missing or wrong (the tiny models train for seconds)."""
    words = translation.split()
    return sum(1 for w in set(expected.split()) if w not in words) <= 1 and abs(len(words) - len(expected.split())) <= 1


def test_kbuild_serve_translates_over_the_rest_api(trained, tmp_path):
    from starlette.testclient import TestClient

    from kbuild.prediction import load_predictor
    from kbuild.serve import ServerSettings, create_app, load_repository

    assert _cli("export", trained, "--out", tmp_path / "exports" / "translate").exit_code == 0
    sentences = ["a man rides a bike", "the big cat"]
    expected = [row["translation"] for row in load_predictor(trained).predict(sentences)]
    with TestClient(create_app(load_repository(tmp_path / "exports"), ServerSettings(max_batch_size=4))) as client:
        response = client.post("/v1/models/translate:predict", json={"instances": sentences})
    assert response.status_code == 200, response.text
    assert [row["translation"] if isinstance(row, dict) else row for row in response.json()["predictions"]] == expected


def test_tflite_export_of_a_translator_is_a_clear_usage_error(trained, tmp_path):
    result = CliRunner().invoke(cli, ["export", str(trained), "--format", "tflite", "--out", str(tmp_path / "t")])
    assert result.exit_code == 2
    assert "covers the tasks whose outputs are one model call (classification, regression) and chat" in result.output
    assert "export it as a SavedModel" in result.output and not (tmp_path / "t").exists()


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_cached_transformer_decoding_translates_as_rerunning_the_prefix(trained, search):
    from kbuild.decoding.translator import Translator
    from kbuild.runs import load_trained_run

    loaded = load_trained_run(trained)
    if loaded.spec.model.decoder.type != "transformer":
        pytest.skip("only a Transformer decoder keeps key/value caches")
    decoder = loaded.spec.model.decoder.model_copy(update={"search": search, "beams": 3})
    spec = loaded.spec.model_copy(update={"model": loaded.spec.model.model_copy(update={"decoder": decoder})})
    # Unseen sentences too, so the model is unsure and every step's logits matter.
    sources = [source for source, _ in _pairs(40, 9)] + ["a b c", "", "w3 w1 w1 w7 w2 w9 w0 w4 w5 w6 w8"]
    translate = {cached: Translator(loaded.model, loaded.assets.tokenizer, loaded.assets.target, spec, use_cache=cached)
                 for cached in (True, False)}
    assert translate[True].translate(sources) == translate[False].translate(sources)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_decoding_in_small_calls_translates_as_one_call(trained, search):
    # On a CPU `translate` decodes DECODING_ROWS rows a call (sentences times beams); each
    # sentence's translation is its own, whatever else shares the call. Held beams (a length
    # penalty) make that exact for beam search too.
    from kbuild.decoding.translator import DECODING_ROWS, Translator, decoding_batch
    from kbuild.runs import load_trained_run

    loaded = load_trained_run(trained)
    spec = _with_decoder(loaded.spec, search=search, beams=3, length_penalty=1.0)
    sources = [source for source, _ in _pairs(40, 9)] + ["a b c", "", "w3 w1 w1 w7 w2 w9 w0 w4 w5 w6 w8"]
    translator = Translator(loaded.model, loaded.assets.tokenizer, loaded.assets.target, spec)
    assert decoding_batch(3 if search == "beam" else 1) == DECODING_ROWS // (3 if search == "beam" else 1)
    assert translator.translate(sources) == translator.translate(sources, batch_size=len(sources))


# --- decoding options --------------------------------------------------------------------------
def _with_decoder(spec, **options):
    decoder = spec.model.decoder.model_copy(update=options)
    return spec.model_copy(update={"model": spec.model.model_copy(update={"decoder": decoder})})


def test_decoding_options_bound_lengths_and_block_repeats(trained):
    from kbuild.decoding.translator import Translator
    from kbuild.runs import load_trained_run

    loaded = load_trained_run(trained)
    sources = ["a man sees a man", "the dog", "a big red cat rides the bike", ""]

    def translate(**options):
        spec = _with_decoder(loaded.spec, **options)
        return [t.split() for t in Translator(loaded.model, loaded.assets.tokenizer, loaded.assets.target, spec).translate(sources)]

    assert any(len(words) < 7 for words in translate())
    long = translate(min_length=7, no_repeat_ngram_size=1)
    assert all(len(words) >= 7 and len(set(words)) == len(words) for words in long), long
    assert all(len(words) <= 2 for words in translate(max_length=2))


def test_exported_translator_keeps_the_decoding_options(trained, tmp_path):
    import shutil

    import yaml

    from kbuild.prediction import load_predictor

    resolved = yaml.safe_load((trained / "spec.yaml").read_text())
    if resolved["model"]["decoder"]["type"] != "transformer":
        pytest.skip("one decoder is enough: the options are the same code for both (kbuild.decoding.constraints)")
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    resolved["model"]["decoder"].update(min_length=6, no_repeat_ngram_size=2)
    (run / "spec.yaml").write_text(yaml.safe_dump(resolved))
    assert _cli("export", run, "--out", tmp_path / "export").exit_code == 0
    sentences = ["the cat", "a man sees a man"]
    in_process = [row["translation"] for row in load_predictor(run).predict(sentences)]
    code = textwrap.dedent(f"""
        import json
        import tensorflow as tf
        import tensorflow_text
        serve = tf.saved_model.load({str(tmp_path / "export" / "1")!r}).signatures["serving_default"]
        print(json.dumps([t.decode() for t in serve(text=tf.constant({sentences!r}))["translation"].numpy()]))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    exported = json.loads(proc.stdout.strip().splitlines()[-1])
    assert exported == in_process and all(len(t.split()) >= 6 for t in exported), exported


# --- a tied output layer -------------------------------------------------------------------------
def test_a_tied_output_layer_learns_with_one_table_and_decodes_the_same_cached_and_reloaded(tmp_path):
    """`tie_embeddings`: the output layer is the target embedding read in reverse, so the model has
    no [width, vocab] output kernel; it still learns the mapping, and the reloaded model decodes
    as the trained one, with and without the cache."""
    from kbuild.decoding.translator import Translator
    from kbuild.names import DECODER, TARGET_EMBEDDING
    from kbuild.runs import load_trained_run

    train = _write_parallel(tmp_path, "train", _pairs(600, 1))
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: tiny-tied
        task: seq2seq
        seed: 5
        data: {{format: parallel, train: {train}, target_suffix: .de}}
        preprocess: {{tokenizer: {{type: word, lowercase: false}}, max_length: 10}}
        model:
          embedding: {{dim: 32, position: learned}}
          blocks: [{{type: transformer_encoder, layers: 1, heads: 2, ff_dim: 64, dropout: 0.0}}]
          decoder: {{type: transformer, layers: 1, heads: 2, ff_dim: 64, dropout: 0.0, tie_embeddings: true}}
        train: {{epochs: 12, batch_size: 32, optimizer: {{name: adam, learning_rate: 0.01}}}}
        """))
    result = _cli("train", spec, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["metrics"]["train"]["token_accuracy"] > 0.9

    loaded = load_trained_run(tmp_path / "run")
    decoder = loaded.model.get_layer(DECODER)
    table = decoder.get_layer(TARGET_EMBEDDING).token.embeddings
    assert "logits" not in [layer.name for layer in decoder.layers]
    assert (32, table.shape[0]) not in [tuple(v.shape) for v in loaded.model.weights]  # no output kernel
    assert [v.path for v in decoder.weights].count(table.path) == 1  # one table, saved once
    sources = [source for source, _ in _pairs(30, 9)]
    translations = {cached: Translator(loaded.model, loaded.assets.tokenizer, loaded.assets.target, loaded.spec,
                                       use_cache=cached).translate(sources) for cached in (True, False)}
    assert translations[True] == translations[False]
    right = sum(t == " ".join(WORDS[w] for w in s.split()) + " ." for s, t in zip(sources, translations[True], strict=True))
    assert right >= 25, translations[True]


def test_a_tied_recurrent_decoder_must_be_as_wide_as_the_embedding(write_spec):
    path = write_spec("""\
        name: tied-lstm
        task: seq2seq
        data: {format: parallel, train: a.en, target_suffix: .de}
        model:
          embedding: {dim: 32}
          blocks: [{type: bilstm, units: 24}]
          decoder: {type: lstm, units: 48, tie_embeddings: true}
        """)
    result = _cli("validate", path)
    assert result.exit_code == 2 and "model.decoder.tie_embeddings" in result.output and "units: 32" in result.output
