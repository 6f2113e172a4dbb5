"""Fuzzing the spec loader: every case is a located `SpecError`, or a spec that is genuinely
valid (the property of issue 18). Anything else (another exception, nonsense accepted) fails."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import kbuild
from kbuild.cli import cli
from kbuild.errors import SpecError
from kbuild.paths import expand_data_path
from kbuild.spec.memory import oversized
from kbuild.spec.root import Spec
from kbuild.tasks import TASKS
from tests.fuzz.outcomes import record
from tests.fuzz.strategies import REPO, extends_chain, mutated_spec, overrides, raw_spec

_DEFAULTS = Spec.model_validate({"name": "d", "task": "classification", "data": {"builtin": "sentiment"}}).resolved()


def check_spec_outcome(load) -> str:
    """Run `load()`; a SpecError must locate every issue, an accepted spec must be valid."""
    try:
        spec = load()
    except SpecError as error:
        assert error.issues, "a SpecError with no issue"
        for issue in error.issues:
            assert issue.file, issue
            assert issue.message and "Traceback" not in issue.message, issue
            assert issue.line is not None or issue.key or issue.file.startswith("--set"), f"unlocated: {issue}"
        record("spec", "clean_error")
        return "error"
    assert_genuinely_valid(spec)
    record("spec", "accepted_valid")
    return "valid"


def assert_genuinely_valid(spec: Spec) -> None:
    """What issue 18 found accepted although wrong, checked on every accepted spec."""
    data = spec.resolved()
    _no_nonsense_numbers(data, _DEFAULTS, ())
    assert 0 <= spec.seed < 2**32
    assert all(size >= 1 for size in spec.model.head.hidden)
    assert spec.export.formats
    task = TASKS.get(spec.task)  # the roles are the task's declared inputs and `label`
    assert set(spec.data.columns) <= set(task.roles()) and set(task.inputs) <= set(spec.data.columns)
    for path in (spec.data.train, spec.data.valid, spec.data.test, spec.model.embedding.pretrained):
        assert path is None or (path and not _is_folder(path))
    names = TASKS.get(spec.task).metric_names(spec)
    assert spec.train.monitor in names
    assert spec.train.early_stopping is None or spec.train.early_stopping.monitor in names
    if isinstance(spec.train.class_weight, dict):
        assert all(math.isfinite(w) and w > 0 for w in spec.train.class_weight.values())
    assert not list(oversized(spec))
    # The resolved spec (what a run folder keeps) must load again, strictly.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "resolved.json"
        import json

        path.write_text(json.dumps(data), encoding="utf-8")
        kbuild.load_spec(path)


def _is_folder(path: str) -> bool:
    try:
        return expand_data_path(path).is_dir()
    except (OSError, ValueError, RuntimeError):
        return False


def _no_nonsense_numbers(value, default, path) -> None:
    if isinstance(value, float):
        assert math.isfinite(value), f"{path}: {value}"
    if isinstance(default, int | float) and not isinstance(default, bool) and isinstance(value, bool):
        raise AssertionError(f"{path}: a bool where a number goes")
    if isinstance(value, dict):
        for key, item in value.items():
            _no_nonsense_numbers(item, default.get(key) if isinstance(default, dict) else None, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_nonsense_numbers(item, None, (*path, i))


def _write(folder: str, name: str, content: bytes | str) -> Path:
    path = Path(folder) / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


@given(mutated_spec())
def test_mutated_specs(case):
    suffix, content = case
    with tempfile.TemporaryDirectory() as folder:
        path = _write(folder, "spec" + suffix, content)
        check_spec_outcome(lambda: kbuild.load_spec(path))


@given(raw_spec(), st.integers(0, 9))
def test_raw_bytes_and_yaml_oddities(content, through_cli):
    with tempfile.TemporaryDirectory() as folder:
        path = _write(folder, "spec.yaml", content)
        outcome = check_spec_outcome(lambda: kbuild.load_spec(path))
        if through_cli == 0:  # one case in ten also through `kbuild validate`
            result = CliRunner().invoke(cli, ["validate", str(path)])
            assert result.exit_code == (0 if outcome == "valid" else 2), result.output
            assert "Traceback" not in result.output and "error: " not in result.output


@given(overrides())
def test_set_overrides(case):
    name, sets = case
    check_spec_outcome(lambda: kbuild.load_spec(REPO / "specs" / name, sets))


@given(extends_chain())
def test_extends_chains(case):
    files, top = case
    with tempfile.TemporaryDirectory() as folder:
        for name, text in files.items():
            _write(folder, name, text)
        check_spec_outcome(lambda: kbuild.load_spec(Path(folder) / top))
