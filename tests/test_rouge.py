"""ROUGE-1/2/L F1 on sentences scored by hand: English over stemmed words (rouge-score), Chinese
over characters (as ../shared/data/csl_title/make.py scores its lead baseline)."""

from __future__ import annotations

import pytest

from kbuild.tasks.rouge import corpus_rouge

pytest.importorskip("rouge_score")


def test_english_rouge_stems_and_lowercases_words():
    # Tokens, lowercased, Porter-stemmed (words over 3 letters): hyp [the, cat, sat],
    # ref [the, cat, sat, down] ("Cats" -> "cat").
    # ROUGE-1: 3 matches; P = 3/3, R = 3/4, F = 2 * 1 * 0.75 / 1.75 = 6/7 = 85.714.
    # ROUGE-2: hyp bigrams (the cat) (cat sat), ref (the cat) (cat sat) (sat down): 2 matches;
    #          P = 2/2, R = 2/3, F = 2 * (2/3) / (5/3) = 4/5 = 80.0.
    # ROUGE-L: LCS = the cat sat = 3, as ROUGE-1: 85.714.
    score = corpus_rouge(["The Cats sat"], ["the cat sat down"])
    assert score.as_dict() == pytest.approx({"rouge1": 600 / 7, "rouge2": 80.0, "rougeL": 600 / 7})


def test_rouge_l_counts_the_longest_common_subsequence_not_contiguous_words():
    # hyp [meet, monday, about, the, budget], ref [budget, meet, on, monday]
    # ROUGE-1: meet, monday, budget = 3; P = 3/5, R = 3/4, F = 2 * 0.6 * 0.75 / 1.35 = 2/3.
    # ROUGE-2: hyp (meet monday) (monday about) (about the) (the budget); ref (budget meet)
    #          (meet on) (on monday): none in common: 0.
    # ROUGE-L: LCS = meet monday = 2; P = 2/5, R = 2/4, F = 2 * 0.4 * 0.5 / 0.9 = 4/9.
    # The corpus score is the mean over examples: with a perfect second pair,
    # ROUGE-1 = (2/3 + 1) / 2, ROUGE-2 = (0 + 1) / 2, ROUGE-L = (4/9 + 1) / 2.
    score = corpus_rouge(["meet Monday about the budget", "gas prices"], ["Budget: meet on Monday", "Gas prices"])
    assert score.rouge1 == pytest.approx(100 * (2 / 3 + 1) / 2)
    assert score.rouge2 == pytest.approx(50.0)
    assert score.rougeL == pytest.approx(100 * (4 / 9 + 1) / 2)


def test_chinese_rouge_counts_characters_and_ignores_whitespace():
    # hyp 本文研究了深度学习 (9 characters; the space is not a token), ref 深度学习研究 (6).
    # ROUGE-1: all six reference characters occur in hyp: P = 6/9, R = 6/6, F = 2 * (2/3) / (5/3) = 0.8.
    # ROUGE-2: hyp bigrams 本文 文研 研究 究了 了深 深度 度学 学习 (8), ref 深度 度学 学习 习研 研究 (5);
    #          4 in common (研究 深度 度学 学习): P = 4/8, R = 4/5, F = 2 * 0.5 * 0.8 / 1.3 = 8/13.
    # ROUGE-L: LCS 深度学习 = 4: P = 4/9, R = 4/6, F = 2 * (4/9) * (2/3) / (10/9) = 8/15.
    score = corpus_rouge(["本文 研究了深度学习"], ["深度学习研究"], tokens="chars")
    assert score.as_dict() == pytest.approx({"rouge1": 80.0, "rouge2": 800 / 13, "rougeL": 800 / 15})


def test_chinese_rouge_keeps_latin_letters_and_case_as_characters():
    # hyp [B, P, 网, 络] against ref [b, p, 网, 络]: case kept, so only 网 and 络 match.
    # ROUGE-1: P = R = 2/4, F = 0.5; ROUGE-2: 网络 only of 3 bigrams each: F = 1/3; ROUGE-L: 2/4 = 0.5.
    score = corpus_rouge(["BP网络"], ["bp网络"], tokens="chars")
    assert score.as_dict() == pytest.approx({"rouge1": 50.0, "rouge2": 100 / 3, "rougeL": 50.0})


def test_word_rouge_would_drop_every_chinese_character():
    # Why `chars` exists: rouge-score's own tokenizer keeps [a-z0-9] only.
    assert corpus_rouge(["深度学习"], ["深度学习"]).rouge1 == 0.0
    assert corpus_rouge(["深度学习"], ["深度学习"], tokens="chars").rouge1 == 100.0


def test_several_references_score_each_type_against_its_best_reference():
    # hyp [gas, price]; ref A [gas, price, updat] (update -> updat): R1 F = 2 * 1 * (2/3) / (5/3) = 0.8,
    # R2 (gas price) of 1 and 2 bigrams: F = 2 * 1 * 0.5 / 1.5 = 2/3; ref B [price]: R1 F = 2 * 0.5 / 1.5
    # = 2/3, R2 0. The best of each type is A's.
    score = corpus_rouge(["gas price"], [["gas price update"], ["price"]])
    assert score.as_dict() == pytest.approx({"rouge1": 80.0, "rouge2": 200 / 3, "rougeL": 80.0})


def test_empty_hypothesis_scores_zero_and_a_short_reference_stream_is_an_error():
    assert corpus_rouge([""], ["a subject"]).as_dict() == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    with pytest.raises(ValueError, match="2 hypotheses but a reference stream of 1"):
        corpus_rouge(["a", "b"], ["a"])


def test_character_rouge_reproduces_the_csl_title_lead_baseline():
    # ../shared/data/csl_title/README.md: the first 19 characters of each abstract, character-level
    # ROUGE-1/2/L F1, test 35.3 / 24.9 / 31.4 (its make.py's own implementation).
    import csv

    from kbuild.paths import data_root

    path = data_root() / "csl_title" / "test.tsv"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    score = corpus_rouge([row["abstract"][:19] for row in rows], [row["title"] for row in rows], tokens="chars")
    assert [round(value, 1) for value in score.as_dict().values()] == [35.3, 24.9, 31.4]
