"""The `kbuild` command: parse, call the public API, print, choose the exit code.

Exit codes: 0 success, 1 run-time or data failure, 2 usage or spec error, 130 interrupted.
TensorFlow is imported only by the commands that need it, so `--help`, `validate`, `schema` and
`init` answer instantly.
"""

from __future__ import annotations

import json
import os
import re
import sys

import click

from kbuild import __version__
from kbuild.errors import KbuildError
from kbuild.failures import describe_failure

_SET_HELP = "Override a spec key, e.g. --set train.epochs=1 (value parsed as YAML). Repeatable."


class _TrainSample(click.ParamType):
    """A positive row count or `all` (`eval.train_sample`'s values)."""

    name = "N|all"

    def convert(self, value, param, ctx):
        if value == "all" or isinstance(value, int):
            return value
        if str(value).isdigit() and int(value) > 0:
            return int(value)
        self.fail(f"{value!r} is neither a positive number of rows nor 'all'", param, ctx)


_quantize_run_option = click.option(
    # The names of kbuild.layers.quantization's modes, written out: importing it loads Keras, and
    # `--help` must not (tests/test_quantized_generation.py checks they agree).
    "--quantize", default="none", show_default=True, type=click.Choice(["none", "int8", "int4"]),
    help="Quantise the run's weights first, as `kbuild export --quantize` does (int8, or weight-only int4).")


class _Group(click.Group):
    """Turns library errors into one-line messages and exit codes (tracebacks only with --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KbuildError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}" if exc.exit_code != 2 else str(exc), err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # a bug or an environment failure: one line unless --debug
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {describe_failure(exc)} (run `kbuild --debug ...` for the traceback)", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kbuild")
@click.option("--debug", is_flag=True, help="Show full tracebacks and TensorFlow logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """kbuild: declarative text models on Keras. A YAML spec in, a trained SavedModel out."""
    ctx.obj = {"debug": debug}
    if not debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _tensorflow(before_start=None) -> None:
    """Import TensorFlow for the commands that need it, hiding its native start-up noise."""
    from kbuild.runtime import init_tensorflow

    debug = bool(click.get_current_context().find_root().obj.get("debug"))
    init_tensorflow(debug=debug, before_start=before_start)


def _load(spec_path: str, overrides: tuple[str, ...]):
    from kbuild.tasks.checks import load_spec

    return load_spec(spec_path, overrides)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
def validate(spec: str, overrides: tuple[str, ...]) -> None:
    """Check SPEC without building anything; list every problem as FILE:LINE:COL: key: message."""
    loaded = _load(spec, overrides)
    click.echo(f"ok: {spec} ({loaded.task}, name {loaded.name})")


@cli.command()
def schema() -> None:
    """Print the JSON Schema of a spec (point your editor's YAML plugin at it)."""
    from kbuild.spec import Spec
    from kbuild.tasks import TASKS

    schema = Spec.model_json_schema()
    # The spec layer knows no task; the registry's names make `task` an enum for editors.
    schema["properties"]["task"]["enum"] = list(TASKS.names())
    click.echo(json.dumps(schema, indent=2))


@cli.command()
@click.argument("task")
def init(task: str) -> None:
    """Print a commented starter spec for TASK (e.g. classification)."""
    from kbuild.spec.templates import starter_spec

    click.echo(starter_spec(task), nl=False)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
def summary(spec: str, overrides: tuple[str, ...]) -> None:
    """Build the model of SPEC (vocabulary from the train split) and print its layers."""
    _tensorflow()
    from kbuild.tasks.compose import summarize

    click.echo(summarize(_load(spec, overrides)))


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("--run-dir", type=click.Path(file_okay=False), help="Run folder (default runs/NAME/STAMP).")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir (or the latest run) from its checkpoint.")
def train(spec: str, overrides: tuple[str, ...], run_dir: str | None, resume: bool) -> None:
    """Train SPEC; write the run folder; print final metrics."""
    loaded = _load(spec, overrides)
    from kbuild.training.strategy import prepare_devices

    _tensorflow(before_start=lambda: prepare_devices(loaded.train))
    from kbuild.training import train as train_spec

    run = train_spec(loaded, run_dir=run_dir, resume=resume)
    click.echo(f"run folder: {run.path}")
    click.echo(_metrics_table(run.results["metrics"]))


@cli.command()
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Local worker processes sharing the study (each trains one trial at a time).")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False),
              help="Continue the search in this folder (interrupted trials run again).")
