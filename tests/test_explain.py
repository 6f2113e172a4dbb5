"""`kbuild predict --explain`: per-token attention weights of attention pooling."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kbuild.cli import cli

pytest.importorskip("tensorflow")

import kbuild  # noqa: E402
from kbuild.prediction import load_predictor  # noqa: E402


def test_explain_gives_attention_over_the_tokens_from_run_and_export(tiny_spec_file, tmp_path):
    spec = kbuild.load_spec(tiny_spec_file, ["model.pooling=attention"])
    run = kbuild.train(spec, run_dir=tmp_path / "run")
    export = kbuild.export(run.path, tmp_path / "export")
    vocabulary = set((run.path / "assets" / "vocab.txt").read_text().split("\n"))
    for source in (run.path, export):
        result = CliRunner().invoke(cli, ["predict", str(source), "--explain"], input="a truly great film\n")
        assert result.exit_code == 0, result.output
        row = json.loads(result.output.strip().splitlines()[-1])
        # One weight per token (words the vocabulary lacks show as [UNK]), padding left out.
        assert [token for token, _ in row["attention"]] == [
            word if word in vocabulary else "[UNK]" for word in ("a", "truly", "great", "film")
        ]
        assert sum(weight for _, weight in row["attention"]) == pytest.approx(1.0, abs=1e-4)
    plain = list(load_predictor(export).predict(["a truly great film"]))[0]
    assert "attention" not in plain and plain["label"] == row["label"]


def test_explain_shows_the_last_transformer_layers_attention_in_its_own_signature(tiny_spec_file, tmp_path):
    run = kbuild.train(kbuild.load_spec(tiny_spec_file), run_dir=tmp_path / "run")  # transformer_encoder, mean pooling
    export = kbuild.export(run.path, tmp_path / "export")
    metadata = json.loads((export / "metadata.json").read_text())
    assert metadata["signature"]["serving_default"]["outputs"] == ["label", "probabilities"]
    assert metadata["signature"]["explain"]["outputs"] == ["attention", "label", "probabilities", "tokens"]
    rows = [list(load_predictor(source).predict(["a truly great film", "dull"], explain=True)) for source in (run.path, export)]
    assert rows[0] == rows[1]
    weights = [weight for _, weight in rows[0][0]["attention"]]
    assert len(weights) == 4 and sum(weights) == pytest.approx(1.0, abs=1e-4) and all(w > 0 for w in weights)
    assert rows[0][1]["attention"] == [["dull", pytest.approx(1.0)]]


def test_explain_without_attention_is_a_clear_error(tiny_spec_file, tmp_path):
    spec = kbuild.load_spec(tiny_spec_file, ["model.blocks=[{type: gru, units: 8}]"])
    run = kbuild.train(spec, run_dir=tmp_path / "run")
    result = CliRunner().invoke(cli, ["predict", str(run.path), "--explain"], input="a film\n")
    assert result.exit_code == 1 and "model.pooling: attention" in result.output and "transformer_encoder" in result.output
