"""Ranking a whole catalog for each query, and what the rank of the clicked item says.

For a query whose clicked item is ``target``, every catalog item gets a score; the target's
rank is ``1 + (items scored higher) + (other items scored equal) / 2``: the expected rank when
ties are broken at random, so a scorer that gives many items the same score (popularity, with
its many zeros) is neither flattered nor punished. From the ranks of a set of queries:

* Recall@K (= hit rate: one relevant item per query): the share with rank <= K;
* NDCG@K: the mean of ``1 / log2(rank + 1)`` over queries with rank <= K (0 otherwise);
* MRR: the mean of ``1 / rank`` over the whole ranking.

Items the user clicked before stay in the catalog and may be retrieved (and clicked) again;
they count like any other item.

>>> ranks = rank_of_target(np.array([[0.1, 0.9, 0.5], [1.0, 1.0, 0.0]]), np.array([2, 0]))
>>> ranks.tolist()
[2.0, 1.5]
>>> m = ranking_metrics(ranks, (1, 2))
>>> m["recall@1"], m["recall@2"], round(m["mrr"], 4)
(0.0, 1.0, 0.5833)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

KS: tuple[int, ...] = (10, 50, 100)


def rank_of_target(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(n,) float64 expected ranks of ``targets`` (n,) in ``scores`` (n, I), ties split evenly."""
    target_scores = scores[np.arange(len(targets)), targets][:, None]  # (n, 1)
    higher = (scores > target_scores).sum(axis=1)
    equal = (scores == target_scores).sum(axis=1) - 1
    return 1.0 + higher + equal / 2.0


def ranks_in_chunks(score: Callable[[np.ndarray], np.ndarray], targets: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Ranks of ``targets`` where ``score(rows)`` gives the (len(rows), I) scores of those queries."""
    out = np.empty(len(targets), dtype=np.float64)
    for a in range(0, len(targets), chunk):
        rows = np.arange(a, min(a + chunk, len(targets)))
        out[rows] = rank_of_target(score(rows), targets[rows])
    return out


def ranking_metrics(ranks: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    """Recall@K, NDCG@K for each K, and MRR, from the targets' ranks."""
    out: dict[str, float] = {"queries": float(len(ranks))}
    if not len(ranks):
        return out
    for k in ks:
        hit = ranks <= k
        out[f"recall@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0).mean())
    out["mrr"] = float((1.0 / ranks).mean())
    return out
