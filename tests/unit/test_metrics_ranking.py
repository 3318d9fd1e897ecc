"""Metrics against brute-force versions written here: pairwise AUC, loops over ranks and tie orders."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.metrics import calibration_bins, expected_calibration_error, ranking_at_k, roc_auc, roc_curve


def brute_auc(y, s):
    pos = [b for a, b in zip(y, s, strict=True) if a]
    neg = [b for a, b in zip(y, s, strict=True) if not a]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


labelled = st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=40).filter(
    lambda rows: 0 < sum(r[0] for r in rows) < len(rows)
)


@settings(max_examples=200, deadline=None)
@given(labelled)
def test_roc_auc_matches_pairwise_counting_with_ties(rows):
    y, s = zip(*rows, strict=True)
    assert roc_auc(list(y), list(s)) == pytest.approx(brute_auc(y, s))


@settings(max_examples=100, deadline=None)
@given(labelled)
def test_area_under_roc_points_equals_auc(rows):
    y, s = zip(*rows, strict=True)
    fpr, tpr = roc_curve(list(y), list(s))
    area = sum((fpr[i + 1] - fpr[i]) * (tpr[i + 1] + tpr[i]) / 2 for i in range(len(fpr) - 1))
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert area == pytest.approx(brute_auc(y, s))


def brute_user_metrics(items, k):
    """Average precision@k, recall@k, NDCG@k of one user over every order consistent with the scores."""
    orders = [p for p in itertools.permutations(items) if all(p[i][0] >= p[i + 1][0] for i in range(len(p) - 1))]
    n_rel = sum(r for _, r in items)
    precision = recall = ndcg = 0.0
    for order in orders:
        hits = 0
        dcg = 0.0
        for rank, (_, rel) in enumerate(order, start=1):
            if rank > k:
                break
            hits += rel
            dcg += rel / math.log2(rank + 1)
        idcg = 0.0
        for rank in range(1, min(k, n_rel) + 1):
            idcg += 1 / math.log2(rank + 1)
        precision += hits / k
        recall += hits / n_rel
        ndcg += dcg / idcg
    return precision / len(orders), recall / len(orders), ndcg / len(orders)


user_items = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1)), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(st.lists(user_items, min_size=1, max_size=5), st.integers(1, 7))
def test_ranking_metrics_match_brute_force_expectation_over_tie_orders(users, k):
    groups, scores, rel = [], [], []
    for u, items in enumerate(users):
        for s, r in items:
            groups.append(f"user{u}")
            scores.append(s)
            rel.append(r)
    got = ranking_at_k(groups, scores, rel, ks=(k,))
    per_user = [brute_user_metrics(items, k) for items in users if any(r for _, r in items)]
    assert got["n_users"] == len(per_user)
    if not per_user:
        assert math.isnan(got[f"precision@{k}"])
        return
    for i, name in enumerate(("precision", "recall", "ndcg")):
        assert got[f"{name}@{k}"] == pytest.approx(sum(m[i] for m in per_user) / len(per_user)), name


def test_ranking_conventions_on_a_worked_example():
    # user a: clicked items at ranks 2 and 3 of 3; user b: no click (skipped); user c: rank 1 of 1
    groups = ["a", "a", "a", "b", "b", "c"]
    scores = [0.9, 0.5, 0.1, 0.7, 0.2, 0.3]
    clicks = [0, 1, 1, 0, 0, 1]
    m = ranking_at_k(groups, scores, clicks, ks=(2, 5))
    assert m["n_users"] == 2
    assert m["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert m["precision@5"] == pytest.approx((2 / 5 + 1 / 5) / 2)  # short lists still divide by k
    assert m["recall@2"] == pytest.approx((1 / 2 + 1) / 2)
    ndcg_a = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert m["ndcg@2"] == pytest.approx((ndcg_a + 1.0) / 2)


def test_constant_scores_get_the_random_expectation():
    m = ranking_at_k(["u"] * 4, [1.0] * 4, [1, 0, 0, 0], ks=(1,))
    assert m["precision@1"] == pytest.approx(0.25)
    assert m["ndcg@1"] == pytest.approx(0.25)


def test_ranking_input_errors():
    with pytest.raises(ValueError, match="relevance must be 0 or 1"):
        ranking_at_k(["u", "u"], [0.1, 0.2], [2, 0])
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        ranking_at_k(["u", "u"], [0.1, 0.2], [1, 0], ks=(0,))
    with pytest.raises(ValueError, match="same shape"):
        ranking_at_k(["u"], [0.1, 0.2], [1, 0])


def test_calibration_bins_match_a_loop():
    rng = np.random.default_rng(0)
    p = rng.random(500)
    y = (rng.random(500) < p).astype(int)
    bins = calibration_bins(y, p, n_bins=5)
    for b in bins:
        members = [i for i in range(500) if b["lo"] <= p[i] < b["hi"]]
        assert b["count"] == len(members)
        assert b["mean_predicted"] == pytest.approx(sum(p[i] for i in members) / len(members))
        assert b["observed"] == pytest.approx(sum(y[i] for i in members) / len(members))
    assert sum(b["count"] for b in bins) == 500
    ece = sum(b["count"] * abs(b["mean_predicted"] - b["observed"]) for b in bins) / 500
    assert expected_calibration_error(bins) == pytest.approx(ece)


def test_probability_one_falls_in_the_last_bucket():
    bins = calibration_bins([1, 0], [1.0, 0.0], n_bins=4)
    assert [(b["lo"], b["count"]) for b in bins] == [(0.0, 1), (0.75, 1)]
