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
