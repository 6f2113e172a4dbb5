"""The spec-only commands (validate, schema, init, --help): exit codes, messages, no TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from kbuild.cli import cli
from tests.conftest import REPO, TINY_SPEC


def _run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_validate_ok_prints_one_line(tiny_spec_file):
    result = _run("validate", str(tiny_spec_file))
    assert result.exit_code == 0
    assert result.output.startswith("ok: ") and result.output.count("\n") == 1


def test_validate_errors_exit_2_with_located_lines_and_no_traceback(write_spec):
    path = write_spec(TINY_SPEC.replace("epochs: 1", "epoch: 1").replace("heads: 2", "heads: 3"))
    result = _run("validate", str(path))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{path}:") for line in lines)
    assert "Traceback" not in result.output


def test_validate_applies_set_overrides(tiny_spec_file):
    assert _run("validate", str(tiny_spec_file), "--set", "train.epochs=0").exit_code == 2
    assert _run("validate", str(tiny_spec_file), "--set", "train.epochs=2").exit_code == 0


def test_schema_is_json_with_the_spec_sections():
    schema = json.loads(_run("schema").output)
    assert {"name", "task", "data", "model", "train"} <= set(schema["properties"])


def test_init_prints_a_valid_starter_and_rejects_unknown_tasks(tmp_path):
    result = _run("init", "classification")
    path = tmp_path / "starter.yaml"
    path.write_text(result.output)
    assert _run("validate", str(path)).exit_code == 0
    bad = _run("init", "clasification")
    assert bad.exit_code == 2 and 'did you mean "classification"' in bad.output


def test_validate_and_help_do_not_import_tensorflow(tiny_spec_file):
    code = (
        "import sys\n"
        "from kbuild.cli import cli\n"
        f"for args in (['--help'], ['validate', {str(tiny_spec_file)!r}]):\n"
        "    try:\n"
        "        cli(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True)


def test_a_field_only_another_task_reads_is_an_error_not_silently_ignored(tiny_spec_file):
    result = _run("validate", str(tiny_spec_file), "--set", "model.head.threshold=0.7",
                  "--set", "data.label_separator=;", "--set", "preprocess.tag_scheme=bioes")
    assert result.exit_code == 2
    assert "model.head.threshold: only task multilabel reads this field" in result.output
    assert "data.label_separator" in result.output and "preprocess.tag_scheme: only task tagging" in result.output
    # Fields left at their defaults (as every run folder's resolved spec.yaml holds them) are fine.
    assert _run("validate", str(tiny_spec_file), "--set", "model.head.threshold=0.5").exit_code == 0
    chars = _run("validate", str(tiny_spec_file), "--set", "model.embedding.chars.dim=8")
    assert "model.embedding.chars: only task tagging reads this field" in chars.output
    weights = _run("validate", str(tiny_spec_file), "--set", "task=regression", "--set", "train.class_weight=balanced")
    assert "train.class_weight: only task classification reads this field" in weights.output
