"""A tiny random llama, written as llama.cpp writes a GGUF file, and a numpy forward pass of it.

The weights are drawn in Hugging Face's layout (`[out, in]`, q/k rows in halves), passed once through
the quantisers the file uses (so the file holds them exactly), then stored as llama.cpp's converter
stores them: `attn_q`/`attn_k` rows permuted, embeddings Q8_0, the feed-forward Q4_1, the attention
output F16, norms F32. `reference_logits` is Hugging Face's llama forward pass written out in numpy,
independent of kbuild and keras_hub, on those Hugging Face-layout weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "h e", "Ġt he", "a t", "c at", "Ġ cat", "i s"]
CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                 "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


@dataclass(frozen=True)
class TinyLlama:
    layers: int = 2
    hidden: int = 32
    heads: int = 4
    kv_heads: int = 2
    ffn: int = 64
    context: int = 64
    rope_theta: float = 10000.0
    eps: float = 1e-5
    tied: bool = True
    """False: a separate `output.weight` (Hugging Face's `lm_head.weight`)."""

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def vocabulary() -> list[str]:
    """Specials, GPT-2's 256 byte characters, then one token per merge."""
    from gguf.vocab import bytes_to_unicode

    tokens = [*SPECIALS, *bytes_to_unicode().values()]
    return tokens + [merge.replace(" ", "") for merge in MERGES if merge.replace(" ", "") not in tokens]


def llama_cpp_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf.py `LlamaModel.permute`, verbatim."""
    return (weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def _quantized(weight: np.ndarray, qtype) -> tuple[np.ndarray, np.ndarray]:
    """(the bytes llama.cpp stores, the float32 values they hold)."""
    from gguf.quants import dequantize, quantize

    stored = quantize(weight, qtype)
    return stored, dequantize(stored, qtype).reshape(weight.shape).astype(np.float32)


def write_tiny_gguf(path: Path, model: TinyLlama = TinyLlama(), seed: int = 0) -> dict[str, np.ndarray]:
    """Write a random llama GGUF to `path`; returns its weights under Hugging Face's names and layout."""
    import gguf

    rng = np.random.default_rng(seed)
    tokens = vocabulary()
    q_types = gguf.GGMLQuantizationType

    def draw(*shape: int, scale: float = 0.2) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(model.layers)
    writer.add_context_length(model.context)
    writer.add_embedding_length(model.hidden)
    writer.add_feed_forward_length(model.ffn)
    writer.add_head_count(model.heads)
    writer.add_head_count_kv(model.kv_heads)
    writer.add_rope_freq_base(model.rope_theta)
    writer.add_layer_norm_rms_eps(model.eps)
    writer.add_rope_dimension_count(model.head_dim)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL] * len(SPECIALS) + [gguf.TokenType.NORMAL] * (len(tokens) - len(SPECIALS)))
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    hf: dict[str, np.ndarray] = {}

    def add(gguf_name: str, hf_name: str, weight: np.ndarray, qtype=None, heads: int | None = None) -> None:
        if qtype is None:
            hf[hf_name] = weight
            stored = weight
        else:
            # Row-wise quantisation commutes with llama.cpp's row permutation: quantise in Hugging
            # Face's layout, permute the stored rows.
            stored, hf[hf_name] = _quantized(weight, qtype)
        if heads is not None:
            stored = llama_cpp_permute(stored, heads)
        writer.add_tensor(gguf_name, stored, raw_dtype=qtype)

    add("token_embd.weight", "model.embed_tokens.weight", draw(len(tokens), model.hidden, scale=1.0), q_types.Q8_0)
    for i in range(model.layers):
        blk, layer = f"blk.{i}.", f"model.layers.{i}."
        add(blk + "attn_norm.weight", layer + "input_layernorm.weight", 1 + draw(model.hidden, scale=0.1))
        add(blk + "attn_q.weight", layer + "self_attn.q_proj.weight", draw(model.hidden, model.hidden), q_types.Q4_1, model.heads)
        add(blk + "attn_k.weight", layer + "self_attn.k_proj.weight", draw(model.kv_heads * model.head_dim, model.hidden),
            q_types.Q8_0, model.kv_heads)
        add(blk + "attn_v.weight", layer + "self_attn.v_proj.weight", draw(model.kv_heads * model.head_dim, model.hidden))
        output = draw(model.hidden, model.hidden).astype(np.float16)
        writer.add_tensor(blk + "attn_output.weight", output)
        hf[layer + "self_attn.o_proj.weight"] = output.astype(np.float32)
        add(blk + "ffn_norm.weight", layer + "post_attention_layernorm.weight", 1 + draw(model.hidden, scale=0.1))
        add(blk + "ffn_gate.weight", layer + "mlp.gate_proj.weight", draw(model.ffn, model.hidden), q_types.Q4_1)
        add(blk + "ffn_up.weight", layer + "mlp.up_proj.weight", draw(model.ffn, model.hidden), q_types.Q4_1)
        add(blk + "ffn_down.weight", layer + "mlp.down_proj.weight", draw(model.hidden, model.ffn), q_types.Q4_1)
    add("output_norm.weight", "model.norm.weight", 1 + draw(model.hidden, scale=0.1))
    if not model.tied:
        add("output.weight", "lm_head.weight", draw(len(tokens), model.hidden), q_types.Q8_0)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return hf


def converted_tiny_llama(root: Path) -> Path:
    """The tiny llama written as GGUF under `root`, converted to a checkpoint folder kbuild reads."""
    from kbuild.pretrained.gguf import convert

    write_tiny_gguf(root / "tiny.gguf")
    return convert(root / "tiny.gguf", root / "tiny-llama").folder


def reference_logits(weights: dict[str, np.ndarray], ids: list[int], model: TinyLlama = TinyLlama()) -> np.ndarray:
    """Hugging Face's LlamaForCausalLM forward pass in float64 numpy: `[time, vocab]`."""
    w = {name: value.astype(np.float64) for name, value in weights.items()}
    steps, dim = len(ids), model.head_dim

    def rms(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + model.eps) * scale

    def rope(x: np.ndarray) -> np.ndarray:  # [time, heads, dim]; rotates the two halves, as Hugging Face does
        angles = np.arange(steps)[:, None] * model.rope_theta ** (-np.arange(0, dim, 2) / dim)[None]
        cos, sin = (np.concatenate([f(angles)] * 2, -1)[:, None] for f in (np.cos, np.sin))
        rotated = np.concatenate([-x[..., dim // 2:], x[..., : dim // 2]], -1)
        return x * cos + rotated * sin

    x = w["model.embed_tokens.weight"][ids]
    causal = np.triu(np.full((steps, steps), -np.inf), 1)
    for i in range(model.layers):
        p = f"model.layers.{i}."
        h = rms(x, w[p + "input_layernorm.weight"])
        q = rope((h @ w[p + "self_attn.q_proj.weight"].T).reshape(steps, model.heads, dim))
        k = rope((h @ w[p + "self_attn.k_proj.weight"].T).reshape(steps, model.kv_heads, dim))
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(steps, model.kv_heads, dim)
        k, v = (np.repeat(t, model.heads // model.kv_heads, axis=1) for t in (k, v))
        scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(dim) + causal
        attention = np.exp(scores - scores.max(-1, keepdims=True))
        attention /= attention.sum(-1, keepdims=True)
        x = x + np.einsum("hts,shd->thd", attention, v).reshape(steps, model.hidden) @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
    return rms(x, w["model.norm.weight"]) @ w.get("lm_head.weight", w["model.embed_tokens.weight"]).T
