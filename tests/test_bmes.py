"""BMES tags (Chinese NER corpora): read and written like BIO/BIOES, scored as conlleval scores."""

from __future__ import annotations

import pytest

from kbuild.data.tag_schemes import bio_to_bmes, convert, to_bio
from kbuild.tasks.conlleval import chunks, score
from tests.conftest import SHARED_DATA, requires_shared_data

BIO = ["B-ORG", "I-ORG", "I-ORG", "O", "B-NAME", "O", "B-TITLE", "I-TITLE"]
BMES = ["B-ORG", "M-ORG", "E-ORG", "O", "S-NAME", "O", "B-TITLE", "E-TITLE"]


def test_bio_converts_to_bmes_and_back_with_the_same_entities():
    assert bio_to_bmes(BIO) == convert(BIO, "bmes") == BMES
    assert to_bio(BMES) == BIO
    assert convert(BMES, "bmes") == BMES  # BMES input passes through its own conversion unchanged
    assert convert(BMES, "bioes") == ["B-ORG", "I-ORG", "E-ORG", "O", "S-NAME", "O", "B-TITLE", "E-TITLE"]
    assert chunks(BMES) == chunks(BIO) == [(0, 2, "ORG"), (4, 4, "NAME"), (6, 7, "TITLE")]


def test_bmes_predictions_score_exactly_like_their_bio_equivalent():
    predicted = [
        ["B-ORG", "M-ORG", "M-ORG", "O", "S-NAME", "O", "B-TITLE", "E-TITLE"],  # ORG runs on: still one chunk
        ["B-ORG", "E-ORG", "O", "O", "S-NAME", "O", "S-TITLE", "S-TITLE"],      # ORG and TITLE cut short
    ]
    for tags in predicted:
        bmes, bio = score([BMES], [tags]).report(), score([BIO], [to_bio(tags)]).report()
        # Entities are the same; token accuracy compares tags, which differ between the schemes.
        assert {k: v for k, v in bmes.items() if k != "token_accuracy"} == {k: v for k, v in bio.items() if k != "token_accuracy"}
    # Hand count of the second: NAME right; ORG (0-1) and two TITLEs wrong: P 1/4, R 1/3.
    report = score([BMES], [predicted[1]]).report()
    assert report["precision"] == pytest.approx(1 / 4) and report["recall"] == pytest.approx(1 / 3)
    # The first: M- continues the ORG, so (0, 2) is read, as gold: all three entities right.
    assert score([BMES], [predicted[0]]).report()["f1"] == 1.0


def test_an_unknown_prefix_names_m_among_the_accepted_ones():
    with pytest.raises(ValueError, match="B, I, M, E, S"):
        to_bio(["X-ORG"])


@requires_shared_data("resume_ner")
def test_resume_ner_reads_as_bmes_with_the_readme_counts():
    from kbuild import load_spec
    from kbuild.data.readers import read_examples

    spec = load_spec("specs/resume_ner_char.yaml")
    read = read_examples(str(SHARED_DATA / "resume_ner" / "test.txt"), spec.data, "data.test")
    assert len(read.examples) == 477
    tags = [convert(example.label, "bmes") for example in read.examples]
    assert [tuple(t) for t in tags] == [example.label for example in read.examples]  # already BMES
    assert sum(len(chunks(t)) for t in tags) == 1630
