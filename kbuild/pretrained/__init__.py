"""Pretrained checkpoints from a local folder: a Hugging Face checkpoint or a keras-hub preset.

`model.backbone.from` names the folder; keras_hub loads it (its converters read Hugging Face
folders), the checkpoint's own tokenizer replaces `preprocess.tokenizer`, and the task's head sits on
the per-token features as it would on kbuild's own blocks.

- `spec`: the `model.backbone` section and its cross-field rules (no TensorFlow).
- `checkpoint`: the folder checked before anything heavy, and its kind: encoder or causal LM (no TensorFlow).
- `causal_lm`: a causal-LM folder as keras_hub's `CausalLM`, with what its converter drops restored.
- `gguf`, `gguf_tokenizer`: a llama GGUF file (llama.cpp's format) converted into a Hugging Face folder.
- `tokenizer`: the checkpoint's keras_hub tokenizer behind kbuild's `Tokenizer` interface.
- `backbone`: the keras_hub backbone, its trainable/freeze/LoRA controls, the model's features.
- `fetch`: `make pretrained` (the only code here that downloads, never at run time).

Importing this package imports nothing heavy.
"""
