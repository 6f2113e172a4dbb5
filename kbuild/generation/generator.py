"""`Generator`: prompt text in, continued text out, from a trained language-model run.

Checks the prompt (empty, unknown characters, longer than the context), runs the sampler in
segments when the text outgrows a bounded context (keeping the latest half of the window), stops
at stop tokens, and decodes. TensorFlow compiles the decoding loop once per sampler (tf.function).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kbuild.data.tokenizers import UNK_ID
from kbuild.decoding.stepper import LanguageModelStepper
from kbuild.generation.options import GenerationError, GenerationOptions


@dataclass
class Generation:
    """One generated text. `notes` says what was changed about the request (a truncated prompt)."""

    prompt: str
    text: str
    """The prompt's continuation (without the prompt)."""
    tokens: int
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"prompt": self.prompt, "completion": self.text, "tokens": self.tokens, "notes": self.notes}


class Generator:
    """Args:
        model: the trained language model.
        spec: its spec.
        tokenizer: the run's fitted tokenizer.
    """

    def __init__(self, model: Any, spec: Any, tokenizer: Any):
        if spec.task != "language_model":
            raise GenerationError(f"generation needs a language_model run; this run's task is {spec.task}")
        self.spec, self.tokenizer = spec, tokenizer
        self.stepper = LanguageModelStepper(model, spec)
        self._compiled: dict[tuple, Any] = {}

    @property
    def context(self) -> int | None:
        return self.stepper.context

    def encode_prompt(self, prompt: str) -> tuple[list[int], list[str]]:
        """Prompt ids (left-truncated to the context) and notes; errors for an empty prompt or
        tokens outside the vocabulary."""
        import tensorflow as tf

        if not prompt:
            raise GenerationError("the prompt is empty; give some text to continue (e.g. --prompt \"ROMEO:\")")
        ids = self.tokenizer.token_ids(tf.constant([prompt]))[0].numpy().tolist()
        if not ids:
            raise GenerationError(f"the prompt {prompt!r} has no tokens after tokenisation (only spaces?)")
        if UNK_ID in ids:
            unknown = sorted(set(self.tokenizer.unknown_tokens(prompt)))
            raise GenerationError(
                f"the prompt has {len(unknown)} token(s) the model never saw in training: "
                f"{', '.join(repr(t) for t in unknown[:20])}; remove or replace them"
            )
        notes = []
        if self.context is not None and len(ids) > self.context - 1:
            keep = self.context - 1
            notes.append(f"the prompt has {len(ids)} tokens but the model's context is {self.context}: "
                         f"kept its last {keep} tokens")
            ids = ids[-keep:]
        return ids, notes

    def stop_ids(self, stop: tuple[str, ...]) -> tuple[int, ...]:
        import tensorflow as tf

        ids = []
        for text in stop:
            token = self.tokenizer.token_ids(tf.constant([text]))[0].numpy().tolist() if text else []
            if len(token) != 1 or token[0] == UNK_ID:
                raise GenerationError(f"stop text {text!r} is not a single token of the vocabulary "
                                      f"(it tokenises to {len(token)} tokens)")
            ids.append(token[0])
        return tuple(ids)

    def generate(self, prompt: str, options: GenerationOptions) -> Generation:
        """Continue `prompt` by up to `options.max_new_tokens` tokens."""
        import keras

        ids, notes = self.encode_prompt(prompt)
        stop = self.stop_ids(options.stop)
        if options.seed is not None:
            keras.utils.set_random_seed(options.seed)
        decode = self._decoder(options, stop)
        tokens, new = list(ids), []
        while len(new) < options.max_new_tokens:
            window = tokens
            if self.context is not None and len(window) >= self.context:
                # Slide: keep the latest half of the context and re-read it into a fresh cache.
                window = tokens[-(self.context // 2):]
            room = options.max_new_tokens - len(new)
            if self.context is not None:
                room = min(room, self.context - len(window))
            produced = self._run(decode, window, room)
            ended = next((i for i, t in enumerate(produced) if t in stop), None)
            if ended is not None:
                produced = produced[: ended + 1]
            tokens += produced
            new += produced
            if ended is not None or len(produced) < room:
                break
        return Generation(prompt, self.completion_text(ids, new), len(new), notes)

    def completion_text(self, prompt_ids: list[int], new: list[int]) -> str:
        """The text `new` adds to the prompt: decoded together with the prompt, so word tokens get
        their separating space and `##` pieces attach to the prompt's last word."""
        full, head = self.tokenizer.decode(prompt_ids + new), self.tokenizer.decode(prompt_ids)
        return full[len(head):] if full.startswith(head) else self.tokenizer.decode(new)

    def _run(self, decode: Any, window: list[int], room: int) -> list[int]:
        buffer = np.zeros((1, len(window) + room), np.int32)
        buffer[0, : len(window)] = window
        mask = np.zeros_like(buffer, bool)
        mask[0, : len(window)] = True
        out = np.asarray(decode(buffer, mask, np.int32(len(window))))[0]
        produced = out[len(window):].tolist()
        # A sampler that stopped early leaves padding (0) after its stop token.
        return [t for t in produced if t != 0] if 0 in produced else produced

    def _decoder(self, options: GenerationOptions, stop: tuple[int, ...]) -> Any:
        key = (options.sampler, options.temperature, options.top_k, options.top_p, options.num_beams,
               options.seed, stop, options.use_cache, options.jit_compile)
        if key not in self._compiled:
            sampler = options.build_sampler()
            stepper, use_cache = self.stepper, options.use_cache

            def decode(ids, mask, start):
                return stepper.decode(sampler, ids, mask, start, stop or None, use_cache)

            seeds = getattr(sampler, "seed_generator", None)
            self._compiled[key] = (_compile(decode, options.jit_compile), seeds, None if seeds is None else seeds.state.numpy())
        decode, seeds, first_state = self._compiled[key]
        if seeds is not None:
            # Each request starts from the seed's first state: same seed, same text, every call.
            seeds.state.assign(first_state)
        return decode


def _compile(function: Any, jit_compile: bool) -> Any:
    """One graph for the whole sampling loop under TensorFlow (eager would dispatch op by op)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return function
    import tensorflow as tf

    # XLA fuses each decoding step's many small ops: per-token overhead, not arithmetic,
    # dominates batch-1 generation on a CPU. One compile per buffer length (cached).
    return tf.function(function, jit_compile=jit_compile, input_signature=[
        tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.bool), tf.TensorSpec([], tf.int32),
    ], reduce_retracing=True)


def load_generator(run: str | os.PathLike, quantize: str = "none") -> Any:
    """A `Generator` over the best model of a trained language-model run folder (a
    `CausalLmGenerator` for one continued from a checkpoint), its weights quantised as `quantize`
    (`kbuild.layers.quantization`: none, int8 or int4)."""
    from kbuild.layers.quantization import check_mode, quantize_weights
    from kbuild.runs import load_run_for

    check_mode(quantize)
    loaded = load_run_for(run, "language_model", "generation", GenerationError)
    quantize_weights(loaded.model, quantize)
    return generator_for(loaded.model, loaded.spec, loaded.assets.tokenizer)


def generator_for(model: Any, spec: Any, tokenizer: Any) -> Any:
    """The generator of a language model: `Generator` for kbuild's own, `CausalLmGenerator` for one
    continued from a checkpoint (`model.backbone`); both `generate(prompt, options)`."""
    if spec.model.backbone is not None:
        from kbuild.generation.causal_generator import CausalLmGenerator

        return CausalLmGenerator(model, spec, tokenizer)
    return Generator(model, spec, tokenizer)


def generate(run: str | os.PathLike, prompt: str, options: GenerationOptions | None = None,
             quantize: str = "none") -> Generation:
    """Continue `prompt` with the language model of `run` (API twin of `kbuild generate`)."""
    result = load_generator(run, quantize).generate(prompt, options or GenerationOptions())
    for note in result.notes:
        print(f"[kbuild] note: {note}", file=sys.stderr)
    return result
