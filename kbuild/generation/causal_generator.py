"""`kbuild generate` on a language model continued from a checkpoint (keras_hub's `CausalLM`):
the prompt is read with the checkpoint's tokenizer and continued one compiled cache step per token
(`kbuild.decoding.causal_lm.decoded_pieces`, the tokens the export's in-graph greedy loop gives),
greedy or sampled, until `max_new_tokens`, a `--stop` token or the checkpoint's end token."""

from __future__ import annotations

from typing import Any

from kbuild.generation.generator import Generation
from kbuild.generation.options import GenerationError, GenerationOptions


class CausalLmGenerator:
    """Args:
        model: the trained `CausalLM`.
        spec: its spec (`preprocess.max_length` sets the least context).
        tokenizer: the checkpoint's tokenizer (`kbuild.pretrained.tokenizer`).
    """

    def __init__(self, model: Any, spec: Any, tokenizer: Any):
        from kbuild.tasks.causal_lm import serving_context

        self.model, self.spec, self.tokenizer = model, spec, tokenizer
        self.context = serving_context(spec)

    def stop_ids(self, stop: tuple[str, ...]) -> tuple[int, ...]:
        """The ids of the `--stop` texts (each one token of the checkpoint's vocabulary) and its end token."""
        import tensorflow as tf

        ids = set() if self.tokenizer.end_id is None else {int(self.tokenizer.end_id)}
        for text in stop:
            tokens = self.tokenizer.token_ids(tf.constant([text])).to_list()[0] if text else []
            if len(tokens) != 1:
                raise GenerationError(f"stop text {text!r} is not a single token of the checkpoint's vocabulary "
                                      f"(it tokenises to {len(tokens)} tokens)")
            ids.add(int(tokens[0]))
        return tuple(sorted(ids))

    def generate(self, prompt: str, options: GenerationOptions) -> Generation:
        """Continue `prompt` by up to `options.max_new_tokens` tokens."""
        import tensorflow as tf

        from kbuild.decoding.causal_lm import decoded_pieces, pick_for

        if options.sampler == "beam":
            raise GenerationError("a language model from a checkpoint decodes greedy, top_k or top_p; beam search is "
                                  "for kbuild's own models")
        if not prompt:
            raise GenerationError("the prompt is empty; give some text to continue (e.g. --prompt \"ROMEO:\")")
        length = len(self.tokenizer.token_ids(tf.constant([prompt])).to_list()[0])
        new = min(options.max_new_tokens, self.context - 1)
        notes = []
        if new < options.max_new_tokens:
            notes.append(f"the model's cache holds {self.context} tokens: generated at most {new}")
        if length > self.context - new:
            notes.append(f"the prompt has {length} tokens and the cache {self.context}: kept its last "
                         f"{self.context - new}")
        if not options.use_cache:
            notes.append("--no-cache applies to kbuild's own models; a checkpoint's decodes with its cache")
        stops = self.stop_ids(options.stop)
        choose = pick_for(options.sampler, options.temperature, options.top_k, options.top_p, options.seed)
        picked: list[int] = []

        def pick(logits: Any) -> int:
            picked.append(choose(logits))
            return picked[-1]

        text = "".join(decoded_pieces(self.model, self.tokenizer, prompt, new, stops, self.context, pick))
        return Generation(prompt, text, len([token for token in picked if token not in stops]), notes)
