"""Spec loading: typed validation, located errors, extends, --set overrides, env expansion."""

from __future__ import annotations

import json

import pytest

from kbuild import load_spec
from kbuild.errors import SpecError
from kbuild.spec import Spec
from kbuild.spec.templates import starter_spec
from tests.conftest import REPO, TINY_SPEC


def _errors(path, overrides=()):
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides)
    return info.value.issues


def test_tiny_spec_loads_with_defaults_filled(tiny_spec_file):
    spec = load_spec(tiny_spec_file)
    assert spec.name == "tiny" and spec.train.optimizer.name == "adam"
    assert spec.model.blocks[0].heads == 2 and spec.model.blocks[0].dropout == 0.1
    assert spec.source == str(tiny_spec_file)


def test_unknown_key_reports_line_column_and_suggestion(write_spec):
    path = write_spec(TINY_SPEC.replace("  max_length: 16", "  max_lenght: 16"))
    (issue,) = _errors(path)
    assert (issue.line, issue.column) == (9, 3)
    assert issue.key == "preprocess.max_lenght"
    assert 'did you mean "max_length"' in issue.message
    assert str(issue).startswith(f"{path}:9:3: preprocess.max_lenght:")


def test_unknown_key_inside_a_block_names_the_block_fields(write_spec):
    path = write_spec(TINY_SPEC.replace("heads: 2,", "heads: 2, lyers: 3,"))
    (issue,) = _errors(path)
    assert issue.key == "model.blocks.0.lyers" and issue.line == 13
    assert 'did you mean "layers"' in issue.message


def test_wrong_type_names_key_and_received_value(write_spec):
    path = write_spec(TINY_SPEC.replace("epochs: 1", "epochs: many"))
    (issue,) = _errors(path)
    assert issue.key == "train.epochs" and issue.line == 17
    assert "valid integer" in issue.message and "'many'" in issue.message


def test_bad_choice_suggests_closest(write_spec):
    path = write_spec(TINY_SPEC.replace("pooling: mean", "pooling: meen"))
    (issue,) = _errors(path)
    assert issue.key == "model.pooling"
    assert 'did you mean "mean"' in issue.message and "attention" in issue.message


def test_unknown_block_type_is_located_at_type(write_spec):
    path = write_spec(TINY_SPEC.replace("type: transformer_encoder", "type: transfomer_encoder"))
    (issue,) = _errors(path)
    assert issue.key == "model.blocks.0.type"
    assert 'did you mean "transformer_encoder"' in issue.message


def test_heads_that_do_not_divide_dim_are_reported_at_the_block(write_spec):
    path = write_spec(TINY_SPEC.replace("heads: 2", "heads: 3"))
    (issue,) = _errors(path)
    assert issue.key == "model.blocks.0.heads" and issue.line == 13
    assert "Expected `heads` to divide the embedding size (16); received heads=3" in issue.message


def test_head_dim_lifts_the_divisibility_rule(write_spec):
    spec = load_spec(write_spec(TINY_SPEC.replace("heads: 2", "heads: 3, head_dim: 16")))
    assert spec.model.blocks[0].head_dim == 16


def test_every_error_is_reported_at_once(write_spec):
    text = TINY_SPEC.replace("seed: 7", "seed: x").replace("pooling: mean", "pooling: nope")
    text = text.replace("epochs: 1", "epochs: 0")
    keys = {issue.key for issue in _errors(write_spec(text))}
    assert keys == {"seed", "model.pooling", "train.epochs"}


def test_missing_required_key_and_missing_data_source(write_spec):
    text = TINY_SPEC.replace("name: tiny\n", "").replace("  builtin: sentiment\n", "")
    messages = {issue.key: issue.message for issue in _errors(write_spec(text))}
    assert 'missing required key "name"' in messages["name"]
    assert "give either `train`" in messages["data"]


def test_extends_inherits_and_overrides_keys(write_spec):
    write_spec(TINY_SPEC, "base.yaml")
    child = write_spec("extends: base.yaml\nname: child\ntrain:\n  epochs: 3\n", "child.yaml")
    spec = load_spec(child)
    assert spec.name == "child" and spec.train.epochs == 3
    assert spec.train.batch_size == 32 and spec.model.blocks[0].heads == 2


