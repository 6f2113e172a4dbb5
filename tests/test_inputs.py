"""Declared inputs: a task names the texts it reads, and reading, tokenising, training, export,
`kbuild predict` and `kbuild serve` all follow. Sentence pairs for the pooled tasks, and a
three-input task defined entirely in this file to prove a new task needs no code elsewhere."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import textwrap

import pytest

from kbuild.data.example import Example
from kbuild.data.readers import read_examples
from kbuild.errors import DataError, SpecError
from kbuild.spec.data import DataSpec

WORDS = "good bad film plot actor great dull scene music story".split()


def _pairs_file(path, rows: int = 160, seed: int = 0, delimiter: str = "\t") -> None:
    """Pairs labelled 1 when both texts start with the same word: learnable only from both texts."""
    rng = random.Random(seed)
    lines = [delimiter.join(("s1", "s2", "label"))]
    for _ in range(rows):
        a = [rng.choice(WORDS) for _ in range(4)]
        b = [rng.choice(WORDS) for _ in range(3)]
        if rng.random() < 0.5:
            b[0] = a[0]
        lines.append(delimiter.join((" ".join(a), " ".join(b), str(int(a[0] == b[0])))))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


PAIR_SPEC = """\
name: pairs
task: classification
seed: 3
data: {{train: {train}, valid_fraction: 0.2, columns: {{text: s1, text_pair: s2, label: label}}}}
preprocess: {{tokenizer: {{type: word, vocab_size: 64}}, max_length: 12}}
model:
  embedding: {{dim: 16}}
  blocks: [{{type: transformer_encoder, layers: 1, heads: 2, ff_dim: 32}}]
  pooling: cls
