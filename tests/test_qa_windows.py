"""Question + context -> overlapping windows whose context tokens keep their byte offsets, for
kbuild's own tokenizers (wordpiece, char); the stride is checked when the spec loads."""

from __future__ import annotations

import unicodedata

import pytest

from kbuild.errors import SpecError

CONTEXTS = ["The Éiffel tower, built in 1889, is in Paris. It is 330 m tall.", "短文本：北京是首都。"]
QUESTIONS = ["When was the tower built?", "首都是哪里？"]


def _tokenizer(kind: str):
    from kbuild.data.tokenizers import make_tokenizer
    from kbuild.spec.preprocess import CharTokenizerSpec, WordPieceTokenizerSpec

    spec = WordPieceTokenizerSpec(vocab_size=200, min_frequency=1) if kind == "wordpiece" else CharTokenizerSpec()
    return make_tokenizer(spec, 16).fit(CONTEXTS * 3 + QUESTIONS, extra_tokens=["[SEP]"])


@pytest.mark.parametrize("kind", ["wordpiece", "char"])
def test_every_context_token_points_at_its_own_text_in_the_raw_context(kind):
    import tensorflow as tf

    from kbuild.data.qa_windows import tokens_with_offsets

    tokenizer = _tokenizer(kind)
    ids, starts, ends = tokens_with_offsets(tokenizer, tf.constant(CONTEXTS))
    for row, context in enumerate(CONTEXTS):
        raw = context.encode()
        for token, begin, end in zip(ids[row].numpy(), starts[row].numpy(), ends[row].numpy(), strict=True):
            piece = tokenizer.vocabulary[token].removeprefix("##")
            text = raw[begin:end].decode()
            assert unicodedata.normalize("NFKC", text).lower() == unicodedata.normalize("NFKC", piece).lower()
        # Every non-space byte is covered by a token, none twice.
        spans = sorted(zip(starts[row].numpy().tolist(), ends[row].numpy().tolist(), strict=True))
        assert all(end <= following for (_, end), (following, _) in zip(spans, spans[1:], strict=False))
        assert sum(end - begin for begin, end in spans) == len(raw.replace(b" ", b""))


def test_windows_share_doc_stride_tokens_and_hold_the_question_first():
    from kbuild.data.qa_windows import WindowShape, cut_windows

    tokenizer = _tokenizer("wordpiece")
    shape = WindowShape(max_length=16, doc_stride=3, max_query_length=6)
    windows = {name: value.numpy() for name, value in cut_windows(tokenizer, shape, QUESTIONS, CONTEXTS).items()}
    first = windows["example"] == 0
    assert first.sum() > 1 and windows["example"].tolist() == sorted(windows["example"].tolist())
    starts = windows["starts"][first]
    context_starts = [row[row >= 0].tolist() for row in starts]
    for previous, following in zip(context_starts, context_starts[1:], strict=False):
        assert previous[-3:] == following[:3]  # doc_stride tokens in common
    ids, segments = windows["token_ids"][0], windows["segment_ids"][0]
    sep = tokenizer.separator_id
    assert ids[0] == tokenizer.cls_id and ids[7] == sep and ids[-1] == sep  # 6 question tokens, then [SEP]
    assert segments[:8].tolist() == [0] * 8 and segments[8:].tolist() == [1] * 8


def test_answer_positions_cover_the_answer_or_point_at_cls_when_the_window_lacks_it():
    from kbuild.data.qa_windows import WindowShape, answer_positions, cut_windows

    tokenizer = _tokenizer("wordpiece")
    context = CONTEXTS[0]
    begin = len(context[: context.index("Paris")].encode())
    span = (begin, begin + len("Paris"))
    windows = cut_windows(tokenizer, WindowShape(16, 3, 6), QUESTIONS[:1], [context])
    starts, ends = windows["starts"].numpy(), windows["ends"].numpy()
    positions = [answer_positions(s, e, span) for s, e in zip(starts, ends, strict=True)]
    held = [(row, p) for row, p in enumerate(positions) if p != (0, 0)]
    assert held and len(held) < len(positions)
    for row, (first, last) in held:
        assert context.encode()[starts[row, first]:ends[row, last]].decode() == "Paris"
    assert answer_positions(starts[0], ends[0], None) == (0, 0)


def test_a_stride_as_large_as_the_window_is_a_located_spec_error(write_spec):
    from kbuild import load_spec

    path = write_spec("""\
name: qa
task: extractive_qa
data: {train: x.json, format: squad}
preprocess:
  max_length: 32
  max_query_length: 8
  doc_stride: 21
""")
    with pytest.raises(SpecError) as error:
        load_spec(path)
    assert "spec.yaml:7:" in str(error.value) and "expected doc_stride < 21" in str(error.value)


def test_doc_stride_set_for_another_task_is_refused(write_spec):
    from kbuild import load_spec

    path = write_spec("name: c\ntask: classification\ndata: {builtin: sentiment}\npreprocess: {doc_stride: 8}\n")
    with pytest.raises(SpecError, match="only task extractive_qa reads this field"):
        load_spec(path)