@click.option("--show", "show_dir", type=click.Path(exists=True, file_okay=False),
              help="Print the trials table, best trial and importances of this search folder.")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Search folder (default runs/NAME/search-STAMP).")
def tune(spec: str | None, overrides: tuple[str, ...], workers: int, resume_dir: str | None, show_dir: str | None,
         run_dir: str | None) -> None:
    """Hyperparameter search over SPEC's `search:` section: one run folder per trial under
    runs/NAME/search-STAMP/, then trials.csv, trials.md, importances.json and best.yaml there."""
    given = [name for name, value in (("SPEC", spec), ("--resume", resume_dir), ("--show", show_dir)) if value]
    if len(given) != 1:
        raise click.UsageError("give exactly one of SPEC, --resume DIR or --show DIR")
    if (overrides or run_dir) and not spec:
        raise click.UsageError("--set and --run-dir apply to a new search (SPEC) only")
    from kbuild.search.output import markdown
    from kbuild.search.runner import resume_search, show_search, start_search

    if show_dir:
        click.echo(markdown(show_search(show_dir)), nl=False)
        return
    folder, summary = resume_search(resume_dir, workers) if resume_dir else start_search(spec, overrides, run_dir, workers)
    click.echo(markdown(summary), nl=False)
    click.echo(f"search folder: {folder.path}")
    if summary.best is not None:
        click.echo(f"retrain the best: kbuild train {folder.path / 'best.yaml'}")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--workers", type=click.IntRange(min=1), required=True, help="Local worker processes.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("--run-dir", type=click.Path(file_okay=False), help="The chief's run folder (default runs/NAME/STAMP).")
@click.option("--timeout", "timeout_s", type=float, help="Stop every worker and fail after this many seconds.")
def launch(spec: str, workers: int, overrides: tuple[str, ...], run_dir: str | None, timeout_s: float | None) -> None:
    """Train SPEC with multi_worker strategy as WORKERS local processes on 127.0.0.1 (worker 0 is
    the chief and writes the run folder)."""
    _load(spec, overrides)  # every spec error now, once, rather than once per worker
    from kbuild.training.launch import launch as launch_workers

    debug = bool(click.get_current_context().find_root().obj.get("debug"))
    launch_workers(spec, workers, overrides, run_dir, timeout_s, debug=debug)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("--steps", default=30, show_default=True, type=click.IntRange(1), help="Timed steps per configuration.")
@click.option("--warmup", default=5, show_default=True, type=click.IntRange(1),
              help="Untimed steps first (the first one traces and compiles).")
@click.option("--configs", "config_texts", multiple=True, metavar="CONFIG",
              help="STRATEGY[:DEVICES]/PRECISION/jit|nojit|autojit[/speN], e.g. cpu/mixed_bfloat16/jit or "
                   "mirrored:2/float32/nojit; comma-separated or repeated (default: a matrix for this machine).")
@click.option("--in-process", is_flag=True,
              help="Run configurations in this process (faster start; RSS peak is then the process's, not each one's).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Also write the JSON report to this file.")
