"""Pretrained word vectors: word2vec/GloVe text and binary files, coverage, frozen embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kbuild.data.vectors import load_vectors
from kbuild.errors import DataError

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "good", "film", "paris", "zzz"]


def _text_file(tmp_path, header=True, dim=3):
    lines = ["3 3"] if header else []
    lines += ["good 0.1 0.2 0.3", "Paris 1 2 3", "film -1 -2 -3", "[PAD] 9 9 9"]
    path = tmp_path / "vectors.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("header", [True, False])
def test_text_vectors_fill_found_words_with_lowercase_fallback_and_report_coverage(tmp_path, header):
    found = load_vectors(str(_text_file(tmp_path, header)), VOCABULARY, 3, skip=3)
    rows = dict(zip(found.ids.tolist(), found.vectors.tolist(), strict=True))
    assert set(rows) == {3, 4, 5}  # special tokens are never overwritten; zzz is missing
    np.testing.assert_allclose(rows[5], [1, 2, 3])  # "paris" found as "Paris"
    np.testing.assert_allclose(rows[3], [0.1, 0.2, 0.3])
    assert found.coverage == pytest.approx(3 / 4)


def test_a_vector_of_the_wrong_dimension_names_its_line(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("good 0.1 0.2 0.3\nfilm 1 2\n")
    with pytest.raises(DataError, match=r"glove\.txt:2: expected 3 values .*received 2"):
        load_vectors(str(path), VOCABULARY, 3)
    with pytest.raises(DataError, match=r"vectors\.txt:1: expected 4 values"):
        load_vectors(str(_text_file(tmp_path)), VOCABULARY, 4)


def test_word2vec_binary_vectors_are_read(tmp_path):
    path = tmp_path / "vectors.bin"
    with path.open("wb") as f:
        f.write(b"2 3\n")
        for word, vector in (("film", [1, 2, 3]), ("zzz", [4, 5, 6])):
            f.write(word.encode() + b" " + np.asarray(vector, "<f4").tobytes() + b"\n")
    found = load_vectors(str(path), VOCABULARY, 3, skip=3)
    assert found.ids.tolist() == [4, 6]
    np.testing.assert_allclose(found.vectors, [[1, 2, 3], [4, 5, 6]])


def test_training_starts_from_the_vectors_and_frozen_embeddings_keep_them(tiny_spec_file, tmp_path):
    pytest.importorskip("tensorflow")
    import kbuild
    from kbuild.runs import load_trained_model, open_run

    vectors = tmp_path / "vectors.txt"
    words = ["good", "bad", "film", "movie", "great"]
    rng = np.random.default_rng(0)
    table = {w: rng.normal(size=16).round(4) for w in words}
    vectors.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in table.items()))
    spec = kbuild.load_spec(tiny_spec_file, [f"model.embedding.pretrained={vectors}", "model.embedding.trainable=false"])
    run = kbuild.train(spec, run_dir=tmp_path / "run")
    report = run.results["pretrained_vectors"]
    assert report["found"] >= 1 and 0 < report["coverage"] <= 1
    vocabulary = (run.path / "assets" / "vocab.txt").read_text().split("\n")
    embeddings = load_trained_model(open_run(run.path)).get_layer("embedding").token.get_weights()[0]
    for word, vector in table.items():
        if word in vocabulary:
            np.testing.assert_allclose(embeddings[vocabulary.index(word)], vector, atol=1e-6)
    assert json.loads((run.path / "results.json").read_text())["pretrained_vectors"] == report