train: {{epochs: 1, batch_size: 16, max_steps: 6}}
"""


# --- reading -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, delimiter", [("tsv", "\t"), ("csv", ",")])
def test_delimited_readers_give_one_example_with_both_texts(tmp_path, fmt, delimiter):
    path = tmp_path / f"pairs.{fmt}"
    path.write_text(delimiter.join(("label", "s1", "s2")) + "\n" + delimiter.join(("1", "a dog runs", "a dog is running")) + "\n")
    data = DataSpec(train=str(path), columns={"text": "s1", "text_pair": "s2", "label": "label"})
    result = read_examples(str(path), data, "data.train", inputs=("text", "text_pair"))
    assert result.examples == [Example({"text": "a dog runs", "text_pair": "a dog is running"}, "1", 2)]


def test_jsonl_reader_names_the_line_of_a_row_missing_the_second_text(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"s1": "a", "s2": "b", "label": "x"}\n{"s1": "c", "label": "y"}\n')
    data = DataSpec(train=str(path), columns={"text": "s1", "text_pair": "s2", "label": "label"})
    with pytest.raises(DataError, match=r"pairs.jsonl:2: missing key 's2'"):
        read_examples(str(path), data, "data.train", inputs=("text", "text_pair"))


def test_drop_labels_leaves_out_rows_without_a_majority_and_counts_them(tmp_path):
    path = tmp_path / "nli.jsonl"
    path.write_text('{"s1": "a", "s2": "b", "label": "neutral"}\n{"s1": "c", "s2": "d", "label": "-"}\n')
    data = DataSpec(train=str(path), columns={"text": "s1", "text_pair": "s2", "label": "label"}, drop_labels=["-"])
    result = read_examples(str(path), data, "data.train", inputs=("text", "text_pair"))
    assert [e.label for e in result.examples] == ["neutral"] and result.skipped == 1


def test_unknown_role_is_a_located_spec_error_naming_the_tasks_roles(write_spec, tmp_path):
    from kbuild import load_spec

    _pairs_file(tmp_path / "train.tsv")
    path = write_spec(PAIR_SPEC.format(train=tmp_path / "train.tsv").replace("text_pair: s2", "text_par: s2"))
    with pytest.raises(SpecError) as error:
        load_spec(path)
    message = str(error.value)
    assert "spec.yaml:4:" in message and "data.columns.text_par" in message
    assert 'did you mean "text_pair"' in message and "expected roles: text, text_pair, label" in message


# --- packing -------------------------------------------------------------------------------------


def test_pairs_are_packed_cls_a_sep_b_sep_with_segment_ids_and_longest_first_truncation():
    from kbuild.data.tokenizers import make_tokenizer
    from kbuild.spec.preprocess import WordTokenizerSpec

    tokenizer = make_tokenizer(WordTokenizerSpec(vocab_size=50), max_length=9)
    tokenizer.fit(["a b c d e f g h"], extra_tokens=["[SEP]"])
    ids = {token: i for i, token in enumerate(tokenizer.vocabulary)}
    packed = tokenizer.encode_segments([["a b"], ["c d e f g h"]])
    sep, cls = ids["[SEP]"], ids["[CLS]"]
    # 9 = [CLS] + 2 [SEP] + 6 tokens: the longer second text loses tokens until both fit.
    assert packed["token_ids"].numpy().tolist() == [[cls, ids["a"], ids["b"], sep, ids["c"], ids["d"], ids["e"], ids["f"], sep]]
    assert packed["segment_ids"].numpy().tolist() == [[0, 0, 0, 0, 1, 1, 1, 1, 1]]
    assert tokenizer.segments_truncated([["a b", "a"], ["c d e f g h", "b"]]) == 1


# --- a sentence-pair run, end to end --------------------------------------------------------------


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory):
    import kbuild

    folder = tmp_path_factory.mktemp("pairs")
    _pairs_file(folder / "train.tsv")
    spec = folder / "spec.yaml"
    spec.write_text(PAIR_SPEC.format(train=folder / "train.tsv"))
    run = kbuild.train(kbuild.load_spec(spec), run_dir=folder / "run").path
    return run, kbuild.export(run, folder / "export" / "pairs")


def test_pair_export_loads_with_tensorflow_alone_and_takes_text_and_text_pair(pair_run):
    from kbuild.prediction import load_predictor

    run, version = pair_run
    rows = [{"text": "good film a b", "text_pair": "good plot"}, {"text": "bad film", "text_pair": "great plot"}]
    in_process = list(load_predictor(run).predict(rows))
    script = textwrap.dedent(f"""
        import json, tensorflow as tf, tensorflow_text
        serve = tf.saved_model.load({str(version)!r}).signatures["serving_default"]
        assert sorted(serve.structured_input_signature[1]) == ["text", "text_pair"]
        out = serve(text=tf.constant({[r["text"] for r in rows]!r}), text_pair=tf.constant({[r["text_pair"] for r in rows]!r}))
        print(json.dumps(out["probabilities"].numpy().tolist()))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    probabilities = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(probabilities) == 2 and all(abs(sum(p) - 1) < 1e-5 for p in probabilities)
    for row, p in zip(in_process, probabilities, strict=True):
        assert row["text_pair"] and [round(v, 4) for v in row["probabilities"].values()] == [round(v, 4) for v in p]


def test_predict_reads_json_lines_and_csv_with_a_header_and_names_a_row_missing_a_field(pair_run):
    from click.testing import CliRunner

    from kbuild.cli import cli

    run, version = pair_run
    lines = '{"text": "good film", "text_pair": "good plot", "id": 1}\n{"text": "bad film", "text_pair": "dull"}\n'
    result = CliRunner().invoke(cli, ["predict", str(version), "--input", "-"], input=lines)
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert result.exit_code == 0 and [(r["text"], r["text_pair"]) for r in rows] == [("good film", "good plot"), ("bad film", "dull")]
    assert all(set(r["probabilities"]) == {"0", "1"} for r in rows)

    result = CliRunner().invoke(cli, ["predict", str(run), "--format", "csv"], input="text_pair,text\ngood plot,good film\n")
    assert result.exit_code == 0 and json.loads(result.output)["text"] == "good film"

    bad = lines + '{"text": "no pair here"}\n'
    result = CliRunner().invoke(cli, ["predict", str(version)], input=bad)
    assert result.exit_code == 1 and "<stdin>:3: missing field 'text_pair'" in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("{")]) == 2  # rows before it written


