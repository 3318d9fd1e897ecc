"""Metric definitions shared by the producer's oracle report and model evaluation.

Numpy only (no torch import), so the producer can use it. Definitions follow
``notes/models.md`` section 5:

* ROC-AUC = P(s+ > s-) + 1/2 P(s+ = s-), computed from average ranks;
* log-loss = -mean(y log p + (1 - y) log(1 - p)), with p clipped to [eps, 1 - eps];
* normalised entropy = log-loss / H(mean(y)); below 1 beats predicting the base rate.

>>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
0.75
>>> roc_auc([0, 1], [0.5, 0.5])
0.5
>>> round(log_loss([1, 0], [0.9, 0.2]), 4)
0.1643
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

EPS = 1e-7


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    boundaries = np.flatnonzero(np.diff(xs)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(xs)]))
    avg = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(xs), dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve; ties count one half. NaN if only one class is present."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape:
        msg = f"y_true and scores must have the same shape, got {y.shape} and {s.shape}"
        raise ValueError(msg)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def expected_auc(p: ArrayLike) -> float:
    """AUC that scoring by ``p`` achieves in expectation when labels are Bernoulli(p).

    The closed form of ``notes/generators_and_style.md`` section 1.3: pairs (i, j) count
    p_i (1 - p_j) when p_i > p_j, half of it when equal, over sum(p) * sum(1 - p) minus
    the diagonal.

    >>> round(expected_auc([0.1, 0.9]), 4)
    0.9878
    """
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(p, kind="mergesort")
    ps = p[order]
    neg = 1.0 - ps
    # For each i: sum of (1 - p_j) over j with p_j < p_i, plus half over ties (j != i).
    boundaries = np.flatnonzero(np.diff(ps)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(ps)]))
    cum_neg = np.concatenate(([0.0], np.cumsum(neg)))
    below = np.repeat(cum_neg[starts], ends - starts)
    tie_neg = np.repeat(cum_neg[ends] - cum_neg[starts], ends - starts) - neg
    numerator = float(np.sum(ps * (below + 0.5 * tie_neg)))
    denominator = float(ps.sum() * neg.sum() - np.sum(ps * neg))
    return numerator / denominator if denominator > 0 else float("nan")


def log_loss(y_true: ArrayLike, p: ArrayLike, eps: float = EPS) -> float:
    """Mean binary cross-entropy of probabilities ``p`` against 0/1 labels."""
    y = np.asarray(y_true, dtype=np.float64)
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return float(-np.mean(y * np.log(q) + (1.0 - y) * np.log(1.0 - q)))


def binary_entropy(rate: float, eps: float = EPS) -> float:
    """H(rate) in nats."""
    r = min(max(rate, eps), 1.0 - eps)
    return float(-(r * np.log(r) + (1.0 - r) * np.log(1.0 - r)))


def normalized_entropy(y_true: ArrayLike, p: ArrayLike) -> float:
    """Log-loss divided by the entropy of the base rate (He et al. 2014)."""
    y = np.asarray(y_true, dtype=np.float64)
    return log_loss(y, p) / binary_entropy(float(y.mean()))
