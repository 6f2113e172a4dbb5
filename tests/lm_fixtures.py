"""Tiny language-model runs shared by the language-model, generation and export tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

LINES = ["the quick brown fox jumps over the lazy dog", "a stitch in time saves nine"]

LM_SPEC = """\
name: {name}
task: language_model
seed: 5
data:
  train: {text}
  valid_fraction: 0.1
  holdout: tail
preprocess:
  tokenizer: {{type: char, newlines: true}}
  max_length: 24
model:
  embedding: {{dim: 32, position: {position}}}
  blocks:
    - {block}
train:
  epochs: 50
  batch_size: 16
  max_steps: {steps}
  optimizer: {{name: adam, learning_rate: 0.01}}
"""

GPT_BLOCK = "{type: transformer_decoder, layers: 2, heads: 2, ff_dim: 64, dropout: 0.0}"
LSTM_BLOCK = "{type: lstm, units: 48}"


def write_text(folder: Path, repeats: int = 60) -> Path:
    path = folder / "text.txt"
    path.write_text("\n".join(LINES * repeats) + "\n", encoding="utf-8")
    return path


def write_lm_spec(folder: Path, name: str, block: str = GPT_BLOCK, position: str = "learned",
                  steps: int = 120) -> Path:
    text = write_text(folder)
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(LM_SPEC.format(name=name, text=text, block=block, position=position, steps=steps)))
    return path


def train_lm(folder: Path, name: str, **kwargs) -> Path:
    import kbuild

    run = kbuild.train(kbuild.load_spec(write_lm_spec(folder, name, **kwargs)), run_dir=folder / f"run-{name}")
    return run.path
