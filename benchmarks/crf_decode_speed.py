"""A trained CRF tagger's decoding speed: Viterbi against plain per-token argmax, same run.

Both decoders run on the same trained model, the same test split and the same batch size, each
compiled once by `predict` (the first, tracing pass is discarded); rounds alternate so machine
noise hits both alike. Measured twice: end to end (the model's forward pass included, as a user
sees it) and decoding alone (on the model's outputs computed once beforehand).

    /work/main/.venv/bin/python benchmarks/crf_decode_speed.py RUN [--split test] [--batch-size 64] [--rounds 3]

Prints sentences/s for each and writes benchmarks/out/crf_decode_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's kbuild

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kbuild.layers.crf import TagDecoder  # noqa: E402
from kbuild.model import TOKEN_IDS  # noqa: E402
from kbuild.runs import (
    load_trained_model,  # noqa: E402
    open_run,  # noqa: E402
)
from kbuild.tasks import TASKS  # noqa: E402
from kbuild.tasks.bundle import load_bundle  # noqa: E402
from kbuild.tasks.checks import load_spec  # noqa: E402
from kbuild.tasks.conlleval import score  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    folder = open_run(args.run)
    spec = load_spec(folder.spec)
    if spec.task != "tagging" or spec.model.head.type != "crf":
        raise SystemExit(f"{args.run}: not a CRF tagger")
    bundle = load_bundle(spec, folder.assets, splits=(args.split,))
    model = load_trained_model(folder)
    task = TASKS.get("tagging")
    decoders = {
        "viterbi": task.decoder(model, spec, bundle.labels),
        "argmax": task.decoder(model, spec, bundle.labels, argmax_only=True),
    }
    dataset = bundle.features_dataset(args.split, args.batch_size).cache()
    count = bundle.counts[args.split]
    predictions = {name: decoder.predict(dataset, verbose=0) for name, decoder in decoders.items()}  # traces
    times = _time(decoders, dataset, args.rounds)

    # Decoding alone: the packed CRF outputs, computed once, in, tag ids out.
    outputs = model.predict(dataset, verbose=0)
    ids = bundle.features[args.split]
    ids = ids[TOKEN_IDS] if isinstance(ids, dict) else ids
    decode_inputs = tf.data.Dataset.from_tensor_slices(((outputs, ids),)).batch(args.batch_size).cache()
    decode_only = {name: _decode_model(outputs.shape, ids.shape, len(bundle.labels), name == "argmax") for name in decoders}
    for decoder in decode_only.values():
        decoder.predict(decode_inputs, verbose=0)
    decode_times = _time(decode_only, decode_inputs, args.rounds)

    gold = [example.label for example in bundle.examples[args.split]]
    result = {"run": str(folder.path), "split": args.split, "sentences": count, "batch_size": args.batch_size}
    for name in decoders:
        tags = [[bundle.labels[i] for i in row[: len(g)] if i >= 0] for row, g in zip(predictions[name], gold, strict=True)]
        tags = [t + ["O"] * (len(g) - len(t)) for t, g in zip(tags, gold, strict=True)]
        result[name] = {
            "sentences_per_second": round(count / statistics.median(times[name]), 1),
            "decode_only_sentences_per_second": round(count / statistics.median(decode_times[name]), 1),
            "entity_f1": round(score(gold, tags).report()["f1"], 4),
        }
    OUT.mkdir(exist_ok=True)
    (OUT / "crf_decode_speed.json").write_text(json.dumps(result, indent=2))
    for name in decoders:
        row = result[name]
        print(f"{name:8} end to end {row['sentences_per_second']:>9} sentences/s; decoding alone "
              f"{row['decode_only_sentences_per_second']:>9} sentences/s; entity F1 {row['entity_f1']}")


def _decode_model(outputs_shape, ids_shape, num_tags: int, argmax_only: bool) -> keras.Model:
    outputs = keras.Input(outputs_shape[1:])
    ids = keras.Input(ids_shape[1:], dtype="int32")
    return keras.Model([outputs, ids], TagDecoder(num_tags, crf=True, argmax_only=argmax_only)(outputs, ids))


def _time(models: dict, dataset, rounds: int) -> dict[str, list[float]]:
    """Seconds per full pass of each model over `dataset`, rounds alternating between models."""
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            started = time.perf_counter()
            model.predict(dataset, verbose=0)
            times[name].append(time.perf_counter() - started)
    return times


if __name__ == "__main__":
    main()
