"""The numbers behind the report's figures, from predictions (plain NumPy, no TensorFlow)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def confusion(gold: Sequence[int], predicted: Sequence[int], classes: int) -> np.ndarray:
    """Counts `[gold, predicted]`."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (np.asarray(gold, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its total (recall on the diagonal); empty rows stay zero."""
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape, np.float64), where=totals > 0)


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


def class_scores(matrix: np.ndarray) -> list[ClassScores]:
    """Precision, recall, F1 and support of each class from a confusion matrix (0 where undefined)."""
    true_positive = np.diag(matrix).astype(np.float64)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    scores = []
    for tp, p, s in zip(true_positive, predicted, support, strict=True):
        precision = tp / p if p else 0.0
        recall = tp / s if s else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores.append(ClassScores(float(precision), float(recall), float(f1), int(s)))
    return scores


@dataclass(frozen=True)
class Calibration:
    """A reliability diagram's bins and the expected calibration error.

    ECE = sum over bins of (bin count / N) * |accuracy in bin - mean confidence in bin|.
    """

    edges: list[float]
    counts: list[int]
    confidence: list[float | None]
    accuracy: list[float | None]
    ece: float


def calibration(confidence: Sequence[float], correct: Sequence[bool], bins: int, low: float = 0.0) -> Calibration:
    """Equal-width bins over [low, 1]; a confidence of exactly 1 falls in the last bin."""
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, np.float64)
    edges = np.linspace(low, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=False), 0, bins - 1)
    counts, mean_conf, accuracy, ece = [], [], [], 0.0
    for b in range(bins):
        chosen = index == b
        n = int(chosen.sum())
        counts.append(n)
        if n:
            c, a = float(confidence[chosen].mean()), float(correct[chosen].mean())
            mean_conf.append(c)
            accuracy.append(a)
            ece += n / len(confidence) * abs(a - c)
        else:
            mean_conf.append(None)
            accuracy.append(None)
    return Calibration([float(e) for e in edges], counts, mean_conf, accuracy, float(ece))