def bench(spec: str, overrides: tuple[str, ...], steps: int, warmup: int, config_texts: tuple[str, ...],
          in_process: bool, as_json: bool, out_path: str | None) -> None:
    """Time SPEC's training step under several strategy / precision / XLA settings, and its input
    pipeline alone; print samples/s, ms/step and peak memory per configuration."""
    _load(spec, overrides)  # spec errors exit 2 before anything starts
    from kbuild.benchmark import BenchOptions, format_report, parse_configs, run_bench

    configs = parse_configs(config_texts)
    _tensorflow()

    def progress(index: int, total: int, row) -> None:
        result = f"{row.samples_per_s:,.1f} samples/s" if row.ok else f"error: {row.error}"
        click.echo(f"[kbuild] bench {index}/{total} {row.config}: {result}", err=True)

    options = BenchOptions(steps=steps, warmup=warmup, isolate=not in_process)
    report = run_bench(spec, overrides, configs, options, on_row=progress)
    if out_path:
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
        with open(out_path, "w", encoding="utf-8") as out:
            json.dump(report.to_dict(), out, indent=2)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else format_report(report))


@cli.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--split", default="valid", show_default=True, help="train, valid or test.")
@click.option("--data", "data_file", type=click.Path(dir_okay=False), help="Evaluate on this file instead.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--train-sample", type=_TrainSample(), default=None, metavar="N|all",
              help="Train rows to score (a seeded sample); default the run's eval.train_sample; all: every row.")
def evaluate(run: str, split: str, data_file: str | None, as_json: bool, train_sample: int | str | None) -> None:
    """Metrics of the trained model in RUN on one split (or a file of labelled rows)."""
    _tensorflow()
    from kbuild.compression import run_summary
    from kbuild.evaluation import evaluate as evaluate_run
    from kbuild.runs import open_run

    metrics = evaluate_run(run, split=split, data_file=data_file, train_sample=train_sample)
    compressed = run_summary(open_run(run).read_results(), split)  # pruned / distilled runs: sparsity, retention
    click.echo(json.dumps({**metrics, **compressed}, indent=2) if as_json else _metrics_table({split: metrics}))
    if "scored_rows" in metrics and not as_json:
        rows = metrics["scored_rows"]
        click.echo(f"({split}: a seeded sample of {rows['rows']:,} of {rows['of']:,} rows; --train-sample all "
                   "scores every row)")
    if compressed and not as_json:
        for key in ("sparsity", "nonzero_parameters", "teacher", "retention"):
            if key in compressed:
                click.echo(f"{key}: {compressed[key]}")


@cli.command()
@click.argument("model_dir", metavar="RUN_OR_EXPORT", type=click.Path(exists=True, file_okay=False))
@click.option("--input", "input_path", default="-", show_default=True,
              help="Rows to predict: a file, a pipe or a FIFO; - for stdin. Read as it streams, never twice.")
@click.option("--format", "fmt", type=click.Choice(["auto", "text", "jsonl", "csv", "tsv"]), default="auto",
              show_default=True, help="text: one example per line (one-input models); jsonl: one object per line "
              "with a field per model input (text, text_pair, ...); csv/tsv: a header naming them. auto: by the "
              "file's extension, else JSON lines when the first row is an object, else text.")
@click.option("--output", "output_path", default="-", show_default=True, help="JSON lines file; - for stdout.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="A row that cannot be read (bad UTF-8 or JSON, a missing field, over --max-row-bytes): stop "
                   "naming its line, after every row before it is written; or skip it and count it.")
@click.option("--max-row-bytes", default=1 << 20, show_default=True, type=click.IntRange(1),
              help="The longest row read; a longer one is a bad row (a file without line breaks never fills memory).")
@click.option("--progress/--no-progress", default=None,
              help="Rows done, on stderr (default: when stderr is a terminal).")
