"""Generation from a causal language model exported as TFLite (`kbuild export RUN --format tflite`
on a chat run; written by kbuild.exporter.tflite_lm): TFLite's CPU kernels (XNNPACK, and int8
weights with `--quantize dynamic`) run each step, numpy holds the key/value cache between steps.

Why not one graph with the loop inside, as the SavedModel generates: TFLite's `WHILE` body runs
outside the XNNPACK delegate, and its Python interpreter ships without tf-text's tokenizer ops.
So `model.tflite` holds, over one copy of the weights, two signatures per cache length N
(`cache_sizes`: 64, 256, 1024, ... up to the run's context, and the context itself):

    prefill_N(tokens int32 [rows, PREFILL], index, keys_i, values_i) -> logits, written_keys, written_values
    decode_N(tokens int32 [rows, 1], index, keys_i, values_i)        -> logits, written_keys, written_values

with, for each layer i, `keys_i` float32 [rows, kv_heads, N, head_dim] and `values_i` [rows,
kv_heads, head_dim, N]: the keys and values of positions < `index`, laid out so both attention
products read them in place (TFLite's batch matmul transposes a right-hand side it is not given
transposed). `written_keys` [layers * rows, kv_heads, width, head_dim] and `written_values`
[layers * rows, kv_heads, head_dim, width] are what the step adds at `index ..`, which numpy copies
into the caches; `logits` [rows, vocab] are those of the step's last token. N is fixed per
signature because TFLite's converter cannot lower an attention mask over two unknown dimensions;
a generation takes the shortest cache that holds it. The loop below is keras_hub's (and
`kbuild.decoding.causal_lm.continue_in_graph`'s): prompts share one right-padded buffer, the step
at position p reads every row's token p (a prompt's own token while it lasts), and each row stops at
a stop token or after `max_new_tokens`.

`tokenizer/` is a SavedModel (tensorflow + tensorflow_text) with the exact text-to-ids and
ids-to-text graphs of the SavedModel export: `reply_prompt` (a user message in the chat template),
`prompt` (raw text) and `detokenize`.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kbuild.errors import KbuildError
from kbuild.exporter.layout import METADATA, TFLITE_MODEL

PREFILL = 32
"""Prompt tokens per `prefill` call."""
PREFILL_AT_LEAST = 6
"""Fewer prompt tokens than this left go through `decode` one by one (a `prefill` call of 32
costs about as much as that many single steps at batch 1)."""
SMALLEST_CACHE = 64
CACHE_GROWTH = 4
TOKENIZER_DIR = "tokenizer"
GENERATOR_KEY = "generator"
"""metadata.json's section describing the cache, the stop tokens and the context."""


