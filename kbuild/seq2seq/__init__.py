"""Encoder-decoder models (task `seq2seq`): decoder configs (`model.decoder`), the model builder,
and decoding (greedy and beam search with keras_hub samplers)."""
