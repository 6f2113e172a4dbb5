"""Tokenizers: vocabulary, ids, padding, truncation, start token, assets, and the SavedModel trip."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import pytest
import tensorflow as tf

from kbuild.data.tokenizers import (
    CLS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    TOKENIZERS,
    UNK_ID,
    make_tokenizer,
)
from kbuild.errors import DataError
from kbuild.spec.preprocess import CharTokenizerSpec, WordPieceTokenizerSpec, WordTokenizerSpec

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPUS = ["the film was great", "a dull , dull film !", "the acting was great"]
SPECS = {
    "word": WordTokenizerSpec(),
    "char": CharTokenizerSpec(),
    "wordpiece": WordPieceTokenizerSpec(vocab_size=60),
}


def ids(tokenizer, texts) -> list[list[int]]:
    return tokenizer.encode(tf.constant(texts)).numpy().tolist()


def tokens(tokenizer, texts) -> list[list[str]]:
    vocabulary = tokenizer.vocabulary
    return [[vocabulary[i] for i in row if i != PAD_ID] for row in ids(tokenizer, texts)]


def test_registry_covers_every_spec_tokenizer_type():
    assert set(TOKENIZERS.names()) == {"wordpiece", "word", "char", "whitespace"}


@pytest.mark.parametrize("kind", SPECS)
def test_every_vocabulary_starts_with_pad_unk_cls(kind):
    tokenizer = make_tokenizer(SPECS[kind], max_length=8).fit(CORPUS)
    assert tuple(tokenizer.vocabulary[:3]) == SPECIAL_TOKENS == ("[PAD]", "[UNK]", "[CLS]")
    assert (PAD_ID, UNK_ID, CLS_ID) == (0, 1, 2)
    assert tokenizer.vocabulary_size == len(tokenizer.vocabulary)


def test_word_tokenizer_orders_vocabulary_by_count_then_alphabet():
    tokenizer = make_tokenizer(WordTokenizerSpec(), max_length=8).fit(CORPUS)
    assert tokenizer.vocabulary[3:] == [
        "dull",
        "film",
        "great",
        "the",
        "was",
        "!",
        ",",
        "a",
        "acting",
    ]


def test_word_tokenizer_pads_with_zero_and_maps_unknown_words_to_unk():
    tokenizer = make_tokenizer(WordTokenizerSpec(), max_length=6).fit(CORPUS)
    result = tokenizer.encode(tf.constant(["the zebra was great", ""]))
    assert result.dtype == tf.int32 and result.shape == (2, 6)
    assert tokens(tokenizer, ["the zebra was great"]) == [["the", "[UNK]", "was", "great"]]
    assert result.numpy()[0, 4:].tolist() == [0, 0] and result.numpy()[1].tolist() == [0] * 6


def test_word_tokenizer_splits_punctuation_and_lowercases():
    tokenizer = make_tokenizer(WordTokenizerSpec(), max_length=8).fit(CORPUS)
    assert tokens(tokenizer, ["THE Film,\u00a0dull!"]) == [["the", "film", ",", "dull", "!"]]


def test_word_tokenizer_keeps_case_when_lowercase_is_off():
    tokenizer = make_tokenizer(WordTokenizerSpec(lowercase=False), max_length=4).fit(["Film film"])
    assert tokenizer.vocabulary[3:] == ["Film", "film"]
    assert tokens(tokenizer, ["FILM Film"]) == [["[UNK]", "Film"]]


def test_encode_truncates_to_max_length():
    tokenizer = make_tokenizer(WordTokenizerSpec(), max_length=3).fit(CORPUS)
    assert tokens(tokenizer, ["the film was great"]) == [["the", "film", "was"]]


def test_start_token_is_prepended_and_counts_toward_max_length():
    tokenizer = make_tokenizer(WordTokenizerSpec(), max_length=3, start_token=True).fit(CORPUS)
    assert tokens(tokenizer, ["the film was great", ""]) == [["[CLS]", "the", "film"], ["[CLS]"]]


def test_vocab_size_caps_the_vocabulary_special_tokens_included():
    tokenizer = make_tokenizer(WordTokenizerSpec(vocab_size=8), max_length=4).fit(CORPUS)
    assert tokenizer.vocabulary == [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "dull",
        "film",
        "great",
        "the",
        "was",
    ]


def test_min_frequency_drops_rare_tokens():
    tokenizer = make_tokenizer(WordTokenizerSpec(min_frequency=2), max_length=4).fit(CORPUS)
    assert tokenizer.vocabulary[3:] == ["dull", "film", "great", "the", "was"]


def test_char_tokenizer_splits_chinese_by_character():
    tokenizer = make_tokenizer(CharTokenizerSpec(), max_length=6).fit(["房间很干净", "服务很好"])
    assert tokens(tokenizer, ["房间很好！"]) == [["房", "间", "很", "好", "[UNK]"]]
    assert tokenizer.vocabulary[3] == "很"  # the most frequent character


def test_char_tokenizer_collapses_whitespace_into_one_space_token():
    tokenizer = make_tokenizer(CharTokenizerSpec(lowercase=True), max_length=8).fit(["a b"])
    assert tokens(tokenizer, ["  A\n\n\tb  "]) == [["a", " ", "b"]]


def test_wordpiece_tokenizer_splits_unseen_words_into_known_subwords():
    corpus = ["the films were fine", "filming a dull film", "fine films"] * 5
    tokenizer = make_tokenizer(WordPieceTokenizerSpec(vocab_size=40), max_length=8).fit(corpus)
    assert "##s" in tokenizer.vocabulary
    assert tokens(tokenizer, ["FILMS", "fine"]) == [["films"], ["fine"]]
    pieces = tokens(tokenizer, ["dulls"])[0]
    assert len(pieces) > 1 and all(p.startswith("##") for p in pieces[1:])


def test_wordpiece_learns_keras_hubs_vocabulary_by_default_and_more_with_a_lower_min_frequency():
    import keras_hub

    corpus = [f"the film{i % 7} was great{i % 11} and moving" for i in range(40)] + ["rare words appear once"]
    default = make_tokenizer(WordPieceTokenizerSpec(vocab_size=200), max_length=8).fit(corpus).vocabulary
    data = tf.data.Dataset.from_tensor_slices(tf.constant(corpus)).batch(16)
    reference = keras_hub.tokenizers.compute_word_piece_vocabulary(
        data, vocabulary_size=200, lowercase=True, reserved_tokens=list(SPECIAL_TOKENS))
    assert default == reference
    rare = make_tokenizer(WordPieceTokenizerSpec(vocab_size=200, min_frequency=1), max_length=8).fit(corpus)
    assert "rare" in rare.vocabulary and "rare" not in default and len(rare.vocabulary) > len(default)


def test_wordpiece_tokenizer_splits_chinese_into_characters():
    tokenizer = make_tokenizer(WordPieceTokenizerSpec(vocab_size=30), max_length=6).fit(
        ["房间很干净"]
    )
    assert tokens(tokenizer, ["房间"]) == [["房", "间"]]


@pytest.mark.parametrize("kind", ["word", "char", "wordpiece"])
def test_word_starts_point_at_each_words_first_piece_and_stop_at_max_length(kind):
    tokenizer = make_tokenizer(SPECS[kind], max_length=9, start_token=True, word_starts=True).fit(CORPUS)
    encoded = tokenizer.encode(tf.constant(["the acting , great", "U.S. film", "", "the  film  was great film"]))
    token_ids, starts = encoded["token_ids"].numpy(), encoded["word_starts"].numpy()
    assert starts.shape == token_ids.shape == (4, 9) and (token_ids[:, 0] == CLS_ID).all()
    for row, text in enumerate(["the acting , great", "U.S. film", "", "the  film  was great film"]):
        words = text.split()
        kept = [int(s) for s in starts[row] if s]
        # Each word alone, tokenised, is what sits between its start and the next word's.
        next_start = 1
        for word, start in zip(words, kept, strict=False):
            alone = tokenizer.token_ids(tf.constant([word]))[0].numpy().tolist() or [UNK_ID]
            assert start == next_start
            assert token_ids[row, start : start + len(alone)].tolist() == alone[: 9 - start]
            next_start = start + len(alone)
        # Words are kept while their first piece fits; the rest are cut.
        assert len(kept) == len(words) or next_start >= 9
        assert (starts[row, len(kept):] == 0).all()
    assert starts[2].tolist() == [0] * 9


def test_a_word_that_tokenises_to_nothing_still_gets_a_position():
    tokenizer = make_tokenizer(SPECS["wordpiece"], max_length=6, start_token=True, word_starts=True).fit(CORPUS)
    # BERT's normaliser deletes control characters: "\x07" alone is no token at all.
    assert tokenizer.token_ids(tf.constant(["\x07"]))[0].numpy().tolist() == []
    encoded = tokenizer.encode(tf.constant(["a \x07 film"]))
    assert tokenizer.token_ids(tf.constant(["a"]))[0].numpy().tolist() == [tokenizer.vocabulary.index("a")]
    assert encoded["word_starts"].numpy()[0, :3].tolist() == [1, 2, 3]
    assert encoded["token_ids"].numpy()[0, 2] == UNK_ID


def test_word_starts_need_the_start_token():
    with pytest.raises(ValueError, match="start_token=True"):
        make_tokenizer(SPECS["word"], max_length=6, word_starts=True)


def test_encode_before_fit_or_load_says_what_to_do():
    tokenizer = make_tokenizer(WordTokenizerSpec(), max_length=4)
    with pytest.raises(RuntimeError, match="call fit\\(\\) or load\\(\\)"):
        tokenizer.encode(tf.constant(["x"]))


@pytest.mark.parametrize("kind", SPECS)
def test_save_then_load_gives_identical_vocabulary_and_ids(kind, tmp_path):
    fitted = make_tokenizer(SPECS[kind], max_length=10, start_token=True).fit(CORPUS)
    path = fitted.save(tmp_path)
    assert path == tmp_path / "vocab.txt"
    assert path.read_text(encoding="utf-8").split("\n")[:3] == list(SPECIAL_TOKENS)
    loaded = make_tokenizer(SPECS[kind], max_length=10, start_token=True).load(tmp_path)
    probe = ["The film was GREAT!", "zebra", ""]
    assert loaded.vocabulary == fitted.vocabulary
    assert ids(loaded, probe) == ids(fitted, probe)


def test_load_without_vocabulary_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="tokenizer vocabulary not found"):
        make_tokenizer(WordTokenizerSpec(), max_length=4).load(tmp_path)


def test_load_rejects_vocabulary_without_special_tokens_first(tmp_path):
    (tmp_path / "vocab.txt").write_text("the\nfilm\n", encoding="utf-8")
    with pytest.raises(
        DataError, match="expected the first tokens to be \\[PAD\\], \\[UNK\\], \\[CLS\\]"
    ):
        make_tokenizer(WordTokenizerSpec(), max_length=4).load(tmp_path)


def test_load_rejects_duplicate_tokens_naming_the_line(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\nfilm\nthe\nfilm\n", encoding="utf-8")
    with pytest.raises(DataError, match="'film' appears twice") as error:
        make_tokenizer(WordTokenizerSpec(), max_length=4).load(tmp_path)
    assert error.value.line == 6


_LOAD_IN_FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # registers the tf-text ops that wordpiece graphs use
    probe, folders = json.loads(sys.argv[1]), sys.argv[2:]
    assert not any(name.startswith(("kbuild", "keras_hub")) for name in sys.modules), "not fresh"
    print(json.dumps([tf.saved_model.load(f).serve(tf.constant(probe)).numpy().tolist() for f in folders]))
    """
)


