"""Turn completed vectors into output records: scores, event features, training examples.

One forward pass per call: the dataflow calls :class:`VectorOutputs` once per runtime
batch with every completed vector of that batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from features.item_stage import Vector, Vectors
from features.partition_stage import Records
from features.records import Record, score_record, vector_fields
from features.tiles import GROUP_BITS

#: ``score(counts (B, n) uint32, user_ids, item_ids, categories, countries, devices, ts_ms, prices) -> (B,)``
ScoreFn = Callable[..., np.ndarray]


@dataclass
class ExampleRows:
    """Point-in-time vectors of views, for the examples writer (labels are joined there)."""

    rows: list[dict[str, Any]]


def vector_counts(vectors: list[Vector], n_groups: int) -> np.ndarray:
    """``(B, 3 * 4 * n_groups)`` counts in FeatureSpec order (user, item, user x category)."""
    n_bytes = n_groups * GROUP_BITS // 8
    buf = b"".join(
        u.to_bytes(n_bytes, "little") + i.to_bytes(n_bytes, "little") + c.to_bytes(n_bytes, "little")
        for _, u, i, c, _ in vectors
    )
    return np.frombuffer(buf, dtype="<u4").reshape(len(vectors), 12 * n_groups)


class VectorOutputs:
    """Formats one runtime batch of vectors; scores views when a scorer is given."""

    def __init__(self, n_groups: int, score: ScoreFn | None = None, model_version: str = "",
                 event_features: bool = False, examples: bool = False):
        self.n_groups = n_groups
        self.score = score
        self.model_version = model_version
        self.event_features = event_features
        self.examples = examples
        self.scored = 0

    def __call__(self, batches: list[Vectors]) -> list[Records | ExampleRows]:
        vectors = [v for b in batches for v in b.items]
        if not vectors:
            return []
        need_counts = self.event_features or self.examples or self.score is not None
        counts = vector_counts(vectors, self.n_groups) if need_counts else None
        records: list[Record] = []
        out: list[Records | ExampleRows] = []
        dumps = orjson.dumps
        if self.event_features:
            for (event, _, _, _, cut), row in zip(vectors, counts.tolist()):  # type: ignore[union-attr]
                records.append(("event_features", event["event_id"].encode(), dumps(vector_fields(event, row, cut))))
        views = [i for i, v in enumerate(vectors) if v[0]["event_type"] == "view"]
        if views and self.score is not None:
            events = [vectors[i][0] for i in views]
            scores = self.score(
                counts[views],  # type: ignore[index]
                [e["user_id"] for e in events],
                [e["item_id"] for e in events],
                [e["category"] for e in events],
                [e["country"] for e in events],
                [e["device"] for e in events],
                np.fromiter((e["ts"] for e in events), dtype=np.int64, count=len(events)),
                np.fromiter((e["price"] for e in events), dtype=np.float64, count=len(events)),
            )
            for i, s in zip(views, scores.tolist()):
                key, value = score_record(vectors[i][0], s, self.model_version, vectors[i][4])
                records.append(("scores", key, value))
            self.scored += len(views)
        if records:
            out.append(Records(records))
        if self.examples and views:
            rows = counts[views].tolist()  # type: ignore[index]
            out.append(ExampleRows([vector_fields(vectors[i][0], row, vectors[i][4]) for i, row in zip(views, rows)]))
        return out
