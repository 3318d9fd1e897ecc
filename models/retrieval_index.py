"""A FAISS inner-product index over the catalog's item embeddings: the retriever's serving side.

The towers' outputs are unit vectors, so inner product = cosine similarity, and the top
items of a user embedding are its nearest neighbours. ``exact`` (``IndexFlatIP``, the
default) compares with every item: right for 5,000 items (a batch of 256 queries takes a few
ms). ``hnsw`` (``IndexHNSWFlat`` with the inner-product metric) answers in sub-linear time for
catalogs of millions, at a recall below 1 that ``benchmarks/bench_retrieval.py`` measures.

>>> items = np.eye(4, dtype=np.float32)
>>> index = ItemIndex(items, ["i0", "i1", "i2", "i3"])
>>> scores, ids = index.search(np.array([[0.1, 0.9, 0.0, 0.2]], dtype=np.float32), 2)
>>> ids.tolist(), index.item_ids_of(ids)
([[1, 3]], [['i1', 'i3']])
"""

from __future__ import annotations

from typing import Literal

import faiss
import numpy as np

Kind = Literal["exact", "hnsw"]

# FAISS switches the exact search to one BLAS matrix product from a batch size on, whose
# rounding depends on the batch; a query's scores must not (a replay batches differently).
# The per-query path is kept for every batch size.
faiss.cvar.distance_compute_blas_threshold = 1 << 30


class ItemIndex:
    """Top-k items by inner product for batches of query vectors."""

    def __init__(self, embeddings: np.ndarray, item_ids: list[str], kind: Kind = "exact", hnsw_m: int = 32,
                 ef_search: int = 128):
        if embeddings.ndim != 2 or len(embeddings) != len(item_ids):
            msg = f"ItemIndex: embeddings {embeddings.shape} do not fit {len(item_ids)} item ids"
            raise ValueError(msg)
        dim = embeddings.shape[1]
        self.index: faiss.Index
        if kind == "exact":
            self.index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efSearch = ef_search
            self.index = hnsw
        else:
            msg = f"ItemIndex kind must be 'exact' or 'hnsw', got {kind!r}"
            raise ValueError(msg)
        self.index.add(np.ascontiguousarray(embeddings, dtype=np.float32))
        self.item_ids = list(item_ids)
        self.kind = kind

    def __len__(self) -> int:
        return self.index.ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores (B, k) float32, item rows (B, k) int64)``, best first."""
        k = min(k, len(self))
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def item_ids_of(self, rows: np.ndarray) -> list[list[str]]:
        return [[self.item_ids[r] for r in row if r >= 0] for row in rows.tolist()]