def test_serve_takes_row_and_columnar_requests_and_names_a_missing_or_extra_field(pair_run):
    from starlette.testclient import TestClient

    from kbuild.serve import ServerSettings, create_app, load_repository

    _, version = pair_run
    with TestClient(create_app(load_repository(version.parent.parent), ServerSettings())) as client:
        url = "/v1/models/pairs:predict"
        rows = client.post(url, json={"instances": [{"text": "good film", "text_pair": "good plot"}]})
        columns = client.post(url, json={"inputs": {"text": ["good film"], "text_pair": ["good plot"]}})
        assert rows.status_code == 200 and columns.status_code == 200
        assert rows.json()["predictions"][0]["probabilities"] == columns.json()["outputs"]["probabilities"][0]
        missing = client.post(url, json={"instances": [{"text": "good film"}]})
        extra = client.post(url, json={"inputs": {"text": ["a"], "text_pair": ["b"], "text_triple": ["c"]}})
        assert missing.status_code == 400 and "missing field 'text_pair'" in missing.json()["error"]
        assert extra.status_code == 400 and "unknown field 'text_triple'" in extra.json()["error"]
        plain = client.post(url, json={"instances": ["good film"]})
        assert plain.status_code == 400


# --- a new task with three inputs, defined only here -----------------------------------------------


@pytest.fixture
def odd_one_out(monkeypatch):
    """A three-text task: which of `first`, `second`, `third` starts with a different word.
    Registered for the test only: other tests in the process list the registered tasks in their
    messages (pytest-xdist runs several test files in one process)."""
    from kbuild.tasks import TASKS
    from kbuild.tasks.classification import ClassificationTask

    class OddOneOut(ClassificationTask):
        name = "odd_one_out_test"
        inputs = ("first", "second", "third")
        optional_inputs = ()

    monkeypatch.setitem(TASKS._items, OddOneOut.name, OddOneOut())


