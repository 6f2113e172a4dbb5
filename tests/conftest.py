"""Shared fixtures: quiet TensorFlow, tiny specs written to temporary files; the fuzz suite's
outcome counts, gathered from every pytest-xdist process and printed at the end."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from tests.fuzz.outcomes import OUTCOMES

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

TINY_SPEC = """\
name: tiny
task: classification
seed: 7
data:
  builtin: sentiment
  limit: 256
preprocess:
  tokenizer: {type: word, vocab_size: 500}
  max_length: 16
model:
  embedding: {dim: 16}
  blocks:
    - {type: transformer_encoder, layers: 1, heads: 2, ff_dim: 32}
  pooling: mean
  head: {hidden: [8]}
train:
  epochs: 1
  batch_size: 32
  max_steps: 4
"""


@pytest.fixture
def write_spec(tmp_path):
    """write_spec(text, name="spec.yaml") -> Path of a dedented spec file in a temp folder."""

    def _write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def tiny_spec_file(write_spec):
    return write_spec(TINY_SPEC)


def requires_shared_data(name: str):
    return pytest.mark.skipif(not (SHARED_DATA / name).is_dir(), reason=f"../shared/data/{name} not present")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One tiny trained run (TINY_SPEC, about ten seconds) shared by the deployment tests."""
    import kbuild

    folder = tmp_path_factory.mktemp("tiny-run")
    spec_path = folder / "tiny.yaml"
    spec_path.write_text(TINY_SPEC)
    return kbuild.train(kbuild.load_spec(spec_path), run_dir=folder / "run").path


FUZZ_OUTPUT = "kbuild_fuzz"
"""The key of a pytest-xdist process's fuzz counts in its `workeroutput`."""


def _fuzz_counts() -> dict[str, dict[str, int]]:
    return {target: dict(counts) for target, counts in OUTCOMES.items()}


def pytest_sessionfinish(session):
    if (output := getattr(session.config, "workeroutput", None)) is not None:  # a pytest-xdist process
        output[FUZZ_OUTPUT] = _fuzz_counts()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    for target, counts in getattr(node, "workeroutput", {}).get(FUZZ_OUTPUT, {}).items():
        OUTCOMES[target].update(counts)


def pytest_terminal_summary(terminalreporter):
    if not OUTCOMES:
        return
    terminalreporter.section("kbuild fuzz outcomes")
    for target, counts in sorted(OUTCOMES.items()):
        terminalreporter.write_line(f"{target:>10}: {sum(counts.values()):6d} cases  "
                                    + "  ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if report := os.environ.get("KBUILD_FUZZ_REPORT"):
        with open(report, "w", encoding="utf-8") as out:
            json.dump(_fuzz_counts(), out, indent=2, sort_keys=True)
