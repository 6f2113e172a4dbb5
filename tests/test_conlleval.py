"""Entity-level scores counted as conlleval counts them, cross-checked against seqeval."""

from __future__ import annotations

import pytest

from kbuild.data.tag_schemes import bio_to_bioes, convert, to_bio
from kbuild.tasks.conlleval import chunks, score

GOLD = [
    ["B-PER", "I-PER", "O", "B-LOC", "O"],
    ["O", "B-ORG", "I-ORG", "I-ORG", "O", "B-MISC"],
    ["B-LOC", "B-LOC", "O"],
    ["O", "O"],
    ["B-PER", "O", "B-ORG", "I-ORG"],
]
PREDICTED = [
    ["B-PER", "I-PER", "O", "B-ORG", "O"],     # type error
    ["O", "I-ORG", "I-ORG", "I-ORG", "O", "O"],  # ill-formed start read as a chunk; a miss
    ["B-LOC", "I-LOC", "O"],                   # two gold entities merged
    ["B-MISC", "O"],                           # spurious
    ["B-PER", "O", "B-ORG", "I-LOC"],          # type change inside an entity
]


def test_entity_scores_match_seqeval_on_fixed_sequences():
    seqeval = pytest.importorskip("seqeval.metrics")
    report = score(GOLD, PREDICTED).report()
    assert report["precision"] == pytest.approx(seqeval.precision_score(GOLD, PREDICTED))
    assert report["recall"] == pytest.approx(seqeval.recall_score(GOLD, PREDICTED))
    assert report["f1"] == pytest.approx(seqeval.f1_score(GOLD, PREDICTED))
    assert report["token_accuracy"] == pytest.approx(seqeval.accuracy_score(GOLD, PREDICTED))
    per_type = seqeval.classification_report(GOLD, PREDICTED, output_dict=True)
    for kind in ("PER", "ORG", "LOC", "MISC"):
        assert report["per_type"][kind]["f1"] == pytest.approx(per_type[kind]["f1-score"]), kind
        assert report["per_type"][kind]["support"] == per_type[kind]["support"], kind


def test_counts_are_conllevals_on_a_hand_checked_case():
    report = score(GOLD, PREDICTED).report()
    # gold 8 entities; predicted 8 (the I-ORG run is one ORG, the B-ORG I-LOC pair an ORG and a
    # LOC); correct 3: PER and ORG of sentences 1 and 2, PER of sentence 5.
    assert report["precision"] == pytest.approx(3 / 8)
    assert report["recall"] == pytest.approx(3 / 8)
    assert report["per_type"]["ORG"] == pytest.approx({"precision": 1 / 3, "recall": 1 / 2, "f1": 0.4, "support": 2})


def test_bioes_predictions_score_like_their_bio_equivalent():
    bioes = [bio_to_bioes(tags) for tags in PREDICTED if tags == to_bio(tags)]
    bio = [tags for tags in PREDICTED if tags == to_bio(tags)]
    gold = [g for g, p in zip(GOLD, PREDICTED, strict=True) if p == to_bio(p)]
    assert score(gold, bioes).report()["f1"] == score(gold, bio).report()["f1"]


def test_iob1_converts_to_bio_and_bioes_with_the_same_entities():
    iob1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"]
    assert to_bio(iob1) == ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG"]
    assert convert(iob1, "bioes") == ["B-PER", "E-PER", "O", "S-LOC", "S-LOC", "S-ORG"]
    assert chunks(convert(iob1, "bioes")) == chunks(iob1) == [(0, 1, "PER"), (3, 3, "LOC"), (4, 4, "LOC"), (5, 5, "ORG")]
    # BIO and BIOES input pass through their own conversions unchanged.
    assert convert(convert(iob1, "bioes"), "bioes") == convert(iob1, "bioes")
    assert to_bio(to_bio(iob1)) == to_bio(iob1)


def test_a_tag_without_a_known_prefix_is_rejected():
    with pytest.raises(ValueError, match="PER"):
        to_bio(["PER"])
