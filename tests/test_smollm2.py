"""The real SmolLM2-135M-Instruct as `make pretrained` converts it (slow; skipped without the folder),
and the chat template renderer on the tiny converted llama (fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gguf")

from kbuild.pretrained.chat_template import ChatTemplate  # noqa: E402
from kbuild.pretrained.checkpoint import read_folder  # noqa: E402
from kbuild.pretrained.gguf import convert  # noqa: E402
from tests.llama_fixtures import write_tiny_gguf  # noqa: E402

SMOLLM2 = Path(__file__).resolve().parent.parent / "pretrained" / "SmolLM2-135M-Instruct"


def test_chat_template_renders_the_conversation_as_chatml(tmp_path):
    write_tiny_gguf(tmp_path / "tiny.gguf")
    template = ChatTemplate.from_folder(convert(tmp_path / "tiny.gguf", tmp_path / "tiny").folder)
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Bye"}]
    assert template.render(messages) == ("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
                                         "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n")
    assert template.render(messages[:1], add_generation_prompt=False) == "<|im_start|>user\nHi<|im_end|>\n"


def test_chat_template_runs_sandboxed():
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError):
        ChatTemplate("{{ messages.append({'role': 'x'}) }}").render([])
    with pytest.raises(SecurityError):
        ChatTemplate("{{ ''.__class__.__mro__[1].__subclasses__() }}").render([])


@pytest.mark.slow
def test_smollm2_answers_the_capital_of_france_greedily():
    if not SMOLLM2.is_dir():
        pytest.skip(f"no {SMOLLM2}: run `make pretrained`")
    from kbuild.pretrained.causal_lm import load_causal_lm

    checkpoint = read_folder(SMOLLM2)
    model = load_causal_lm(checkpoint)
    assert type(model).__name__ == "Llama3CausalLM" and model.count_params() == 134_515_008
    model.compile(sampler="greedy")
    prompt = ChatTemplate.from_folder(SMOLLM2).render(
        [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}])
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    ids = np.asarray(model.preprocessor.tokenizer(prompt))
    assert ids[0] == 1 and (ids == 1).sum() == 3  # one <|im_start|> per turn: no start token added twice
    answer = model.generate(prompt, max_length=len(ids) + 32, strip_prompt=True)
    assert answer.strip() == "The capital of France is Paris."


FACTS = {"What is the capital of France? Answer in one sentence.": "Paris",
         "What is the capital of Japan? Answer in one sentence.": "Tokyo",
         "Who wrote Romeo and Juliet? Answer in one sentence.": "Shakespeare"}


def _greedy_answers(mode: str) -> list[str]:
    """SmolLM2's greedy answers to FACTS through the export's decoding graph, its weights quantised as `mode`."""
    import keras_hub
    import tensorflow as tf

    from kbuild.decoding.causal_lm import continue_in_graph
    from kbuild.layers.quantization import quantize_weights
    from kbuild.pretrained.causal_lm import load_causal_lm
    from kbuild.pretrained.tokenizer import CausalLMTokenizer
    from kbuild.spec.preprocess import WordPieceTokenizerSpec

    checkpoint = read_folder(SMOLLM2)
    tokenizer = CausalLMTokenizer(WordPieceTokenizerSpec(), 1024, locate=lambda: checkpoint).fit([])
    model = load_causal_lm(checkpoint)
    quantize_weights(model, mode)
    template = ChatTemplate.from_folder(SMOLLM2)
    prompts = [template.render([{"role": "user", "content": question}]) for question in FACTS]
    stop = (int(tokenizer.token_ids(tf.constant(["<|im_end|>"])).to_list()[0][0]),)
    sampler = keras_hub.samplers.GreedySampler()
    answer = tf.function(lambda texts: continue_in_graph(model, tokenizer, sampler, texts, tf.constant(32), stop, 1024))
    out = answer(tf.constant(prompts))
    return [answer.decode().strip() for answer in out.numpy()]


@pytest.mark.slow
def test_quantised_smollm2_gives_float32s_answers_to_factual_questions():
    if not SMOLLM2.is_dir():
        pytest.skip(f"no {SMOLLM2}: run `make pretrained`")
    reference = _greedy_answers("none")
    assert all(fact in answer for fact, answer in zip(FACTS.values(), reference, strict=True)), reference
    # int8 quantises activations too (Keras's default): the short answers stay word for word, a
    # long one may change its wording (measured: "came from" for "was likely inspired by" in the
    # Shakespeare answer) but not its fact; int4 is weight-only and coarser.
    int8 = _greedy_answers("int8")
    assert int8[:2] == reference[:2], int8
    for answers in (int8, _greedy_answers("int4")):
        assert all(fact in answer for fact, answer in zip(FACTS.values(), answers, strict=True)), answers


@pytest.mark.slow  # converts SmolLM2 to TFLite twice: about 3 minutes each on 2 quiet cores
def test_smollm2s_tflite_int8_export_keeps_float32s_perplexity_and_answers(tmp_path):
    """Perplexity on benchmarks/llm_speed.py's fixed text (139 tokens), where the quantised exports
    are measured. On a much shorter, repetitive text (the FACTS questions and answers, 3 times:
    perplexity 2.9) int8 differs by 3.4 %: over so few tokens the difference is noise of either
    sign (RESULTS.md, Session 32)."""
    if not SMOLLM2.is_dir():
        pytest.skip(f"no {SMOLLM2}: run `make pretrained`")
    import json

    import tensorflow as tf

    from benchmarks.llm_speed import FIXED_TEXT
    from kbuild import load_spec
    from kbuild.exporter.tflite_generator import TfliteChat
    from kbuild.exporter.tflite_lm import write_generator
    from kbuild.pretrained.causal_lm import load_causal_lm
    from kbuild.pretrained.checkpoint import CAUSAL_LM, inspect
    from kbuild.pretrained.tokenizer import pretrained_tokenizer

    (tmp_path / "train.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                                   {"role": "assistant", "content": "hi"}]}) + "\n")
    (tmp_path / "spec.yaml").write_text(f"name: smol\ntask: chat\ndata: {{train: {tmp_path / 'train.jsonl'}}}\n"
                                        f"model: {{backbone: {{from: {SMOLLM2}}}}}\n")
    spec = load_spec(tmp_path / "spec.yaml")
    tokenizer = pretrained_tokenizer(spec, kind=CAUSAL_LM).fit([])
    ids = tokenizer.token_ids(tf.constant([FIXED_TEXT])).to_list()[0]
    perplexity, answers = {}, {}
    for mode in ("none", "dynamic"):
        (tmp_path / mode).mkdir()
        write_generator(tmp_path / mode, load_causal_lm(inspect(spec, CAUSAL_LM)), tokenizer, spec, mode)
        chat = TfliteChat(tmp_path / mode)
        perplexity[mode] = chat.lm.perplexity(ids)
        answers[mode] = [reply.decode().strip() for reply in chat.reply(list(FACTS))]
    assert all(fact in answer for fact, answer in zip(FACTS.values(), answers["none"], strict=True)), answers
    assert answers["dynamic"][:2] == answers["none"][:2], answers
    assert all(fact in answer for fact, answer in zip(FACTS.values(), answers["dynamic"], strict=True)), answers
    assert perplexity["dynamic"] <= 1.02 * perplexity["none"], perplexity
