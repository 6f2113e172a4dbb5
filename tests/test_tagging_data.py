"""CoNLL reading, tag-scheme conversion, the whitespace tokenizer and per-token label batches."""

from __future__ import annotations

import numpy as np
import pytest

from kbuild.data.readers import read_examples
from kbuild.errors import DataError
from kbuild.spec.data import DataSpec

CONLL = """\
-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER
"""


def _data(path, **extra):
    return DataSpec(train=str(path), format="conll", **extra)


def test_conll_reader_skips_docstart_and_joins_tokens(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(CONLL)
    result = read_examples(str(path), _data(path), "data.train")
    assert [e.text for e in result.examples] == ["EU rejects German call", "Peter Blackburn"]
    assert result.examples[0].label == ("I-ORG", "O", "I-MISC", "O")
    assert [e.line for e in result.examples] == [3, 8]


def test_conll_reader_reads_the_tag_column_the_spec_names(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(CONLL)
    result = read_examples(str(path), _data(path, columns={"text": 0, "label": 2}), "data.train")
    assert result.examples[1].label == ("B-NP", "I-NP")


def test_malformed_row_names_its_line_or_drops_its_sentence(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(CONLL.replace("German JJ B-NP I-MISC", "German JJ"))
    with pytest.raises(DataError, match=r"train\.txt:5: .*columns"):
        read_examples(str(path), _data(path, columns={"text": 0, "label": 3}), "data.train")
    kept = read_examples(str(path), _data(path, columns={"text": 0, "label": 3}, on_error="skip"), "data.train")
    assert [e.text for e in kept.examples] == ["Peter Blackburn"] and kept.skipped == 1


def test_conll_column_names_are_refused(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(CONLL)
    with pytest.raises(DataError, match="no header"):
        read_examples(str(path), _data(path, columns={"text": "word", "label": 3}), "data.train")


@pytest.fixture
def tagging_spec(tmp_path, write_spec):
    (tmp_path / "train.txt").write_text(CONLL)
    (tmp_path / "valid.txt").write_text("Paris NNP B-NP I-LOC\nis VBZ B-VP O\n")

    def _spec(*overrides):
        from kbuild import load_spec

        path = write_spec(f"""\
            name: tagger
            task: tagging
            data: {{train: {tmp_path}/train.txt, valid: {tmp_path}/valid.txt, format: conll}}
            preprocess: {{tokenizer: {{type: whitespace}}, max_length: 3, tag_scheme: bioes}}
            model:
              embedding: {{dim: 8, chars: {{dim: 4, filters: 6, max_chars: 5}}}}
              head: {{type: crf}}
            train: {{batch_size: 2}}
            """)
        return load_spec(path, list(overrides))

    return _spec


def test_tags_unseen_in_train_are_a_data_error_naming_the_line(tagging_spec):
    pytest.importorskip("tensorflow")
    from kbuild.tasks.bundle import build

    with pytest.raises(DataError, match=r"valid\.txt:1: tag 'S-LOC' does not occur in the train split"):
        build(tagging_spec())


def test_bundle_converts_tags_pads_with_minus_one_and_truncates(tagging_spec, capsys):
    pytest.importorskip("tensorflow")
    from kbuild.tasks.bundle import build

    bundle = build(tagging_spec(), splits=("train",))
    assert bundle.labels == ["O", "B-PER", "E-PER", "S-MISC", "S-ORG"]
    assert bundle.examples["train"][0].label == ("S-ORG", "O", "S-MISC", "O")
    features = next(iter(bundle.features_dataset("train", 8)))
    assert set(features) == {"token_ids", "char_ids"} and tuple(features["char_ids"].shape) == (2, 3, 5)
    labels = np.concatenate([y.numpy() for _, y in bundle.datasets["train"]])
    assert sorted(map(tuple, labels.tolist())) == [(1, 2, -1), (4, 0, 3)]
    assert "1 sentence(s) did not fit in preprocess.max_length (3 words)" in capsys.readouterr().err


def test_whitespace_tokenizer_maps_words_one_to_one_with_case_in_the_chars(tagging_spec):
    pytest.importorskip("tensorflow")
    from kbuild.tasks.bundle import build

    bundle = build(tagging_spec(), splits=())
    encoded = bundle.tokenizer.encode(["U.S.  rejects", "eu"])
    ids = encoded["token_ids"].numpy()
    vocabulary = bundle.tokenizer.vocabulary
    assert [vocabulary[i] for i in ids[0]] == ["[UNK]", "rejects", "[PAD]"]
    assert vocabulary[ids[1][0]] == "eu"  # lowercased lookup
    chars = encoded["char_ids"].numpy()
    assert chars[0, 0].tolist() == [1 + ord(c) for c in "U.S."] + [0]
    assert chars[1, 0, 0] == 1 + ord("e")


def test_bucketed_tagging_batches_cut_labels_with_the_tokens(tagging_spec):
    pytest.importorskip("tensorflow")
    from kbuild.tasks.bundle import build

    bundle = build(tagging_spec("preprocess.bucketing=true", "preprocess.max_length=16"), splits=("train",))
    for features, labels in bundle.datasets["train"]:
        assert features["token_ids"].shape[1] == labels.shape[1] == features["char_ids"].shape[1]
        assert ((features["token_ids"].numpy() == 0) == (labels.numpy() == -1)).all()


def test_tagging_spec_rejects_char_features_over_subwords_and_pooling(write_spec):
    from kbuild import load_spec
    from kbuild.errors import SpecError

    path = write_spec("""\
        name: t
        task: tagging
        data: {train: x.txt, format: conll}
        preprocess: {tokenizer: {type: wordpiece}}
        model: {pooling: max, embedding: {chars: {dim: 4}}}
        """)
    with pytest.raises(SpecError) as error:
        load_spec(path)
    message = str(error.value)
    assert "model.embedding.chars" in message and "wordpiece tokenizer already sees inside words" in message
    assert "model.pooling" in message


def test_subword_labels_sit_on_words_and_words_cut_by_the_subword_budget_are_masked(tagging_spec, capsys):
    pytest.importorskip("tensorflow")
    from kbuild.tasks.bundle import build

    spec = tagging_spec("preprocess.tokenizer.type=wordpiece", "preprocess.tokenizer.vocab_size=40",
                        "model.embedding.chars=null", "preprocess.max_length=9")
    bundle = build(spec, splits=("train",))
    features = bundle.splits["train"].features
    assert set(features) == {"token_ids", "word_starts"}
    vocabulary = bundle.tokenizer.vocabulary
    for ids, starts, example in zip(features["token_ids"], features["word_starts"], bundle.examples["train"], strict=True):
        assert ids[0] == 2  # [CLS] at 0, so a start of 0 means "no word"
        words = [w.lower() for w in example.text.split()]
        kept = [s for s in starts if s]
        # Each kept word's first piece begins it, and its pieces (## marks) spell it.
        for word, start, end in zip(words, kept, [*kept[1:], None], strict=False):
            pieces = [vocabulary[i] for i in ids[start:end] if i] if end else [vocabulary[ids[start]]]
            assert not pieces[0].startswith("##") and word.startswith(pieces[0])
            if end:
                assert "".join(p.removeprefix("##") for p in pieces) == word
    labels = np.concatenate([y.numpy() for _, y in bundle.datasets["train"]])
    starts = np.concatenate([x["word_starts"].numpy() for x, _ in bundle.datasets["train"]])
    assert ((starts == 0) == (labels == -1)).all()  # a tag only where a word was kept
    cut = [len(e.text.split()) > int((s != 0).sum()) for e, s in zip(bundle.examples["train"], features["word_starts"], strict=True)]
    assert any(cut)  # max_length 9 cannot hold "EU rejects German call" in a 40-piece vocabulary
    assert "did not fit in preprocess.max_length (9 sub-tokens, [CLS] included)" in capsys.readouterr().err


def test_classification_rejects_a_crf_head_with_its_line(tiny_spec_file):
    from kbuild import load_spec
    from kbuild.errors import SpecError

    with pytest.raises(SpecError, match="model.head.type: 'crf' heads are for tagging"):
        load_spec(tiny_spec_file, ["model.head.type=crf"])