@click.option("--explain", is_flag=True, help="Add each token's attention weight (attention pooling, or the last Transformer layer's attention).")
def predict(model_dir: str, input_path: str, fmt: str, output_path: str, batch_size: int, on_error: str,
            max_row_bytes: int, progress: bool | None, explain: bool) -> None:
    """Predict for each input row; write one JSON object per row, streaming in batches."""
    _tensorflow()
    from kbuild.prediction import load_predictor, write_predictions
    from kbuild.prediction.rows import read_rows
    from kbuild.progress import Progress

    predictor = load_predictor(model_dir)
    name = "<stdin>" if input_path == "-" else input_path
    if progress is None:
        progress = sys.stderr.isatty()
    with click.open_file(input_path, "rb") as stream, click.open_file(output_path, "w", encoding="utf-8") as out:
        rows = read_rows(stream, predictor.inputs, fmt, name, max_row_bytes)
        count = write_predictions(predictor, rows, out, batch_size, Progress(None) if progress else None,
                                  explain=explain, on_error=on_error, source=name)
    if count.skipped:
        first = count.first_skipped
        click.echo(f"skipped {count.skipped} bad row(s); the first, at {name}:{first.line}: {first.message}", err=True)


@cli.command()
@click.argument("model_dir", metavar="RUN_OR_EXPORT", type=click.Path(exists=True, file_okay=False))
@click.option("--system", default=None, help="A system message first in the conversation (default: the spec's "
              "preprocess.chat.system, else the template's own).")
@click.option("--max-new-tokens", type=click.IntRange(1), default=None,
              help="The most tokens of a reply (default: the spec's preprocess.chat.max_new_tokens).")
@click.option("--sampler", type=click.Choice(["greedy", "top_k", "top_p"]), default="greedy", show_default=True,
              help="A run or a TFLite export: draw each token from the top_k most likely, or from the smallest set "
                   "holding top_p.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Logits are divided by it before a draw (< 1 sharpens).")
@click.option("--top-k", type=click.IntRange(1), default=10, show_default=True, help="Candidates of top_k.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=0.9, show_default=True,
              help="Probability mass of top_p.")
@click.option("--seed", type=int, default=None, help="Seed of the draws: the same seed, the same replies.")
@_quantize_run_option
def chat(model_dir: str, system: str | None, max_new_tokens: int | None, sampler: str, temperature: float,
         top_k: int, top_p: float, seed: int | None, quantize: str) -> None:
    """Talk to a chat run or export: each line on stdin is a message, each reply a line on stdout
    (a run's shown as it is decoded); the conversation is kept. /reset forgets it, /exit (or end
    of input) ends it."""
    _tensorflow()
    from kbuild.generation.chat import converse, open_chat

    pick = None
    if sampler != "greedy":
        from kbuild.decoding.causal_lm import pick_for

        pick = pick_for(sampler, temperature, top_k, top_p, seed)
    session = open_chat(model_dir, system, max_new_tokens, quantize, pick)
    if sys.stdin.isatty():
        click.echo("(a message per line; /reset forgets the conversation, /exit ends it)", err=True)

    def piece(text: str) -> None:
        click.echo(text, nl=False)
        sys.stdout.flush()

    converse(session, sys.stdin, click.echo, piece if session.stream else None)


@cli.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Model folder; the export becomes its next numbered version (default RUN/export).")
@click.option("--format", "fmt", default="savedmodel", show_default=True,
              help="An export format: savedmodel or tflite (kbuild.exporter.formats lists the registered ones).")
@click.option("--quantize", default="none", show_default=True,
              help="What the format takes; savedmodel: int8 or int4 (Keras model.quantize of Dense, EinsumDense "
                   "and Embedding weights, int4 weight-only, a causal LM's generation graph included; LSTM/GRU stay "
                   "float); "
                   "tflite: dynamic (dynamic-range), float16, or int8 calibrated "
                   "on train-split examples (a chat model: dynamic or float16, its steps run by TFLite's CPU kernels).")
def export(run: str, out_dir: str | None, fmt: str, quantize: str) -> None:
    """Export the trained model in RUN as OUT/<version>/: a SavedModel that serves raw strings, or
    a TFLite model with its tokenizer as a pre-processing asset."""
    _tensorflow()
    from kbuild.exporter import export as export_run

    path = export_run(run, out_dir, fmt=fmt, quantize=quantize)
    click.echo(f"exported: {path}")


