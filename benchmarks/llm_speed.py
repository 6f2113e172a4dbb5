"""Batch-1 greedy generation speed of a causal LM checkpoint, side by side in one process on one CPU:
kbuild's export (float32, weight-only int8, int4; `--tflite`: the TFLite export's steps, float32 or
int8 weights), keras_hub's own `generate`, and llama.cpp (through
`llama_cpp`, when importable: a benchmark-only dependency, not installed by kbuild); plus each
quantisation's perplexity on a fixed text against float32's.

kbuild's rows are the export's `generate` signature: the chat task's serving functions built around
the checkpoint (quantised by `kbuild.layers.quantization`, as `kbuild export --quantize` does), written
as a SavedModel (`kbuild.exporter.savedmodel.write_graph`) and loaded back with `tf.saved_model.load`.
Each row: one warm-up call (graph start-up, timed apart), then `--new-tokens` tokens with the
key/value cache from a prompt that gives no early end token; tokens/s counts the tokens actually
generated over the call's wall time (prefill included). The factual question is answered by each
row too (the export's `serving_default`).

    nice -n 10 .venv/bin/python benchmarks/llm_speed.py [--checkpoint pretrained/SmolLM2-135M-Instruct]
        [--new-tokens 128] [--threads 2] [--gguf PATH] [--modes none,int8,int4] [--batch 8]
        [--tflite none,dynamic] [--alternate ROUNDS]

`--batch N` (N > 1) adds a throughput row per kbuild mode and for llama.cpp: N different prompts of
about the same length (PROMPTS), kbuild's as one `generate` call of N rows (the batch `kbuild serve`'s
dynamic batching hands the model when N requests arrive together; the HTTP layer is not in it),
llama.cpp's one after another (llama-cpp-python serves one sequence at a time). Tokens/s counts every
generated token of the N over the wall time. A TFLite row also goes through the server: `kbuild serve`
started on the export in a process of its own (`--max-wait-ms SERVE_WAIT_MS`), the N prompts sent
as N concurrent HTTP requests to its `generate` signature; tokens/s counts the replies' tokens
(tokenised again) over the wall time from the first request sent to the last reply.

Prints one JSON object and writes benchmarks/out/llm_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kbuild.runtime import init_tensorflow  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
QUESTION = "What is the capital of France? Answer in one sentence."
CONTINUE = "The history of the city of Paris begins"
PROMPTS = tuple(f"The history of the city of {city} begins" for city in
                ("Paris", "London", "Rome", "Berlin", "Madrid", "Vienna", "Prague", "Lisbon", "Athens", "Dublin",
                 "Warsaw", "Oslo", "Bern", "Riga", "Sofia", "Zagreb"))
"""`--batch` prompts: one sentence start each, a few tokens apart at most."""
FIXED_TEXT = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named after "
    "the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889. Locally nicknamed "
    "\"La dame de fer\" (French for \"Iron Lady\"), it was constructed as the centrepiece of the 1889 World's Fair, "
    "and to crown the centennial anniversary of the French Revolution. Although initially criticised by some of "
    "France's leading artists and intellectuals for its design, it has since become a global cultural icon of "
    "France and one of the most recognisable structures in the world.")
"""A fixed English paragraph (Wikipedia's opening of "Eiffel Tower", CC BY-SA) for perplexity."""
MODES = ("none", "int8", "int4")
SERVE_WAIT_MS = 50
"""The served row's `--max-wait-ms`: what a batch of generations waits for company (a reply takes
seconds, so 50 ms costs nothing; the default 5 ms can split requests sent together)."""


def start_tensorflow(threads: int) -> None:
    """TensorFlow with `threads` intra-op threads and one inter-op thread: batch-1 decoding as a
    user's machine with that many cores runs it."""

    def configure() -> None:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    init_tensorflow(before_start=configure)


def timed(call):
    start = time.perf_counter()
    value = call()
    return value, time.perf_counter() - start


def chat_spec(checkpoint: Path, folder: Path):
    """A chat spec over the checkpoint: what the export's serving functions are built from."""
    from kbuild import load_spec

    (folder / "train.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                                 {"role": "assistant", "content": "hi"}]}) + "\n")
    (folder / "spec.yaml").write_text(f"name: llm-speed\ntask: chat\ndata: {{train: {folder / 'train.jsonl'}}}\n"
                                      f"model: {{backbone: {{from: {checkpoint.resolve()}}}}}\n")
    return load_spec(folder / "spec.yaml")


def kbuild_export_row(spec, tokenizer, mode: str, folder: Path, new_tokens: int, ids, batch: int = 1) -> dict:
    import tensorflow as tf

    from kbuild.decoding.causal_lm import perplexity
    from kbuild.exporter.savedmodel import write_graph
    from kbuild.layers.quantization import quantize_weights
    from kbuild.pretrained.causal_lm import load_causal_lm
    from kbuild.pretrained.checkpoint import CAUSAL_LM, inspect
    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import Assets

    model = load_causal_lm(inspect(spec, CAUSAL_LM))
    model.preprocessor = None
    quantize_weights(model, mode)
    row: dict = {"perplexity": round(perplexity(model, ids), 4)}
    functions = TASKS.get("chat").serving_functions(model, Assets(tokenizer, []), spec)
    version = folder / mode
    _, row["export_s"] = timed(lambda: write_graph([model, *tokenizer.trackables()], functions, version))
    row["export_mb"] = round(sum(f.stat().st_size for f in version.rglob("*") if f.is_file()) / 2**20, 1)
    loaded = tf.saved_model.load(str(version))
    generate, serve = loaded.signatures["generate"], loaded.signatures["serving_default"]

    def run(n: int):
        return generate(prompt=tf.constant([CONTINUE]), max_new_tokens=tf.constant(n, tf.int32))["completion"]

    _, row["first_call_s"] = timed(lambda: run(4))
    completion, seconds = timed(lambda: run(new_tokens))
    tokens = int(tokenizer.token_ids(completion).row_lengths()[0])
    row.update(new_tokens=tokens, seconds=round(seconds, 2), tokens_per_s=round(tokens / seconds, 2),
               answer=serve(text=tf.constant([QUESTION]))["reply"].numpy()[0].decode("utf-8", "replace").strip())
    if batch > 1:
        prompts = tf.constant(list(PROMPTS[:batch]))
        generate(prompt=prompts, max_new_tokens=tf.constant(4, tf.int32))  # this batch shape's first call
        completions, seconds = timed(lambda: generate(prompt=prompts, max_new_tokens=tf.constant(new_tokens, tf.int32)))
        tokens = int(tf.reduce_sum(tokenizer.token_ids(completions["completion"]).row_lengths()))
        row["batch"] = {"prompts": batch, "new_tokens": tokens, "seconds": round(seconds, 2),
                        "tokens_per_s": round(tokens / seconds, 2)}
    return row


def tflite_row(spec, tokenizer, mode: str, folder: Path, new_tokens: int, ids, threads: int, batch: int = 1) -> dict:
    """`kbuild export --format tflite --quantize MODE`'s files for the checkpoint (written by the
    exporter's own `write_generator`), run by `TfliteChat` as `kbuild predict` runs them."""
    from kbuild.exporter.tflite_generator import TfliteChat
    from kbuild.exporter.tflite_lm import write_generator
    from kbuild.pretrained.causal_lm import load_causal_lm
    from kbuild.pretrained.checkpoint import CAUSAL_LM, inspect

    model = load_causal_lm(inspect(spec, CAUSAL_LM))
    version = folder / f"tflite-{mode}" / "1"  # a model folder's version, as `kbuild export` writes it
    version.mkdir(parents=True)
    settings, export_s = timed(lambda: write_generator(version, model, tokenizer, spec, mode))
    chat = TfliteChat(version, threads)
    row: dict = {"export_s": round(export_s, 1), "export_mb": round((version / "model.tflite").stat().st_size / 2**20, 1),
                 "verification": settings["verification"], "perplexity": round(chat.lm.perplexity(ids[0].tolist()), 4)}

    # The warm-up generates as many tokens as the timed call: each cache length is its own pair of
    # signatures, and a signature's first call prepares its kernels (seconds).
    _, row["first_call_s"] = timed(lambda: tflite_tokens(chat, [CONTINUE], new_tokens))
    tokens, seconds = timed(lambda: tflite_tokens(chat, [CONTINUE], new_tokens))
    row.update(new_tokens=tokens, seconds=round(seconds, 2), tokens_per_s=round(tokens / seconds, 2),
               answer=chat.reply([QUESTION])[0].decode("utf-8", "replace").strip())
    if batch > 1:
        prompts = list(PROMPTS[:batch])
        tflite_tokens(chat, prompts, new_tokens)
        tokens, seconds = timed(lambda: tflite_tokens(chat, prompts, new_tokens))
        row["batch"] = {"prompts": batch, "new_tokens": tokens, "seconds": round(seconds, 2),
                        "tokens_per_s": round(tokens / seconds, 2)}
        del chat  # its interpreter's memory and threads: the server below loads its own
        row["served"] = served_row(version.parent, tokenizer, new_tokens, batch)
    return row


def tflite_tokens(chat, prompts, new_tokens: int) -> int:
    """Tokens `TfliteChat` generates greedily for the raw prompts, with no stop token."""
    settings = chat.settings
    continuations = chat.lm.continue_ids(chat._ids("prompt", prompts), new_tokens, (), settings["context"],
                                         settings["pad_id"])
    return sum(len(c) for c in continuations)


def llama_cpp_tokens(model, prompts, new_tokens: int) -> int:
    """Tokens llama.cpp generates greedily for the prompts, one after another."""
    return sum(model(prompt, max_tokens=new_tokens, temperature=0.0)["usage"]["completion_tokens"] for prompt in prompts)


def served_row(model_root: Path, tokenizer, new_tokens: int, batch: int) -> dict:
    """`kbuild serve MODEL_ROOT` in a process of its own, sent PROMPTS[:batch] as that many concurrent
    requests to `generate` (the batching merges them); tokens/s over the wall time of all of them."""
    with Server(model_root) as server:
        server.ask_all(PROMPTS[:batch], new_tokens)  # warm-up: the signatures' first calls
        completions, seconds = timed(lambda: server.ask_all(PROMPTS[:batch], new_tokens))
    tokens = count_tokens(tokenizer, completions)
    return {"prompts": batch, "requests": batch, "max_wait_ms": SERVE_WAIT_MS, "server_start_s": server.start_s,
            "new_tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 2)}


def count_tokens(tokenizer, texts: list[str]) -> int:
    import tensorflow as tf

    return int(tf.reduce_sum(tokenizer.token_ids(tf.constant(texts)).row_lengths()))


class Server:
    """`kbuild serve MODEL_ROOT` on a free port in a process of its own, for a `with` block."""

    def __init__(self, model_root: Path):
        self.model_root, self.start_s = model_root, 0.0
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    def __enter__(self) -> Server:
        command = [sys.executable, "-m", "kbuild.cli", "serve", str(self.model_root), "--port", str(self.port),
                   "--max-wait-ms", str(SERVE_WAIT_MS), "--file-system-poll-wait-seconds", "0"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        try:
            _, started = timed(self._wait_until_up)
        except BaseException:
            self.__exit__()
            raise
        self.start_s = round(started, 1)
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)

    def _wait_until_up(self, limit_s: float = 600) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kbuild serve exited ({self.process.returncode}): {self.process.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"kbuild serve did not answer within {limit_s:.0f} s")

    def ask(self, prompt: str, new_tokens: int) -> str:
        """One request to `generate`: the prompt's completion."""
        body = json.dumps({"signature_name": "generate", "inputs": {"prompt": [prompt], "max_new_tokens": new_tokens}})
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/v1/models/{self.model_root.name}:predict",
                                         body.encode(), {"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.load(response)["outputs"]["completion"][0]

    def ask_all(self, prompts, new_tokens: int) -> list[str]:
        """Every prompt as a request of its own, all at once (the server's batching merges them)."""
        with ThreadPoolExecutor(len(prompts)) as pool:
            return list(pool.map(lambda prompt: self.ask(prompt, new_tokens), prompts))


def alternating_rows(version: Path, tokenizer, gguf: Path, new_tokens: int, threads: int, batch: int,
                     rounds: int) -> dict:
    """The TFLite export (called directly, and through `kbuild serve`) and llama.cpp taking turns,
    `rounds` times, each measurement after a warm-up of its own: this machine's speed drifts between
    runs (llama.cpp's batch-1 row read 80 to 138 tokens/s in separate runs), so each round compares
    rows measured seconds apart; the medians and the per-round ratios are reported."""
    import statistics

    import llama_cpp

    from kbuild.exporter.tflite_generator import TfliteChat

    chat = TfliteChat(version, threads)
    llama = llama_cpp.Llama(model_path=str(gguf), n_threads=threads, n_ctx=1024, verbose=False)
    prompts = list(PROMPTS[:batch])
    with Server(version.parent) as server:
        rows = {"tflite batch 1": lambda n: tflite_tokens(chat, [CONTINUE], n),
                "llama.cpp batch 1": lambda n: llama_cpp_tokens(llama, [CONTINUE], n),
                f"tflite {batch} prompts, one call": lambda n: tflite_tokens(chat, prompts, n),
                f"kbuild serve, {batch} concurrent requests": lambda n: count_tokens(tokenizer, server.ask_all(prompts, n)),
                f"llama.cpp {batch} prompts, sequential": lambda n: llama_cpp_tokens(llama, prompts, n)}
        for run in rows.values():  # as long as the timed calls: the same signatures' first calls
            run(new_tokens)
        speeds: dict[str, list[float]] = {name: [] for name in rows}
        for round_ in range(rounds):
            for name, run in rows.items():
                tokens, seconds = timed(lambda run=run: run(new_tokens))
                speeds[name].append(round(tokens / seconds, 2))
            print("round", round_ + 1, json.dumps({name: values[-1] for name, values in speeds.items()}), flush=True)
    names = list(rows)
    ratios = {"tflite batch 1 / llama.cpp batch 1": [a / b for a, b in zip(speeds[names[0]], speeds[names[1]], strict=True)],
              f"kbuild serve / llama.cpp sequential ({batch} prompts)":
                  [a / b for a, b in zip(speeds[names[3]], speeds[names[4]], strict=True)]}
    return {"rounds": rounds, "tokens_per_s": speeds,
            "median_tokens_per_s": {name: statistics.median(values) for name, values in speeds.items()},
            "ratios": {name: [round(r, 3) for r in values] for name, values in ratios.items()},
            "median_ratios": {name: round(statistics.median(values), 3) for name, values in ratios.items()}}


def keras_hub_row(checkpoint, new_tokens: int) -> dict:
    from kbuild.pretrained.causal_lm import load_causal_lm
    from kbuild.pretrained.chat_template import ChatTemplate

    model = load_causal_lm(checkpoint)
    model.compile(sampler="greedy")
    prompt_tokens = int(model.preprocessor.tokenizer(CONTINUE).shape[0])
    length = prompt_tokens + new_tokens
    _, first = timed(lambda: model.generate(CONTINUE, max_length=length, stop_token_ids=None))
    _, seconds = timed(lambda: model.generate(CONTINUE, max_length=length, stop_token_ids=None))
    question = ChatTemplate.from_folder(checkpoint.path).render([{"role": "user", "content": QUESTION}])
    answer = model.generate(question, max_length=int(model.preprocessor.tokenizer(question).shape[0]) + 32,
                            strip_prompt=True)
    return {"first_call_s": round(first, 1), "new_tokens": new_tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(new_tokens / seconds, 2), "answer": answer.strip()}


def llama_cpp_row(gguf: Path | None, new_tokens: int, threads: int, batch: int = 1) -> dict:
    try:
        import llama_cpp
    except ImportError:
        print("llama.cpp: not installed", file=sys.stderr)
        return {"status": "llama.cpp: not installed (pip install llama-cpp-python, a benchmark-only dependency)"}
    if gguf is None or not gguf.is_file():
        return {"status": f"llama.cpp: no GGUF file ({gguf}); pass --gguf"}
    model = llama_cpp.Llama(model_path=str(gguf), n_threads=threads, n_ctx=1024, verbose=False)
    model(CONTINUE, max_tokens=4, temperature=0.0)
    tokens, seconds = timed(lambda: llama_cpp_tokens(model, [CONTINUE], new_tokens))
    row = {"new_tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 2)}
    if batch > 1:
        tokens, seconds = timed(lambda: llama_cpp_tokens(model, PROMPTS[:batch], new_tokens))
        row["batch"] = {"prompts": batch, "sequential": True, "new_tokens": tokens, "seconds": round(seconds, 2),
                        "tokens_per_s": round(tokens / seconds, 2)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("pretrained/SmolLM2-135M-Instruct"))
    parser.add_argument("--gguf", type=Path, default=None, help="The GGUF llama.cpp reads (its own file).")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", default=",".join(MODES),
                        help="kbuild export rows, comma-separated (none = float32, always measured: the reference)")
    parser.add_argument("--batch", type=int, default=1, choices=range(1, len(PROMPTS) + 1), metavar=f"1..{len(PROMPTS)}",
                        help="also measure N prompts at once (kbuild: one call of N rows; llama.cpp: one after another)")
    parser.add_argument("--no-keras-hub", action="store_true", help="skip keras_hub's own generate row")
    parser.add_argument("--tflite", default="",
                        help="TFLite export rows (`kbuild export --format tflite`), comma-separated: none, dynamic, float16")
    parser.add_argument("--alternate", type=int, default=0, metavar="ROUNDS",
                        help="then the last --tflite export and llama.cpp (--gguf) taking turns, ROUNDS times")
    args = parser.parse_args()
    modes = ("none", *(m for m in args.modes.split(",") if m and m != "none"))
    if unknown := set(modes) - set(MODES):
        parser.error(f"--modes: unknown {sorted(unknown)}; choose from {', '.join(MODES)}")
    start_tensorflow(args.threads)
    import tensorflow as tf

    from kbuild.pretrained.checkpoint import CAUSAL_LM, inspect
    from kbuild.pretrained.tokenizer import pretrained_tokenizer

    result: dict = {"checkpoint": str(args.checkpoint), "threads": args.threads,
                    "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        spec = chat_spec(args.checkpoint, folder)
        tokenizer = pretrained_tokenizer(spec, kind=CAUSAL_LM).fit([])
        ids = tokenizer.token_ids(tf.constant([FIXED_TEXT])).to_tensor().numpy()
        result["perplexity_tokens"] = int(ids.shape[1])
        for mode in modes:
            result[f"kbuild export {mode}"] = row = kbuild_export_row(spec, tokenizer, mode, folder, args.new_tokens, ids,
                                                                      args.batch)
            print(mode, json.dumps(row), flush=True)
        for mode in (m for m in args.tflite.split(",") if m):
            result[f"kbuild tflite {mode}"] = row = tflite_row(spec, tokenizer, mode, folder, args.new_tokens, ids,
                                                               args.threads, args.batch)
            print(f"tflite {mode}", json.dumps(row), flush=True)
        if args.alternate and args.tflite and args.gguf:
            last = [m for m in args.tflite.split(",") if m][-1]
            result[f"alternating, tflite {last} and llama.cpp"] = alternating_rows(
                folder / f"tflite-{last}" / "1", tokenizer, args.gguf, args.new_tokens, args.threads, args.batch,
                args.alternate)
        if not args.no_keras_hub:
            result["keras_hub generate (float32)"] = keras_hub_row(inspect(spec, CAUSAL_LM), args.new_tokens)
    result["llama.cpp"] = llama_cpp_row(args.gguf, args.new_tokens, args.threads, args.batch)
    reference = result["kbuild export none"]["perplexity"]
    result["perplexity_vs_float32"] = {name: round(row["perplexity"] / reference - 1, 5) for name, row in result.items()
                                       if isinstance(row, dict) and "perplexity" in row and name != "kbuild export none"}
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    OUT.mkdir(exist_ok=True)
    (OUT / f"llm_speed{'' if args.batch == 1 else f'_batch{args.batch}'}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