def test_a_three_input_task_defined_in_a_test_trains_exports_and_serves(odd_one_out, tmp_path):
    from starlette.testclient import TestClient

    import kbuild
    from kbuild.serve import ServerSettings, create_app, load_repository

    rng = random.Random(1)
    with open(tmp_path / "train.jsonl", "w") as out:
        for _ in range(120):
            common, other = rng.sample(WORDS, 2)
            odd = rng.randrange(3)
            texts = [f"{other if i == odd else common} {rng.choice(WORDS)}" for i in range(3)]
            out.write(json.dumps({"first": texts[0], "second": texts[1], "third": texts[2], "label": str(odd)}) + "\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: odd
        task: odd_one_out_test
        data: {{train: {tmp_path / "train.jsonl"}}}
        preprocess: {{tokenizer: {{type: word, vocab_size: 32}}, max_length: 12}}
        model: {{embedding: {{dim: 8}}, blocks: [{{type: transformer_encoder, layers: 1, heads: 2, ff_dim: 16}}], pooling: cls}}
        train: {{epochs: 1, batch_size: 16, max_steps: 3}}
    """))
    loaded = kbuild.load_spec(spec)
    assert loaded.data.columns == {"first": "first", "second": "second", "third": "third", "label": "label"}
    run = kbuild.train(loaded, run_dir=tmp_path / "run")
    assert run.results["counts"]["train"] == 120
    version = kbuild.export(run.path, tmp_path / "export" / "odd")
    with TestClient(create_app(load_repository(tmp_path / "export"), ServerSettings())) as client:
        answer = client.post("/v1/models/odd:predict",
                             json={"instances": [{"first": "good a", "second": "good b", "third": "bad c"}]})
        assert answer.status_code == 200
        probabilities = answer.json()["predictions"][0]["probabilities"]
        assert len(probabilities) == 3 and abs(sum(probabilities) - 1) < 1e-5
    assert json.loads((version / "metadata.json").read_text())["inputs"] == ["first", "second", "third"]


def test_a_missing_input_column_names_the_tasks_inputs(odd_one_out, write_spec, tmp_path):
    from kbuild import load_spec

    path = write_spec(f"""\
        name: odd
        task: odd_one_out_test
        data: {{train: {tmp_path / "x.jsonl"}, columns: {{first: a, second: b, label: y}}}}
    """)
    with pytest.raises(SpecError, match=r"no 'third' column given; task odd_one_out_test reads first, second, third"):
        load_spec(path)


# --- prediction input that streams ---------------------------------------------------------------


def test_rows_stream_from_a_pipe_and_a_bad_row_comes_after_the_rows_before_it():
    from kbuild.prediction.rows import BadRow, read_rows

    stream = io.BytesIO(b"a gorgeous film\na dull mess\n\xff bad\nlast\n")
    rows = list(read_rows(stream, ("text",)))
    assert rows[:2] == [(1, {"text": "a gorgeous film"}), (2, {"text": "a dull mess"})]
    assert isinstance(rows[2], BadRow) and rows[2].line == 3 and rows[3] == (4, {"text": "last"})


def test_a_row_without_line_breaks_is_refused_within_the_byte_bound():
    from kbuild.prediction.rows import BadRow, raw_lines

    with open("/dev/zero", "rb") as endless:
        first = next(raw_lines(endless, max_bytes=1 << 16))
    assert isinstance(first, BadRow) and "longer than 65,536 bytes" in first.message


def test_predict_reads_a_process_substitution_pipe(tiny_run):
    """`kbuild predict RUN --input <(printf ...)` once gave no rows: the input was read twice."""
    read, write = os.pipe()
    os.write(write, b"a gorgeous film\na dull mess\n")
    os.close(write)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "kbuild.cli", "predict", str(tiny_run), "--input", f"/dev/fd/{read}"],
                          capture_output=True, text=True, env=env, pass_fds=(read,), timeout=300)
    os.close(read)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["text"] for line in done.stdout.splitlines()] == ["a gorgeous film", "a dull mess"]


# --- the pair metrics ----------------------------------------------------------------------------


def test_binary_classification_reports_the_positive_class_f1(pair_run):
    import kbuild
    from kbuild.data.splits import read_splits
    from kbuild.evaluation import evaluate as evaluate_run
    from kbuild.prediction import load_predictor

    run, _ = pair_run
    spec = kbuild.load_spec(run / "spec.yaml")
    valid = read_splits(spec.data, spec.seed, ["valid"], inputs=("text", "text_pair"))["valid"].examples
    predicted = [row["label"] for row in load_predictor(run).predict([dict(e.inputs) for e in valid])]
    pairs = list(zip(predicted, [e.label for e in valid], strict=True))
    tp = sum(p == g == "1" for p, g in pairs)
    fp, fn = sum(p == "1" != g for p, g in pairs), sum(g == "1" != p for p, g in pairs)
    assert evaluate_run(run, split="valid")["f1"] == pytest.approx(2 * tp / max(2 * tp + fp + fn, 1), abs=1e-6)


def test_spearman_is_pearson_of_ranks_with_tied_values_sharing_their_mean_rank():
    from kbuild.tasks.regression import spearman

    # x ranks 1, 2.5, 2.5, 4; y ranks 1, 2, 3, 4: r = 4.5 / sqrt(4.5 * 5) = 0.9486833.
    assert spearman([1, 2, 2, 3], [10, 20, 30, 40]) == pytest.approx(0.9486833, abs=1e-6)
    assert spearman([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) == 0.0