@cli.command()
@click.argument("export_root", metavar="EXPORT", type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 exposes the server to the network.")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(0, 65535))
@click.option("--batching/--no-batching", default=True, show_default=True, help="Merge concurrent requests into one model call.")
@click.option("--max-batch-size", default=64, show_default=True, type=click.IntRange(1), help="Instances per model call (and per request).")
@click.option("--max-wait-ms", default=5.0, show_default=True, type=click.FloatRange(0), help="How long a batch waits to fill.")
@click.option("--max-body-bytes", default=4 * 2**20, show_default=True, type=click.IntRange(1), help="Larger bodies get 413.")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1), help="Worker threads running models.")
@click.option("--file-system-poll-wait-seconds", "poll_s", default=1.0, show_default=True, type=click.FloatRange(0),
              help="How often EXPORT is checked for new versions (TF Serving's flag); 0: only the versions found at start.")
@click.option("--model-version-policy", "policy", type=click.Choice(["latest", "all"]), default="all", show_default=True,
              help="Serve only the newest complete version of each model, or every one (TF Serving's policies).")
def serve(export_root: str, host: str, port: int, batching: bool, max_batch_size: int, max_wait_ms: float,
          max_body_bytes: int, threads: int, poll_s: float, policy: str) -> None:
    """Serve every model under EXPORT over TF Serving's REST API (/v1/models/NAME:predict); new
    versions exported there while it runs are picked up without a restart."""
    _tensorflow()
    import uvicorn

    from kbuild.serve import ServerSettings, create_app, load_repository

    repository = load_repository(export_root, policy)
    settings = ServerSettings(batching=batching, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                              max_body_bytes=max_body_bytes, threads=threads, poll_s=poll_s)
    for name, found in sorted(repository.models.items()):
        click.echo(f"serving {name} (versions {', '.join(map(str, sorted(found)))}) "
                   f"at http://{host}:{port}/v1/models/{name}", err=True)
    uvicorn.run(create_app(repository, settings, report=lambda line: click.echo(line, err=True)),
                host=host, port=port, log_level="warning")


@cli.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--prompt", help="language_model: text to continue (\\n stands for a line break); chat: a user "
              "message to answer (wrapped by the spec's preprocess.chat.prompt_template).")
@click.option("--samples", type=int, help="vae: decode this many codes drawn from the prior N(0, I).")
@click.option("--interpolate", nargs=2, metavar="A B", help="vae: decode points between two sentences' codes.")
@click.option("--steps", default=5, show_default=True, help="vae: points strictly between A and B (--interpolate).")
@click.option("--max-new-tokens", default=200, show_default=True, help="Tokens to add (1..100000).")
@click.option("--sampler", default=None, help="greedy, top_k, top_p or beam [default: top_p for a language model, "
                                              "greedy for a vae].")
