"""Metric definitions shared by the producer's oracle report and model evaluation.

Numpy only (no torch import), so the producer can use it. Definitions:

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

    The closed form: pairs (i, j) count p_i (1 - p_j) when p_i > p_j, half of it when
    equal, over sum(p) * sum(1 - p) minus the diagonal.

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


def roc_curve(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """ROC points (fpr, tpr), from (0, 0) to (1, 1), one point per distinct score.

    Tied scores move diagonally, so the trapezoid area under the points equals :func:`roc_auc`.

    >>> fpr, tpr = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    ys, ss = y[order], s[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(ss)), len(ss) - 1]  # last index of each distinct score
    tp = np.cumsum(ys)[last_of_run]
    fp = np.cumsum(~ys)[last_of_run]
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def calibration_bins(y_true: ArrayLike, p: ArrayLike, n_bins: int = 10) -> list[dict[str, float]]:
    """Predicted vs observed rate per equal-width probability bucket (empty buckets left out).

    Each entry: ``lo``, ``hi`` (bucket edges), ``count``, ``mean_predicted``, ``observed``.

    >>> calibration_bins([0, 1, 1], [0.05, 0.95, 0.85], n_bins=2)[1]["observed"]
    1.0
    """
    y = np.asarray(y_true, dtype=np.float64)
    q = np.asarray(p, dtype=np.float64)
    bucket = np.minimum((q * n_bins).astype(np.int64), n_bins - 1)  # p == 1 goes to the last bucket
    count = np.bincount(bucket, minlength=n_bins)
    pred_sum = np.bincount(bucket, weights=q, minlength=n_bins)
    pos_sum = np.bincount(bucket, weights=y, minlength=n_bins)
    return [
        {
            "lo": b / n_bins,
            "hi": (b + 1) / n_bins,
            "count": int(count[b]),
            "mean_predicted": float(pred_sum[b] / count[b]),
            "observed": float(pos_sum[b] / count[b]),
        }
        for b in range(n_bins)
        if count[b] > 0
    ]


def expected_calibration_error(bins: list[dict[str, float]]) -> float:
    """Count-weighted mean of ``|mean_predicted - observed|`` over :func:`calibration_bins` output."""
    total = sum(b["count"] for b in bins)
    return float(sum(b["count"] * abs(b["mean_predicted"] - b["observed"]) for b in bins) / total) if total else float("nan")


# Ranking metrics, one query per user.
#
# Convention: for each user, that user's items are ranked by score, descending; relevance is
# binary (clicked). Users without a relevant item are skipped (their recall and NDCG are
# undefined), and the metrics are macro-averaged over the remaining users.
#   precision@k = hits in the top k / k   (a user with fewer than k items still divides by k)
#   recall@k    = hits in the top k / number of relevant items of the user
#   NDCG@k      = DCG@k / IDCG@k, DCG@k = sum over ranks r = 1..k of rel_r / log2(r + 1),
#                 IDCG@k the DCG of the ideal order (min(k, relevant) ones first)
# Ties in score are broken uniformly at random and the metrics give the expectation: every
# rank inside a block of tied scores gets the block's mean relevance (McSherry & Najork 2008
# for NDCG; linearity of expectation for hits), so a constant scorer is not rewarded or
# punished for the input order.


def _ranked(groups: ArrayLike, scores: ArrayLike, relevance: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sort by (group, score desc); return group code, 0-based rank, expected gain per rank, relevance per group."""
    _, code = np.unique(np.asarray(groups), return_inverse=True)
    s = np.asarray(scores, dtype=np.float64)
    rel = np.asarray(relevance, dtype=np.float64)
    if not (code.shape == s.shape == rel.shape):
        msg = f"groups, scores and relevance must have the same shape, got {code.shape}, {s.shape}, {rel.shape}"
        raise ValueError(msg)
    if not np.isin(rel, (0.0, 1.0)).all():
        msg = "relevance must be 0 or 1 (binary gains; IDCG assumes it)"
        raise ValueError(msg)
    order = np.lexsort((-s, code))
    gs, ss, rs = code[order], s[order], rel[order]
    n = len(gs)
    new_group = np.r_[True, gs[1:] != gs[:-1]]
    group_start = np.flatnonzero(new_group)
    rank = np.arange(n) - np.repeat(group_start, np.diff(np.r_[group_start, n]))
    block_start = np.flatnonzero(new_group | np.r_[True, ss[1:] != ss[:-1]])
    block_len = np.diff(np.r_[block_start, n])
    gain = np.repeat(np.add.reduceat(rs, block_start) / block_len, block_len) if n else rs
    relevant = np.bincount(gs, weights=rs, minlength=len(group_start))
    return gs, rank, gain, relevant


def ranking_at_k(groups: ArrayLike, scores: ArrayLike, relevance: ArrayLike, ks: tuple[int, ...] = (5, 10)) -> dict[str, float]:
    """Macro-averaged precision@k, recall@k and NDCG@k over groups with a relevant item.

    Args:
        groups: (N,) query id per row (the user).
        scores: (N,) model scores; higher ranks first.
        relevance: (N,) 0/1 (clicked).
        ks: cut-offs.

    Returns:
        ``{"precision@5": ..., "recall@5": ..., "ndcg@5": ..., ..., "n_users": ...}``.

    >>> m = ranking_at_k(["a", "a", "a", "b"], [0.9, 0.5, 0.1, 0.3], [0, 1, 0, 0], ks=(1, 2))
    >>> m["precision@1"], m["recall@2"], round(m["ndcg@2"], 4), m["n_users"]
    (0.0, 1.0, 0.6309, 1)
    """
    gs, rank, gain, relevant = _ranked(groups, scores, relevance)
    keep = relevant > 0
    out: dict[str, float] = {}
    for k in ks:
        if k < 1:
            msg = f"k must be >= 1, got {k}"
            raise ValueError(msg)
        top = rank < k
        hits = np.bincount(gs[top], weights=gain[top], minlength=len(relevant))
        dcg = np.bincount(gs[top], weights=gain[top] / np.log2(rank[top] + 2.0), minlength=len(relevant))
        ideal_discounts = np.r_[0.0, np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))]  # IDCG for 0..k relevant
        idcg = ideal_discounts[np.minimum(relevant, k).astype(np.int64)]
        out[f"precision@{k}"] = float(np.mean(hits[keep] / k)) if keep.any() else float("nan")
        out[f"recall@{k}"] = float(np.mean(hits[keep] / relevant[keep])) if keep.any() else float("nan")
        out[f"ndcg@{k}"] = float(np.mean(dcg[keep] / idcg[keep])) if keep.any() else float("nan")
    out["n_users"] = int(keep.sum())
    return out
