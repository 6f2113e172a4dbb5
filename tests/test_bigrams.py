"""`model.embedding.bigrams`: each token's embedding with its right neighbour, hashed inside the
graph, concatenated to the token embedding; padding-safe, tagging-only, exported like any tagger."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from kbuild import load_spec
from kbuild.errors import SpecError
from tests.conftest import TINY_SPEC
from tests.test_tagging_end_to_end import _conll

keras = pytest.importorskip("keras")

from kbuild.layers.bigrams import BigramEmbedding  # noqa: E402

TAGGER = """\
    name: bigram-tagger
    task: tagging
    seed: 3
    data: {{train: {folder}/train.txt, valid: {folder}/valid.txt, test: {folder}/valid.txt, format: conll}}
    preprocess: {{tokenizer: {{type: whitespace}}, max_length: 8, tag_scheme: bmes, bucketing: true}}
    model:
      embedding: {{dim: 16, position: none, bigrams: {{dim: 8, buckets: 257}}}}
      blocks: [{{type: bilstm, units: 16}}]
      head: {{type: crf}}
    train: {{epochs: 3, batch_size: 8, optimizer: {{name: adam, learning_rate: 0.02}}}}
    """


def _tagger(folder):
    (folder / "train.txt").write_text(_conll(48))
    (folder / "valid.txt").write_text(_conll(9))
    path = folder / "spec.yaml"
    path.write_text(textwrap.dedent(TAGGER.format(folder=folder)))
    return load_spec(path)


def test_bigram_ids_pair_each_token_with_the_next_and_zero_padding():
    layer = BigramEmbedding(vocab_size=10, buckets=64, dim=4)
    ids = np.array([[3, 5, 7, 0], [2, 0, 0, 0]], "int32")
    got = keras.ops.convert_to_numpy(layer.bigram_ids(ids))
    expect = [[(3 * 10 + 5) % 63 + 1, (5 * 10 + 7) % 63 + 1, (7 * 10 + 0) % 63 + 1, 0], [(2 * 10) % 63 + 1, 0, 0, 0]]
    np.testing.assert_array_equal(got, expect)
    out = keras.ops.convert_to_numpy(layer(ids))
    assert out.shape == (2, 4, 4) and not out[0, 3].any() and not out[1, 1:].any()
    # A token's bigram feature depends on its right neighbour.
    other = keras.ops.convert_to_numpy(layer(np.array([[3, 6, 7, 0]], "int32")))
    assert not np.allclose(other[0, 0], out[0, 0]) and np.allclose(other[0, 2], out[0, 2])


def test_tagger_with_bigrams_is_padding_invariant_and_wider(tmp_path):
    from kbuild.tasks.compose import build_model

    spec = _tagger(tmp_path)
    assert spec.model.embedding.output_dim == 24
    model = build_model(spec, 30, ["O", "B-PER", "E-PER"])
    ids = np.array([[5, 6, 7, 0], [3, 4, 0, 0]], "int32")
    padded = np.concatenate([ids, np.zeros((2, 5), "int32")], axis=1)
    scores, padded_scores = (keras.ops.convert_to_numpy(model(x)) for x in (ids, padded))
    np.testing.assert_allclose(scores[0, :3], padded_scores[0, :3], atol=1e-5)
    np.testing.assert_allclose(scores[1, :2], padded_scores[1, :2], atol=1e-5)
    assert model.get_layer("bigram_embedding").table.input_dim == 257


def test_bigrams_are_a_tagging_option(write_spec):
    spec = TINY_SPEC.replace("embedding: {dim: 16}", "embedding: {dim: 16, bigrams: {dim: 8}}")
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(spec))
    (issue,) = info.value.issues
    assert issue.key == "model.embedding.bigrams" and "only task tagging reads this field" in issue.message


@pytest.mark.slow
def test_bigram_tagger_trains_reloads_and_exports(tmp_path):
    import tensorflow as tf

    import kbuild
    from kbuild.prediction import load_predictor

    run = kbuild.train(_tagger(tmp_path), run_dir=tmp_path / "run")
    reloaded = keras.saving.load_model(run.path / "model.keras", safe_mode=True)
    assert isinstance(reloaded.get_layer("bigram_embedding"), BigramEmbedding)
    sentences = ["Angela Merkel visited Paris .", "John Smith visited Berlin"]
    in_process = list(load_predictor(run.path).predict(sentences))
    serve = tf.saved_model.load(str(kbuild.export(run.path, tmp_path / "export"))).signatures["serving_default"]
    out = serve(text=tf.constant(sentences))
    exported = [[t.decode() for t in row[:n]] for row, n in zip(out["tags"].numpy(), out["length"].numpy(), strict=True)]
    assert exported == [row["tags"] for row in in_process]
