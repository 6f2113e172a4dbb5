"""`kbuild.data.build` / `load_bundle`: splits, labels, shuffling, bucketing, assets reuse."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from kbuild.data import encode_texts
from kbuild.data.pipeline import bucket_lengths
from kbuild.errors import DataError
from kbuild.spec.root import Spec
from kbuild.tasks.bundle import build, load_bundle, tokenizer_for

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WORDS = "good bad fine dull great awful nice poor film plot acting story".split()


def write_tsv(folder: Path, name: str, rows: list[tuple[str, str]]) -> str:
    path = folder / name
    path.write_text("label\ttext\n" + "".join(f"{y}\t{x}\n" for y, x in rows), encoding="utf-8")
    return str(path)


def rows(count: int, offset: int = 0) -> list[tuple[str, str]]:
    """Distinct texts of varying length with labels pos/neg, deterministic."""
    out = []
    for i in range(offset, offset + count):
        words = [WORDS[(i * 7 + k) % len(WORDS)] for k in range(1 + i % 9)]
        out.append(("pos" if i % 3 else "neg", f"{' '.join(words)} number{i}"))
    return out


def make_spec(data: dict, **sections) -> Spec:
    sections.setdefault("train", {"batch_size": 4})
    sections.setdefault("preprocess", {"tokenizer": {"type": "word"}, "max_length": 16})
    return Spec(name="t", task="classification", data=data, **sections)


@pytest.fixture
def files(tmp_path):
    return {
        "train": write_tsv(tmp_path, "train.tsv", rows(30)),
        "valid": write_tsv(tmp_path, "valid.tsv", rows(6, offset=100)),
        "test": write_tsv(tmp_path, "test.tsv", rows(5, offset=200)),
    }


def batches(dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def labels_in_order(dataset) -> list[int]:
    return [int(v) for _, y in batches(dataset) for v in y]


def rows_in_order(dataset) -> list[tuple[int, ...]]:
    return [tuple(row) for x, _ in batches(dataset) for row in x]


def test_build_gives_batched_int32_ids_and_label_ids_per_split(files):
    bundle = build(make_spec(files))
    assert bundle.counts == {"train": 30, "valid": 6, "test": 5}
    assert bundle.skipped == {"train": 0, "valid": 0, "test": 0}
    assert bundle.sources["valid"] == files["valid"]
    x, y = batches(bundle.datasets["train"])[0]
    assert x.dtype == np.int32 and x.shape == (4, 16)
    assert y.dtype == np.int32 and y.shape == (4,)
    assert [len(y) for _, y in batches(bundle.datasets["train"])][-1] == 2  # remainder kept: 30 = 7 x 4 + 2
    # A split that is only scored reads larger batches (`Task.scoring_batch_size`): all 5 at once.
    assert [len(y) for _, y in batches(bundle.datasets["test"])] == [5]


def test_labels_are_sorted_train_labels_and_ids_index_them(files):
    bundle = build(make_spec(files))
    assert bundle.labels == ["neg", "pos"]
    expected = [bundle.labels.index(e.label) for e in bundle.examples["valid"]]
    assert labels_in_order(bundle.datasets["valid"]) == expected


def test_valid_and_test_keep_file_order(files):
    bundle = build(make_spec(files))
    texts = [e.text for e in bundle.examples["test"]]
    encoded = bundle.tokenizer.encode(texts).numpy()
    assert rows_in_order(bundle.datasets["test"]) == [tuple(r) for r in encoded]


def test_label_seen_only_in_valid_is_an_error_naming_file_line_and_label(tmp_path, files):
    files["valid"] = write_tsv(tmp_path, "odd.tsv", [("pos", "good"), ("neutral", "fine")])
    with pytest.raises(DataError) as error:
        build(make_spec(files))
    assert (error.value.file, error.value.line) == (files["valid"], 3)
    assert "label 'neutral' does not occur in the train split" in str(error.value)
    assert "known labels: neg, pos" in str(error.value)


def test_train_with_a_single_label_is_an_error(tmp_path):
    train = write_tsv(tmp_path, "train.tsv", [("pos", "good"), ("pos", "nice")])
    with pytest.raises(DataError, match="every example has the label 'pos'"):
        build(make_spec({"train": train}))


def test_unlabelled_text_file_cannot_train(tmp_path):
    train = tmp_path / "train.txt"
    train.write_text("good\nbad\n", encoding="utf-8")
    with pytest.raises(DataError, match="the examples have no labels"):
        build(make_spec({"train": str(train)}))


def test_seeded_shuffle_repeats_across_builds_and_reshuffles_each_epoch(files):
    first = build(make_spec(files, seed=7)).datasets["train"]
    again = build(make_spec(files, seed=7)).datasets["train"]
    other_seed = build(make_spec(files, seed=8)).datasets["train"]
    epoch1, epoch2 = rows_in_order(first), rows_in_order(first)
    assert epoch1 == rows_in_order(again)
    assert epoch2 == rows_in_order(again)
    assert epoch1 != epoch2 and sorted(epoch1) == sorted(epoch2)
    assert epoch1 != rows_in_order(other_seed)


def test_valid_fraction_holds_out_a_seeded_share_of_train(files):
    data = {"train": files["train"], "valid_fraction": 0.2}
    bundle = build(make_spec(data, seed=3))
    assert bundle.counts["train"] == 24 and bundle.counts["valid"] == 6
    held = [e.line for e in bundle.examples["valid"]]
    assert held == sorted(held)
    assert not set(held) & {e.line for e in bundle.examples["train"]}
    assert [e.line for e in build(make_spec(data, seed=3)).examples["valid"]] == held
    assert [e.line for e in build(make_spec(data, seed=4)).examples["valid"]] != held


def test_valid_fraction_beside_a_valid_file_is_an_error(files):
    with pytest.raises(DataError, match="data.valid_fraction: the valid split is already given"):
        build(make_spec({**files, "valid_fraction": 0.1}))


def test_missing_test_file_simply_leaves_the_split_out(files):
    bundle = build(make_spec({"train": files["train"], "valid": files["valid"]}))
    assert set(bundle.datasets) == {"train", "valid"}


def test_skipped_rows_are_counted_per_split(tmp_path, files):
    files["test"] = write_tsv(tmp_path, "test2.tsv", [("pos", "good"), ("neg", " ")])
    bundle = build(make_spec({**files, "on_error": "skip"}))
    assert bundle.skipped == {"train": 0, "valid": 0, "test": 1}
    assert bundle.counts["test"] == 1


def test_limit_caps_every_split(files):
    bundle = build(make_spec({**files, "limit": 5}))
    assert bundle.counts == {"train": 5, "valid": 5, "test": 5}


def test_build_saves_assets_and_load_bundle_reuses_them_without_refitting(tmp_path, files):
    assets = tmp_path / "run" / "assets"
    trained = build(make_spec(files), assets_dir=assets)
    assert sorted(p.name for p in assets.iterdir()) == ["labels.txt", "vocab.txt"]
    # Evaluation must not read (let alone refit on) train: point it at a missing file.
    spec = make_spec({**files, "train": str(tmp_path / "gone.tsv")})
    loaded = load_bundle(spec, assets, splits=("test",))
    assert loaded.labels == trained.labels
    assert loaded.tokenizer.vocabulary == trained.tokenizer.vocabulary
    assert rows_in_order(loaded.datasets["test"]) == rows_in_order(trained.datasets["test"])
    assert set(loaded.datasets) == {"test"}


def test_load_bundle_with_no_splits_gives_tokenizer_and_labels_only(tmp_path, files):
    build(make_spec(files), assets_dir=tmp_path)
    bundle = load_bundle(make_spec(files), tmp_path, splits=())
    assert bundle.labels == ["neg", "pos"] and bundle.datasets == {}


def test_load_bundle_files_replace_a_split(tmp_path, files):
    build(make_spec(files), assets_dir=tmp_path)
    other = write_tsv(tmp_path, "other.tsv", [("neg", "bad plot"), ("pos", "good plot")])
    bundle = load_bundle(make_spec(files), tmp_path, splits=("test",), files={"test": other})
    assert bundle.counts == {"test": 2} and bundle.sources["test"] == other


def test_load_bundle_without_assets_says_the_run_was_not_trained(tmp_path, files):
    with pytest.raises(DataError, match="was the run trained"):
        load_bundle(make_spec(files), tmp_path / "empty")


def test_cls_pooling_puts_the_start_token_first(files):
    bundle = build(make_spec(files, model={"pooling": "cls"}))
    assert bundle.tokenizer.start_token
    assert {int(row[0]) for row in rows_in_order(bundle.datasets["valid"])} == {2}
    assert not tokenizer_for(make_spec(files)).start_token


def test_bucketing_pads_each_batch_to_one_of_a_few_lengths_and_keeps_every_example(files):
    spec = make_spec(
        files, preprocess={"tokenizer": {"type": "word"}, "max_length": 64, "bucketing": True}
    )
    bundle = build(spec)
    got = batches(bundle.datasets["train"])
    assert {x.shape[1] for x, _ in got} <= set(bucket_lengths(64)) == {4, 6, 8, 12, 16, 24, 32, 48, 64}
    assert len({x.shape[1] for x, _ in got}) > 1
    assert sum(len(y) for _, y in got) == 30
    assert int(bundle.datasets["train"].cardinality()) == len(got)  # known, so Keras never sees it run dry
    for x, _ in got:  # no batch is padded past the next bucket above its longest row
        longest = int(np.max(np.sum(x != 0, axis=1)))
        assert x.shape[1] == min(n for n in bucket_lengths(64) if n >= longest)
    plain = bundle.tokenizer.encode([e.text for e in bundle.examples["train"]]).numpy()
    trimmed = sorted(tuple(int(v) for v in row if v) for x, _ in got for row in x)
    assert trimmed == sorted(tuple(int(v) for v in row if v) for row in plain)


def test_bucket_lengths_step_by_half_powers_of_two_up_to_max_length():
    assert bucket_lengths(16) == [4, 6, 8, 12, 16]
    assert bucket_lengths(100) == [4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 100]
    assert bucket_lengths(5) == [4, 5] and bucket_lengths(3) == [3]


def test_builtin_dataset_builds_three_splits():
    spec = make_spec({"builtin": "sentiment", "limit": 40})
    bundle = build(spec)
    assert bundle.counts == {"train": 40, "valid": 40, "test": 40}
    assert bundle.labels == ["negative", "positive"]
    assert bundle.sources["train"] == "<builtin:sentiment>/train"


def test_encode_texts_gives_id_batches_in_input_order(files):
    bundle = build(make_spec(files))
    texts = ["good film", "awful plot", "zebra", "nice story", "poor acting"]
    got = [x.numpy() for x in encode_texts(bundle.tokenizer, texts, batch_size=2)]
    assert [len(x) for x in got] == [2, 2, 1]
    assert np.array_equal(np.concatenate(got), bundle.tokenizer.encode(texts).numpy())


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared datasets not present")
def test_sst2_pipeline_outpaces_the_model_many_times():
    data = {
        "train": "${KBUILD_DATA}/sst2/train.tsv",
        "valid": "${KBUILD_DATA}/sst2/dev.tsv",
        "columns": {"text": "sentence", "label": "label"},
    }
    spec = make_spec(
        data,
        train={"batch_size": 64},
        preprocess={"tokenizer": {"type": "word"}, "max_length": 64},
    )
    start = time.perf_counter()
    bundle = build(spec)
    seen = sum(len(y) for _, y in bundle.datasets["train"])
    rate = seen / (time.perf_counter() - start)
    assert seen == 67349
    assert rate > 5 * 600, f"read + fit + tokenise + batch: {rate:.0f} samples/s"
