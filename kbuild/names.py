"""Names shared across packages: model inputs, sub-model and layer names, signature inputs.

The ground floor: data pipelines, tokenizers, model builders, tasks, decoders and the exporter
agree on these strings, so they live below all of them (this module imports nothing).
"""

# --- model inputs (what the tokenizers encode and the data pipelines feed) --------------------
TOKEN_IDS = "token_ids"
"""int32 [batch, time], 0 = padding."""
CHAR_IDS = "char_ids"
"""int32 [batch, time, chars]: each word's characters (char features)."""
WORD_STARTS = "word_starts"
"""int32 [batch, words]: each word's first sub-token (a tagger over subwords); 0 = no word."""
SOURCE_IDS = "source_ids"
"""Encoder-decoder models: the source tokens."""
TARGET_IDS = "target_ids"
"""Encoder-decoder models: the target tokens read by the decoder (teacher forcing)."""
LOSS_POSITIONS = "loss_positions"
"""int32 [batch, k]: the positions of a batch's weighted targets, where a fine-tuned causal LM
computes its output layer in training (`kbuild.pretrained.causal_lm.TargetPositions`)."""
SEGMENT_IDS = "segment_ids"
"""int32 [batch, time]: which input text each token comes from (0 for `[CLS]` and the first text,
1 for the second, ...), when a task reads several texts packed into one sequence."""

PAD_ID, UNK_ID, CLS_ID = 0, 1, 2
"""Reserved token ids of every kbuild tokenizer: padding, unknown, start ([CLS])."""
MASK_TOKEN = "[MASK]"
"""The masked-LM task's mask token. Not reserved: only a masked_lm run's vocabulary holds it (as its
last entry), so every other task's ids stay as they were; a run started from a masked_lm run
(`init_from`) inherits that vocabulary, [MASK] included."""

# --- outputs and sub-models --------------------------------------------------------------------
LOGITS = "logits"
"""The vocabulary projection of language models and decoders (the layer that generation reads)."""
ENCODER = "encoder"
DECODER = "decoder"
TARGET_EMBEDDING = "target_embedding"
TARGET_EMBEDDING_NORM = "target_embedding_norm"
DECODER_FEATURES = "decoder_features"
"""A decoder's features before its output layer (named so decoding can project one position)."""
LATENT = "z"
"""A VAE decoder's latent-code input."""
POSTERIOR = "posterior"
EMBEDDING = "embedding"
"""The token embedding layer of kbuild's own backbone."""

# --- serving -----------------------------------------------------------------------------------
TEXT_INPUT = "text"
"""The first (for one-text tasks, the only) raw-strings input of a `serving_default` signature;
a task that reads more texts declares them (`Task.inputs`), one string input per name."""
TEXT_PAIR_INPUT = "text_pair"
"""The second text of a sentence-pair task (paraphrase, similarity, inference)."""
SEPARATOR_TOKEN = "[SEP]"
"""Ends each text of a packed multi-text sequence (`[CLS] a [SEP] b [SEP]`). Not reserved, like
`[MASK]`: only a run whose task reads several texts adds it to its vocabulary, so one-text runs keep
their ids."""
