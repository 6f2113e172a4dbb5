"""init_from: RUN — a run's backbone (embedding + blocks) and tokenizer start a later spec's model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import TINY_SPEC
from tests.lm_fixtures import train_lm, write_lm_spec
from tests.test_masked_lm import MLM_SPEC

CLASSIFIER = TINY_SPEC.replace("name: tiny", "name: tiny-from-mlm") \
    .replace("  tokenizer: {type: word, vocab_size: 500}\n", "") \
    .replace("ff_dim: 32}", "ff_dim: 32, dropout: 0.3}") \
    .replace("max_steps: 4", "max_steps: 2")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny trained masked_lm run."""
    import kbuild

    folder = tmp_path_factory.mktemp("source")
    (folder / "mlm.yaml").write_text(MLM_SPEC)
    return kbuild.train(kbuild.load_spec(folder / "mlm.yaml"), run_dir=folder / "runs" / "tiny-mlm" / "20260101-000000").path


def _spec(write_spec, run, text=CLASSIFIER, sets=()):
    from kbuild import load_spec

    return load_spec(write_spec(f"{text}init_from: {run}\n"), list(sets))


def _started(spec):
    """The spec's model with the source's backbone copied in, and the same model without the copy."""
    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import build
    from kbuild.training.init_from import copy_backbone, init_source

    spec, found = init_source(spec)
    bundle = build(spec, splits=("train",), vocabulary_from=found.folder.assets)
    task = TASKS.get(spec.task)
    fresh, started = task.build_model(spec, bundle), task.build_model(spec, bundle)
    return fresh, started, copy_backbone(started, found, spec)


def _weights(model, names):
    return {weight.path: np.asarray(weight.numpy()) for layer in model.layers if layer.name in names
            for weight in layer.weights}


def test_init_from_copies_exactly_the_backbone_weights_and_not_the_head(source, write_spec):
    from kbuild.runs import RunFolder, load_trained_model

    fresh, started, copied = _started(_spec(write_spec, source))
    run = load_trained_model(RunFolder(source))
    backbone = {"embedding", "block0_layer0"}
    theirs, mine = _weights(run, backbone), _weights(started, backbone)
    assert mine.keys() == theirs.keys() and mine
    for path, value in theirs.items():
        np.testing.assert_array_equal(mine[path], value, err_msg=path)
    head = {layer.name for layer in started.layers if layer.weights} - backbone
    assert head == {"head_dense0", "probabilities"}
    for path, value in _weights(fresh, head).items():  # the head keeps its seeded start
        np.testing.assert_array_equal(_weights(started, head)[path], value, err_msg=path)
    assert copied["layers"] == 2 and copied["tensors"] == len(theirs)
    assert copied["parameters"] == sum(value.size for value in theirs.values())


def test_a_trained_run_from_runs_name_uses_the_latest_stamp_and_records_init_from(source, write_spec, tmp_path, capsys):
    import kbuild

    run = kbuild.train(_spec(write_spec, source.parent), run_dir=tmp_path / "run")
    results = json.loads((run.path / "results.json").read_text())
    assert results["init_from"]["run"] == str(source)
    assert results["init_from"]["task"] == "masked_lm" and results["init_from"]["layers"] == 2
    assert (run.path / "assets" / "vocab.txt").read_text() == (source / "assets" / "vocab.txt").read_text()
    assert "word" in (run.path / "spec.yaml").read_text()  # the source's tokenizer section, not the default
    assert f"copied {results['init_from']['tensors']} tensors" in capsys.readouterr().err


def test_a_backbone_of_another_shape_is_an_error_naming_the_layer_and_both_shapes(source, write_spec):
    from kbuild.errors import TrainingError

    with pytest.raises(TrainingError, match=r"'embedding', weight token/embeddings: shape \(\d+, 32\) in the new "
                                            r"model, shape \(\d+, 16\) in the run's"):
        _started(_spec(write_spec, source, sets=["model.embedding.dim=32"]))
    with pytest.raises(TrainingError, match="backbone layer 'block0_layer1' has no layer of that name"):
        _started(_spec(write_spec, source, sets=["model.blocks.0.layers=2"]))


def test_a_different_tokenizer_than_the_runs_is_an_error(source, write_spec):
    from kbuild.errors import TrainingError
    from kbuild.training.init_from import init_source

    same = _spec(write_spec, source, sets=["preprocess.tokenizer.type=word", "preprocess.tokenizer.vocab_size=500"])
    assert init_source(same)[0].preprocess.tokenizer.type == "word"
    with pytest.raises(TrainingError, match="the run's tokenizer and vocabulary are used"):
        init_source(_spec(write_spec, source, sets=["preprocess.tokenizer.type=char"]))


def test_init_from_a_language_model_starts_another_language_model(tmp_path):
    import kbuild
    from kbuild.runs import RunFolder, load_trained_model

    run = train_lm(tmp_path, "lm-source", steps=3)
    spec_file = write_lm_spec(tmp_path, "lm-next", steps=1)
    spec_file.write_text(spec_file.read_text() + f"init_from: {run}\n")
    spec = kbuild.load_spec(spec_file)
    _, started, copied = _started(spec)
    backbone = {layer.name for layer in started.layers if layer.weights} - {"logits"}
    assert copied["layers"] == len(backbone) == 4  # embedding, two decoder layers and the final norm
    for path, value in _weights(load_trained_model(RunFolder(run)), backbone).items():
        np.testing.assert_array_equal(_weights(started, backbone)[path], value, err_msg=path)


def test_init_from_on_an_encoder_decoder_or_with_a_checkpoint_backbone_is_a_spec_error(write_spec):
    from kbuild import load_spec
    from kbuild.errors import SpecError

    with pytest.raises(SpecError, match="init_from starts kbuild's own embedding"):
        load_spec(write_spec(f"{CLASSIFIER}init_from: runs/x\n"), ["model.backbone.from=./pretrained/minilm"])
    seq2seq = write_spec("""\
        name: t
        task: seq2seq
        init_from: runs/x
        data: {train: t.en, format: parallel, target_suffix: .de}
        model:
          blocks: [{type: lstm, units: 8}]
          decoder: {type: lstm, units: 8}
        """)
    with pytest.raises(SpecError, match="task seq2seq builds an encoder-decoder model"):
        load_spec(seq2seq)


def test_a_spec_without_init_from_resolves_and_hashes_as_before(write_spec):
    from kbuild import load_spec

    spec = load_spec(write_spec(TINY_SPEC))
    assert "init_from" not in spec.resolved()
