"""What `kbuild generate` is asked for, matched with the run's task before anything is loaded:
`--prompt` continues text with a language model (or, for a chat run, is one user message the reply
answers); `--samples` and `--interpolate` decode
sentences from a vae's latent space. A mismatch is a usage error (exit 2) naming both sides."""

from __future__ import annotations

import os
from dataclasses import dataclass

from kbuild.generation.options import GenerationError
from kbuild.registry import Registry


@dataclass(frozen=True)
class RequestKind:
    option: str
    samplers: dict[str, str]
    """The tasks whose runs serve this request, each with its default sampler (a chat run decodes
    greedily, in the graph its export has)."""


REQUEST_KINDS: Registry[RequestKind] = Registry("generation request")
for _name, _kind in {
    "prompt": RequestKind("--prompt", {"language_model": "top_p", "chat": "greedy"}),
    "samples": RequestKind("--samples", {"vae": "greedy"}),
    "interpolate": RequestKind("--interpolate", {"vae": "greedy"}),
}.items():
    REQUEST_KINDS.register(_name)(_kind)


@dataclass(frozen=True)
class GenerationRequest:
    kind: str
    task: str
    default_sampler: str


def check_request(run: str | os.PathLike, *, prompt: str | None = None, samples: int | None = None,
                  interpolate: tuple[str, str] | None = None) -> GenerationRequest:
    """The one request among prompt / samples / interpolate, checked against the run's task and
    for values no model can serve (TensorFlow-free: it reads only the run's spec)."""
    given = {name: value for name, value in (("prompt", prompt), ("samples", samples), ("interpolate", interpolate))
             if value is not None}
    options = " / ".join(kind.option for kind in map(REQUEST_KINDS.get, REQUEST_KINDS.names()))
    if len(given) != 1:
        raise GenerationError(f"give exactly one of {options} (received {len(given)}): --prompt continues text "
                              "with a language_model run; --samples and --interpolate decode from a vae run")
    (name, value), = given.items()
    kind = REQUEST_KINDS.get(name)
    task = _run_task(run)
    if task not in kind.samplers:
        served = [k.option for k in map(REQUEST_KINDS.get, REQUEST_KINDS.names()) if task in k.samplers]
        hint = f"; a {task} run takes {' or '.join(served)}" if served else ""
        raise GenerationError(f"{kind.option} needs a {' run or a '.join(kind.samplers)} run; {run} is a {task} run{hint}")
    if name == "samples" and value < 1:
        raise GenerationError(f"Expected --samples >= 1; received {value}")
    if name == "interpolate" and not all(text.strip() for text in value):
        raise GenerationError("--interpolate needs two non-empty sentences, e.g. --interpolate \"a gorgeous film\" "
                              "\"a dull mess\"")
    return GenerationRequest(name, task, kind.samplers[task])


def _run_task(run: str | os.PathLike) -> str:
    from kbuild.runs import open_run
    from kbuild.tasks.checks import load_spec

    return load_spec(open_run(run).spec).task