def test_extends_error_points_into_the_file_that_holds_the_key(write_spec):
    base = write_spec(TINY_SPEC.replace("batch_size: 32", "batch_size: -1"), "base.yaml")
    child = write_spec("extends: base.yaml\nname: child\n", "child.yaml")
    (issue,) = _errors(child)
    assert issue.file == str(base) and issue.key == "train.batch_size" and issue.line == 18


def test_extends_cycle_is_an_error(write_spec):
    write_spec("extends: b.yaml\nname: a\n", "a.yaml")
    b = write_spec("extends: a.yaml\nname: b\n", "b.yaml")
    (issue,) = _errors(b)
    assert "cycle" in issue.message


def test_set_overrides_are_yaml_typed(tiny_spec_file):
    spec = load_spec(tiny_spec_file, ["train.epochs=5", "model.head.hidden=[8, 4]", "model.blocks.0.heads=4", "data.limit=null"])
    assert spec.train.epochs == 5 and spec.model.head.hidden == [8, 4]
    assert spec.model.blocks[0].heads == 4 and spec.data.limit is None


def test_bad_set_overrides_are_reported_with_the_flag(tiny_spec_file):
    issues = _errors(tiny_spec_file, ["train.epochs=x", "model.blocks.3.heads=2", "nonsense"])
    texts = [str(i) for i in issues]
    assert any(t.startswith("--set train.epochs=x: train.epochs:") for t in texts)
    assert any("out of range" in t for t in texts)
    assert any("expected KEY=VALUE" in t for t in texts)


def test_env_vars_expand_and_kbuild_data_has_a_default(write_spec, monkeypatch):
    text = TINY_SPEC.replace("  builtin: sentiment\n", "  train: ${KBUILD_DATA}/x.tsv\n  valid: ${MY_DIR:-/fallback}/v.tsv\n")
    monkeypatch.delenv("KBUILD_DATA", raising=False)
    spec = load_spec(write_spec(text))
    assert spec.data.train.endswith("shared/data/x.tsv") and spec.data.valid == "/fallback/v.tsv"
    monkeypatch.setenv("KBUILD_DATA", "/elsewhere")
    assert load_spec(write_spec(text)).data.train == "/elsewhere/x.tsv"


def test_undefined_env_var_is_an_error_at_its_line(write_spec, monkeypatch):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    path = write_spec(TINY_SPEC.replace("  builtin: sentiment\n", "  train: ${NOPE_NOT_SET}/x.tsv\n"))
    (issue,) = _errors(path)
    assert issue.key == "data.train" and issue.line == 5 and "NOPE_NOT_SET" in issue.message


def test_json_specs_keep_line_numbers(write_spec):
    data = json.loads(json.dumps(Spec.model_validate({"name": "j", "task": "classification", "data": {"builtin": "sentiment"}}).resolved()))
    data["train"]["epoks"] = 2
    path = write_spec(json.dumps(data, indent=2), "spec.json")
    (issue,) = _errors(path)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "epoks" in text)
    assert issue.key == "train.epoks" and issue.line == line


def test_python_tags_are_refused_not_executed(write_spec):
    path = write_spec("name: !!python/object/apply:os.system ['echo hacked']\ntask: classification\n")
    (issue,) = _errors(path)
    assert "unsupported YAML tag" in issue.message and issue.line == 1


def test_duplicate_keys_and_syntax_errors_are_located(write_spec):
    (dup,) = _errors(write_spec("name: a\nname: b\n"))
    assert dup.message == "duplicate key" and dup.line == 2
    (syntax,) = _errors(write_spec("name: [unclosed\ntask: x\n"))
    assert "invalid YAML" in syntax.message and syntax.line is not None


def test_missing_spec_file(tmp_path):
    (issue,) = _errors(tmp_path / "nope.yaml")
    assert "not found" in issue.message


def test_adam_with_weight_decay_is_refused(write_spec):
    path = write_spec(TINY_SPEC + "  optimizer: {name: adam, weight_decay: 0.1}\n")
    (issue,) = _errors(path)
    assert issue.key == "train.optimizer" and "adamw" in issue.message


def test_schema_lists_every_registered_block():
    schema = json.dumps(Spec.model_json_schema())
    for block in ("transformer_encoder", "lstm", "bilstm", "gru"):
        assert f'"{block}"' in schema


def test_starter_spec_and_repo_specs_validate(write_spec):
    load_spec(write_spec(starter_spec("classification")))
    for path in sorted((REPO / "specs").glob("*.yaml")):
        assert load_spec(path).name