def test_exported_tokenizers_give_identical_ids_in_a_fresh_process(tmp_path):
    probe = ["The film was GREAT!", "zebra crossing", "房间很脏", "", "a " * 40]
    folders, expected = [], []
    for kind, spec in SPECS.items():
        tokenizer = make_tokenizer(spec, max_length=12, start_token=True).fit(
            [*CORPUS, "房间很干净"]
        )
        archive = keras.export.ExportArchive()
        for resource in tokenizer.trackables():
            archive.track(resource)
        archive.add_endpoint(
            "serve",
            tf.function(tokenizer.encode),
            input_signature=[tf.TensorSpec([None], tf.string)],
        )
        folder = tmp_path / kind
        archive.write_out(str(folder), verbose=False)
        folders.append(str(folder))
        expected.append(ids(tokenizer, probe))
    run = subprocess.run(
        [sys.executable, "-c", _LOAD_IN_FRESH_PROCESS, json.dumps(probe), *folders],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared datasets not present")
def test_wordpiece_vocabulary_of_sst2_train_takes_under_30_seconds():
    lines = (SHARED_DATA / "sst2" / "train.tsv").read_text(encoding="utf-8").split("\n")[1:]
    texts = [line.split("\t", 1)[1] for line in lines if line]
    start = time.perf_counter()
    tokenizer = make_tokenizer(WordPieceTokenizerSpec(vocab_size=8000), max_length=64).fit(texts)
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"wordpiece vocabulary took {elapsed:.1f} s"
    assert 5000 < tokenizer.vocabulary_size <= 8000
