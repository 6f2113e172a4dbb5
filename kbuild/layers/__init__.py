"""kbuild's Keras layers, losses, metrics and schedules: one module per family.

Backend-neutral (keras.layers and keras.ops only). Every class here is registered as
serialisable under the `kbuild` package, and importing this package imports every module, so
loading a trained `model.keras` (`kbuild.runs.load_trained_model`) needs nothing imported by hand.

Adding a layer: a class in the module of its family (or a new module imported below), decorated
with `@keras.saving.register_keras_serializable(package=PACKAGE)` and implementing `get_config`.
"""

from kbuild.layers.bigrams import BigramEmbedding
from kbuild.layers.crf import (
    CRF,
    PADDING_TAG,
    CRFLoss,
    TagDecoder,
    crf_log_likelihood,
    decode_tags,
    viterbi_decode,
)
from kbuild.layers.distillation import DistillationLoss, HardLabels
from kbuild.layers.embedding import CharCNN, SegmentEmbedding, TokenAndPositionEmbedding
from kbuild.layers.metrics import (
    MaskedTokenAccuracy,
    MultiLabelF1,
    PearsonCorrelation,
    SparseMacroF1,
    TokenAccuracy,
)
from kbuild.layers.optimizers import ScaledAdam, ScaledAdamW, ScaledSGD
from kbuild.layers.pooling import AttentionPooling, DropMask, FirstSubtoken, MaskedPooling
from kbuild.layers.pretrained import BackboneInputs, MaskedFeatures
from kbuild.layers.schedules import WarmupSchedule
from kbuild.layers.spans import SpanLogits, SpanLoss
from kbuild.layers.text_cnn import TextCNN
from kbuild.layers.transformer import TransformerEncoder
from kbuild.layers.vae import ConcatToSteps, GaussianPosterior, SentenceCrossEntropy, WordDropout

__all__ = [
    "CRF", "PADDING_TAG", "AttentionPooling", "BackboneInputs", "BigramEmbedding", "CRFLoss", "CharCNN",
    "ConcatToSteps", "DistillationLoss", "DropMask", "FirstSubtoken", "HardLabels", "MaskedFeatures", "TextCNN",
    "GaussianPosterior", "MaskedPooling", "SpanLogits", "SpanLoss", "MaskedTokenAccuracy", "MultiLabelF1", "PearsonCorrelation",
    "ScaledAdam", "ScaledAdamW", "ScaledSGD", "SegmentEmbedding", "SentenceCrossEntropy", "SparseMacroF1", "TagDecoder", "TokenAccuracy", "TokenAndPositionEmbedding",
    "TransformerEncoder", "WarmupSchedule", "WordDropout", "crf_log_likelihood", "decode_tags", "viterbi_decode",
]
