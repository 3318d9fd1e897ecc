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
from features.records import Record, score_records, vector_fields
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
    item_shift, cat_shift = 8 * n_bytes, 16 * n_bytes
    to_bytes = int.to_bytes
    # one int per vector, user | item | user x category, little-endian: one to_bytes call each
    buf = b"".join([to_bytes(v.user_vec | v.item_vec << item_shift | v.cat_vec << cat_shift, 3 * n_bytes, "little")
                    for v in vectors])
    return np.frombuffer(buf, dtype="<u4").reshape(len(vectors), 12 * n_groups)


def example_row(v: Vector, counts: list[int]) -> dict[str, Any]:
    """An event's point-in-time vector with its context and, for a view, the user's history.

    The event-features record, and a training example without its labels (the examples
    writer joins those): written by the same code live and in a backfill.
    """
    row = vector_fields(v.event, counts, v.item_as_of)  # type: ignore[arg-type]  # examples keep events
    if v.history is not None:
        recent, categories = v.history
        row["history"] = {"recent_items": list(recent), "category_counts": [list(c) for c in categories]}
    return row


def contexts_of(views: list[Vector]) -> list[tuple[Any, ...]]:
    """The VIEW_CONTEXT tuples of views (fields in ``VIEW_CONTEXT_FIELDS`` order)."""
    return [v.context for v in views]  # type: ignore[misc]  # views always carry one


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
        vectors = batches[0].items if len(batches) == 1 else [v for b in batches for v in b.items]
        if not vectors:
            return []
        need_counts = self.event_features or self.examples or self.score is not None
        counts = vector_counts(vectors, self.n_groups) if need_counts else None
        records: list[Record] = []
        out: list[Records | ExampleRows] = []
        if self.event_features:
            dumps = orjson.dumps
            for v, row in zip(vectors, counts.tolist()):  # type: ignore[union-attr]
                event = v.event
                assert event is not None  # kept for the event-features topic (PartitionState.keep_events)
                records.append(("event_features", event["event_id"].encode(), dumps(example_row(v, row))))
        # Without event features the item stage sends views only; check rather than assume
        # (only views carry a context).
        contexts = [v.context for v in vectors]
        if None not in contexts:
            views, view_counts = vectors, counts
        else:
            index = [i for i, c in enumerate(contexts) if c is not None]
            views = [vectors[i] for i in index]
            view_counts = counts[index] if counts is not None else None
        if views and self.score is not None:
            # The contexts were taken in the partition stage, while each event was in the CPU
            # caches (VIEW_CONTEXT); here they become columns.
            event_ids, user_ids, item_ids, categories, countries, devices, ts, prices = zip(*contexts_of(views))
            scores = self.score(view_counts, user_ids, item_ids, categories, countries, devices,
                                np.array(ts, dtype=np.int64), np.array(prices, dtype=np.float64))
            records += score_records(event_ids, user_ids, item_ids, ts, scores.tolist(), self.model_version,
                                     [v.item_as_of for v in views])
            self.scored += len(views)
        if records:
            out.append(Records(records))
        if self.examples and views:
            rows = view_counts.tolist()  # type: ignore[union-attr]
            out.append(ExampleRows([example_row(v, row) for v, row in zip(views, rows)]))
        return out
