"""A tagger's one scoring pass (`TagScorer`): rows read shortest first in trimmed batches give the
tags the padded decoder model gives each row, in row order, and the loss Keras's `evaluate` gives."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from kbuild import load_spec
from tests.test_tagging_end_to_end import NAMES, PLACES

pytest.importorskip("tensorflow")

SPEC = """\
    name: tiny-tagger
    task: tagging
    seed: 5
    data: {{train: {folder}/train.txt, valid: {folder}/valid.txt, format: conll}}
    preprocess: {{tokenizer: {{type: whitespace}}, max_length: 12, tag_scheme: bioes, bucketing: true}}
    model:
      embedding: {{dim: 8, position: none}}
      blocks: [{{type: bilstm, units: 8}}]
      head: {{type: {head}}}
    train: {{epochs: 1, batch_size: 4}}
    """


def _conll(count: int) -> str:
    # Sentences of 2 to 14 words (some past max_length), so the batches are cut to different lengths.
    rows = []
    for i in range(count):
        name, place = NAMES[i % 3].split(), PLACES[(i // 3) % 3].split()
        filler = [("and", "O")] * (i % 8)
        words = [(w, "I-PER") for w in name] + filler + [(w, "I-LOC") for w in place][: 1 + i % 2] + [(".", "O")] * (i % 3)
        rows.append("\n".join(f"{w} X X {t}" for w, t in words))
    return "-DOCSTART- -X- -X- O\n\n" + "\n\n".join(rows) + "\n"


def _tagger(tmp_path, head):
    import keras

    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import build

    (tmp_path / "train.txt").write_text(_conll(30))
    (tmp_path / "valid.txt").write_text(_conll(23))
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(SPEC.format(folder=tmp_path, head=head)))
    spec = load_spec(path)
    task = TASKS.get(spec.task)
    bundle = build(spec, splits=("train", "valid"))
    model = task.build_model(spec, bundle)
    # Untrained weights decode to whatever the zero transitions allow: random ones make Viterbi
    # differ from a per-word argmax, so a scrambled order or a cut row would show.
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 1, w.shape).astype(w.dtype) for w in model.get_weights()])
    model.compile(loss=task.loss(spec), metrics=task.metrics(spec, bundle.labels))
    keras.utils.set_random_seed(0)
    return spec, task, bundle, model


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_one_pass_tags_every_row_as_the_padded_decoder_does(tmp_path, head):
    from kbuild.tasks.tag_scoring import TagScorer, scorer_for

    spec, task, bundle, model = _tagger(tmp_path, head)
    data = bundle.splits["valid"]
    lengths = (np.asarray(data.features) != 0).sum(axis=1)
    assert len(set(lengths)) > 4 and lengths.max() == spec.preprocess.max_length
    padded = task.decoder(model, spec, bundle.labels).predict(bundle.features_dataset("valid", 4), verbose=0)
    # Batches of 4 of the 23 rows: six batches, each cut to its own bucket length.
    scorer = TagScorer(model, len(bundle.labels), crf=head == "crf", trim=True, batch_size=4)
    np.testing.assert_array_equal(scorer.tags(data.features), padded)
    loss, tags = scorer.loss_and_tags(data.features, data.targets)
    np.testing.assert_array_equal(tags, padded)
    if head == "crf":
        # Each row's negative log-likelihood, averaged: the batches do not matter.
        keras_loss = model.evaluate(bundle.datasets["valid"], verbose=0, return_dict=True)["loss"]
        assert loss == pytest.approx(keras_loss, rel=1e-5)
    kept = scorer_for(model, spec, len(bundle.labels))
    assert scorer_for(model, spec, len(bundle.labels)) is kept
    np.testing.assert_array_equal(kept.tags(data.features), padded)


def test_the_final_score_is_the_padded_decoders(tmp_path):
    from kbuild.tasks import conlleval
    from kbuild.tasks.tagging import decoded_tags

    spec, task, bundle, model = _tagger(tmp_path, "crf")
    scored = task.evaluate(model, bundle, "valid", spec)
    padded = task.decoder(model, spec, bundle.labels).predict(bundle.features_dataset("valid", 4), verbose=0)
    examples = bundle.examples["valid"]
    expected = conlleval.score([e.label for e in examples], decoded_tags(examples, padded, bundle.labels)).report()
    assert {name: scored[name] for name in expected} == expected
    assert scored["loss"] > 0