@click.option("--temperature", default=1.0, show_default=True)
@click.option("--top-k", default=10, show_default=True, help="Candidates kept by top_k.")
@click.option("--top-p", default=0.9, show_default=True, help="Probability mass kept by top_p.")
@click.option("--num-beams", default=4, show_default=True, help="Beams of the beam sampler.")
@click.option("--seed", type=int, default=None, help="Seed of the sampler and of vae codes (same seed, same text).")
@click.option("--stop", multiple=True, help="A token that ends generation (e.g. \\n). Repeatable.")
@click.option("--no-cache", is_flag=True, help="Re-run the whole window per token (for comparison).")
@click.option("--no-jit", is_flag=True, help="Skip XLA compilation (slower tokens, faster start).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (prompt, completion, tokens, notes; vae: texts, notes).")
@_quantize_run_option
def generate(run: str, prompt: str | None, samples: int | None, interpolate: tuple[str, str] | None, steps: int,
             max_new_tokens: int, sampler: str | None, temperature: float, top_k: int, top_p: float, num_beams: int,
             seed: int | None, stop: tuple[str, ...], no_cache: bool, no_jit: bool, as_json: bool,
             quantize: str) -> None:
    """Continue --prompt with the language model trained in RUN (a chat run answers it); or, for a vae run, decode
    --samples N sentences from the prior or --interpolate between two sentences."""
    from kbuild.generation.options import GenerationOptions
    from kbuild.generation.requests import check_request

    request = check_request(run, prompt=prompt, samples=samples, interpolate=interpolate)
    options = GenerationOptions(
        max_new_tokens=max_new_tokens, sampler=sampler or request.default_sampler, temperature=temperature,
        top_k=top_k, top_p=top_p, num_beams=num_beams, seed=seed, stop=tuple(_unescape(s) for s in stop),
        use_cache=not no_cache, jit_compile=not no_jit,
    )
    _tensorflow()
    if request.task == "vae":
        from kbuild.generation.options import GenerationError
        from kbuild.generation.vae_generator import load_vae_generator

        if quantize != "none":
            raise GenerationError("--quantize applies to language_model and chat runs; a vae's decoder stays float")
        generator = load_vae_generator(run)
        texts = (generator.sample(samples, options) if request.kind == "samples"
                 else generator.interpolate(*interpolate, steps, options))
        for note in texts.notes:
            click.echo(f"note: {note}", err=True)
        click.echo(json.dumps(texts.as_dict(), ensure_ascii=False) if as_json else "\n".join(texts.texts))
        return
    if request.task == "chat":
        from kbuild.generation.chat import chat_generation

        result = chat_generation(run, _unescape(prompt), options, quantize)
    else:
        from kbuild.generation.generator import load_generator

        result = load_generator(run, quantize).generate(_unescape(prompt), options)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    # A chat reply answers the prompt rather than continuing it: printed alone.
    shown = result.text if request.task == "chat" else result.prompt + result.text
    click.echo(json.dumps(result.as_dict(), ensure_ascii=False) if as_json else shown)


@cli.command()
@click.argument("runs", metavar="RUN...", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_path", type=click.Path(dir_okay=False),
              help="HTML file to write (default RUN/report.html; required for several runs).")
@click.option("--max-examples", default=5000, show_default=True, type=click.IntRange(1),
              help="Predict on at most this many examples of the split (cached in RUN/cache/report/).")
def report(runs: tuple[str, ...], out_path: str | None, max_examples: int) -> None:
    """One self-contained HTML page for a run folder, a comparison of several runs, or a search
    folder: curves, metrics, confusion, calibration, mistakes, entities, attention."""
    _tensorflow()
    from kbuild.report import ReportOptions, build_report

    written = build_report(list(runs), out_path, ReportOptions(max_examples=max_examples))
    click.echo(f"report: {written.path} ({written.bytes / 1024:,.0f} KiB, {written.seconds:.1f} s)")


def _unescape(text: str) -> str:
    """Shell-friendly escapes: `\\n` is a line break, `\\t` a tab, `\\\\` a backslash."""
    replacements = {"\\\\": "\\", "\\n": "\n", "\\t": "\t"}
    return re.sub(r"\\[\\nt]", lambda m: replacements[m.group(0)], text)


def _metrics_table(results: dict[str, dict[str, float]]) -> str:
    # Nested breakdowns (a tagger's per-type scores) are in results.json and --json, not the table.
    names = sorted({name for metrics in results.values() for name, value in metrics.items() if not isinstance(value, dict)})
    width = max([len(n) for n in names] + [6])
    lines = ["split".ljust(8) + "".join(n.rjust(width + 2) for n in names)]
    for split, metrics in results.items():
        cells = "".join(_cell(metrics.get(n)).rjust(width + 2) for n in names)
        lines.append(split.ljust(8) + cells)
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    if not isinstance(value, float):
        return str(value)
    # Fixed decimals for ordinary metrics; a diverged loss (1e29) must not widen the table.
    return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.3g}"


def main() -> None:
    # standalone_mode handles click's own usage errors (exit 2); ours exit via ctx.exit above.
    cli(prog_name="kbuild")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
