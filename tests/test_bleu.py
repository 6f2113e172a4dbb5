"""Corpus BLEU against sacrebleu on fixed sentences (same tokenisation, smoothing, penalty)."""

from __future__ import annotations

import pytest

from kbuild.tasks.bleu import corpus_bleu, tokenize_13a

sacrebleu = pytest.importorskip("sacrebleu")

HYPOTHESES = [
    "Ein Mann fährt ein Fahrrad.",
    "Zwei Hunde spielen im Schnee, während es schneit!",
    "Eine Frau, die 3,5 Kilo trägt.",
    "Kinder",
    "Der Preis beträgt 1.000-2.000 Euro & mehr \"heute\".",
]
REFERENCES = [
    "Ein Mann fährt Fahrrad.",
    "Zwei Hunde spielen im Schnee.",
    "Eine Frau trägt 3,5 Kilo.",
    "Kinder spielen draußen auf der Wiese.",
    "Der Preis beträgt 1.000-2.000 Euro &amp; mehr &quot;heute&quot;.",
]


@pytest.mark.parametrize(("hypotheses", "references"), [
    (HYPOTHESES, [REFERENCES]),
    (REFERENCES, [REFERENCES]),  # perfect: 100
    (HYPOTHESES[:1], [REFERENCES[:1]]),  # no 4-gram match: exponential smoothing kicks in
    (["Kinder"], [["Kinder spielen"]]),  # brevity penalty, empty higher orders
    (HYPOTHESES, [REFERENCES, list(reversed(HYPOTHESES))]),  # two reference streams
    (["", "Ein Hund"], [["Ein Hund", "Ein Hund läuft"]]),  # an empty hypothesis
])
def test_corpus_bleu_matches_sacrebleu(hypotheses, references):
    expected = sacrebleu.corpus_bleu(hypotheses, references)
    ours = corpus_bleu(hypotheses, references if len(references) > 1 else references[0])
    assert ours.score == pytest.approx(expected.score, abs=1e-9)
    assert list(ours.precisions) == pytest.approx(expected.precisions, abs=1e-9)
    assert ours.brevity_penalty == pytest.approx(expected.bp, abs=1e-12)
    assert (ours.hypothesis_length, ours.reference_length) == (expected.sys_len, expected.ref_len)


def test_13a_tokenisation_matches_sacrebleu():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    for line in HYPOTHESES + REFERENCES:
        assert tokenize_13a(line) == Tokenizer13a()(line)


def test_reference_stream_of_the_wrong_length_is_an_error():
    with pytest.raises(ValueError, match="2 hypotheses but a reference stream of 1"):
        corpus_bleu(["a", "b"], ["a"])