def is_generator_export(version: Path) -> bool:
    """Whether a version folder is a TFLite chat export (model.tflite, and metadata.json's `generator` section)."""
    if not (version / TFLITE_MODEL).is_file():
        return False
    try:
        return GENERATOR_KEY in json.loads((version / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def greedy(logits: np.ndarray) -> np.ndarray:
    """The most likely next token of each row."""
    return np.argmax(logits, axis=-1).astype(np.int32)


def cache_sizes(context: int) -> tuple[int, ...]:
    """The cache lengths an export holds steps for: SMALLEST_CACHE times powers of CACHE_GROWTH below
    `context`, then `context`."""
    sizes, size = [], SMALLEST_CACHE
    while size < context:
        sizes.append(size)
        size *= CACHE_GROWTH
    return (*sizes, context)


class TfliteCausalLm:
    """Args:
        model_path: the `model.tflite` with `prefill_N` and `decode_N` signatures (the layers,
            heads and cache lengths are read off them).
        threads: the interpreter's threads (None: one per core).
    """

    def __init__(self, model_path: str | Path, threads: int | None = None):
        import tensorflow as tf

        with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": it is what TF 2.21 ships
            warnings.simplefilter("ignore")
            # Unset, the thread count is TFLite's implementation-dependent default: ask for the cores.
            self.interpreter = tf.lite.Interpreter(model_path=str(model_path), num_threads=threads or os.cpu_count())
        names = self.interpreter.get_signature_list()
        self.sizes = tuple(sorted(int(name.split("_")[1]) for name in names if name.startswith("decode_")))
        inputs = self.runner("decode", self.sizes[0]).get_input_details()
        self.layers = sum(1 for name in inputs if name.startswith("keys_"))
        shape = inputs["keys_0"]["shape_signature"]
        self.kv_heads, self.head_dim = int(shape[1]), int(shape[3])
        self._lock = threading.Lock()
        """An interpreter runs one call at a time (a server's requests come from several threads)."""

    def runner(self, kind: str, size: int) -> Any:
        """The `prefill` or `decode` step over a cache of `size` positions."""
        return self.interpreter.get_signature_runner(f"{kind}_{size}")

    def cache_length(self, needed: int) -> int:
        """The shortest cache the export holds steps for that has `needed` positions (else the longest)."""
        return next((size for size in self.sizes if size >= needed), self.sizes[-1])

    def continue_ids(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, stop_ids: Sequence[int],
                     context: int, pad_id: int = 0,
                     pick: Callable[[np.ndarray], np.ndarray] = greedy) -> list[list[int]]:
        """Each prompt's continuation (token ids), at most `max_new_tokens`, ended before the first
        of `stop_ids`; a prompt longer than `context - max_new_tokens` keeps its last tokens, as the
        SavedModel export's does. `pick` maps logits [rows, vocab] to the next tokens [rows]."""
        with self._lock:
            return self._continue_ids(prompts, max_new_tokens, stop_ids, context, pad_id, pick)

    def _continue_ids(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, stop_ids: Sequence[int],
                      context: int, pad_id: int, pick: Callable[[np.ndarray], np.ndarray]) -> list[list[int]]:
        new = int(np.clip(max_new_tokens, 1, context - 1))
        prompts = [list(p)[-(context - new):] for p in prompts]
        if not prompts or any(not p for p in prompts):
            raise KbuildError("every prompt needs at least one token")
        rows, lengths = len(prompts), np.array([len(p) for p in prompts])
        total = int(lengths.max()) + new
        size = self.cache_length(total)
        decode, prefill = self.runner("decode", size), self.runner("prefill", size)
        buffer = np.full((rows, total + PREFILL), pad_id, np.int32)
        for row, prompt in enumerate(prompts):
            buffer[row, :len(prompt)] = prompt
        caches = Caches(self, rows, size)

        def run(runner: Any, position: int, width: int) -> np.ndarray:
            out = runner(tokens=buffer[:, position:position + width], index=np.int32(position), **caches.inputs())
            caches.write(out, position, width)
            return out["logits"]

        # Positions before the shortest prompt's last token are every row's prompt: fill them in
        # chunks. A chunk may run past them (into other prompts' tokens or padding): the decode
        # steps below write every later position again before any step reads it.
        start, position = int(lengths.min()) - 1, 0
        while start - position >= PREFILL_AT_LEAST and position + PREFILL <= size:
            run(prefill, position, PREFILL)
            position += PREFILL
        position = min(position, start)
        while position < start:
            run(decode, position, 1)
            position += 1
        out: list[list[int]] = [[] for _ in range(rows)]
        done = np.zeros(rows, bool)
        stops = set(int(s) for s in stop_ids)
        while position < total - 1 and not done.all():
            chosen = pick(run(decode, position, 1))
            position += 1
            for row in range(rows):
                if position < lengths[row]:
                    continue  # still reading its prompt: buffer holds the token
                buffer[row, position] = chosen[row]
                if done[row]:
                    continue
                if int(chosen[row]) in stops:
                    done[row] = True
                else:
                    out[row].append(int(chosen[row]))
                    done[row] = len(out[row]) >= new
        return out

    def logits_along(self, sequence: Sequence[int], start: int = 0) -> np.ndarray:
        """The `decode` step's logits [len(sequence) - start, vocab] at positions start .. end of one
        sequence read a token at a time (a check against the Keras model, and perplexity)."""
        size = self.cache_length(len(sequence))
        decode, caches, out = self.runner("decode", size), Caches(self, 1, size), []
        with self._lock:
            for position, token in enumerate(sequence):
                step = decode(tokens=np.array([[token]], np.int32), index=np.int32(position), **caches.inputs())
                caches.write(step, position, 1)
                if position >= start:
                    out.append(step["logits"][0])
        return np.stack(out)

    def perplexity(self, sequence: Sequence[int]) -> float:
        """exp of the mean next-token cross-entropy over `sequence` (as kbuild.decoding.causal_lm.perplexity)."""
        logits = self.logits_along(sequence[:-1]).astype(np.float64)
        top = logits.max(-1, keepdims=True)
        log_z = np.log(np.exp(logits - top).sum(-1)) + top[:, 0]
        return float(np.exp(np.mean(log_z - logits[np.arange(len(logits)), np.asarray(sequence[1:])])))


class Caches:
    """The key and value caches of `rows` sequences over `size` positions, one array per layer, in
    the layout the steps read (see the module's docstring)."""

    def __init__(self, lm: TfliteCausalLm, rows: int, size: int):
        self.rows, self.size = rows, size
        self.keys = [np.zeros((rows, lm.kv_heads, size, lm.head_dim), np.float32) for _ in range(lm.layers)]
        self.values = [np.zeros((rows, lm.kv_heads, lm.head_dim, size), np.float32) for _ in range(lm.layers)]

    def inputs(self) -> dict[str, np.ndarray]:
        return {**{f"keys_{i}": k for i, k in enumerate(self.keys)}, **{f"values_{i}": v for i, v in enumerate(self.values)}}

    def write(self, out: dict[str, np.ndarray], position: int, width: int) -> None:
        """Copy a step's `written_keys` / `written_values` (positions position .. + width) in;
        positions past the cache's end (a prefill chunk's padding) are dropped."""
        kept = min(width, self.size - position)
        layers = len(self.keys)
        keys = out["written_keys"].reshape(layers, self.rows, *out["written_keys"].shape[1:])
        values = out["written_values"].reshape(layers, self.rows, *out["written_values"].shape[1:])
        for i in range(layers):
            self.keys[i][:, :, position:position + kept] = keys[i][:, :, :kept]
            self.values[i][..., position:position + kept] = values[i][..., :kept]


class TfliteChat:
    """A TFLite chat export folder: user messages in, replies out (`serving_default`'s contract).

    Args:
        version: the export's version folder.
        threads: the interpreter's threads (None: one per core).
    """

    def __init__(self, version: str | Path, threads: int | None = None):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (the tokenizer graph's tf-text ops)

        version = Path(version)
        self.metadata = json.loads((version / METADATA).read_text(encoding="utf-8"))
        self.settings = self.metadata[GENERATOR_KEY]
        self.lm = TfliteCausalLm(version / TFLITE_MODEL, threads)
        self.tokenizer = tf.saved_model.load(str(version / TOKENIZER_DIR))

    def _ids(self, signature: str, texts: Sequence[str]) -> list[list[int]]:
        import tensorflow as tf

        out = self.tokenizer.signatures[signature](tf.constant(list(texts), tf.string))
        ids, lengths = out["ids"].numpy(), out["lengths"].numpy()
        return [row[:n].tolist() for row, n in zip(ids, lengths, strict=True)]

    def _texts(self, continuations: list[list[int]]) -> list[bytes]:
        import tensorflow as tf

        width = max(1, max(len(c) for c in continuations))
        ids = np.zeros((len(continuations), width), np.int32)
        for row, tokens in enumerate(continuations):
            ids[row, :len(tokens)] = tokens
        lengths = np.array([len(c) for c in continuations], np.int32)
        return list(self.tokenizer.signatures["detokenize"](ids=tf.constant(ids), lengths=tf.constant(lengths))["text"].numpy())

    def complete(self, prompts: Sequence[str], max_new_tokens: int, signature: str = "prompt",
                 pick: Callable[[np.ndarray], np.ndarray] = greedy) -> list[bytes]:
        """The continuation of each raw prompt (UTF-8 bytes, as the SavedModel's `generate` gives)."""
        s = self.settings
        ids = self.lm.continue_ids(self._ids(signature, prompts), max_new_tokens, s["stop_ids"], s["context"],
                                   s["pad_id"], pick)
        return self._texts(ids)

    def reply(self, texts: Sequence[str]) -> list[bytes]:
        """The reply to each user message, wrapped in the chat template as the SavedModel's `serving_default` does."""
        return self.complete(texts, self.settings["max_new_tokens"], signature="reply_prompt")

    def serve(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """`serving_default`: {"text": strings [batch]} -> {"reply": bytes [batch]}."""
        return {"reply": np.array(self.reply(_strings(inputs["text"])), dtype=object)}

    def generate(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The SavedModel export's `generate`: {"prompt": strings [batch], "max_new_tokens": int}
        -> {"completion": bytes [batch], "text": prompt + completion}."""
        prompts = _strings(inputs["prompt"])
        completions = self.complete(prompts, int(np.asarray(inputs["max_new_tokens"])))
        return {"completion": np.array(completions, dtype=object),
                "text": np.array([p.encode("utf-8") + c for p, c in zip(prompts, completions, strict=True)], dtype=object)}


def _strings(values: Any) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(values).reshape(-1).tolist()]
