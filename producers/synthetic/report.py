"""Run statistics: the progress line, the seed's dataset statistics and the JSON report.

Oracle metrics compare the true ``p_click`` of every emitted view with whether the simulated
user clicked it (the label the generator drew, also for a click that a ``--count`` or
``--days`` bound cut off the end of the stream). Faults do not enter them: a view that was
sent malformed still has its true probability and label. The popularity baseline scores a
view by its item's view count over the whole run (an in-sample, optimistic baseline).
"""

from __future__ import annotations

import builtins
import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from events.schema import EVENT_TYPES
from models.metrics import expected_auc, log_loss, roc_auc
from producers.synthetic.faults import FAULT_KINDS
from producers.synthetic.stream import CART, CLICK, PURCHASE, VIEW, EventBlock
from producers.synthetic.world import top_share

ORACLE_MAX_VIEWS: Final = 5_000_000  # oracle metrics use the first this many views (memory bound)


@dataclass
class RunStats:
    """Accumulates what was emitted, block by block."""

    users: int
    items: int
    partitions: int
    type_counts: np.ndarray = field(init=False)  # (4,) events by EVENT_TYPES
    user_events: np.ndarray = field(init=False)  # (U,)
    item_events: np.ndarray = field(init=False)  # (I,)
    item_views: np.ndarray = field(init=False)  # (I,)
    ratings: np.ndarray = field(init=False)  # (6,) purchases by rating, index 0 unused
    virtual_partitions: np.ndarray = field(init=False)  # (P,) messages by murmur2 partition of the key
    faults: dict[str, int] = field(init=False)
    messages: int = 0  # events plus duplicate copies
    bytes: int = 0  # message value bytes
    first_ts: int | None = None
    last_ts: int | None = None
    _p_click: list[np.ndarray] = field(default_factory=list)
    _clicked: list[np.ndarray] = field(default_factory=list)
    _view_item: list[np.ndarray] = field(default_factory=list)
    _oracle_views: int = 0
    _hash: Any = field(default_factory=hashlib.sha256)

    def __post_init__(self) -> None:
        self.type_counts = np.zeros(len(EVENT_TYPES), dtype=np.int64)
        self.user_events = np.zeros(self.users, dtype=np.int64)
        self.item_events = np.zeros(self.items, dtype=np.int64)
        self.item_views = np.zeros(self.items, dtype=np.int64)
        self.ratings = np.zeros(6, dtype=np.int64)
        self.virtual_partitions = np.zeros(self.partitions, dtype=np.int64)
        self.faults = dict.fromkeys(FAULT_KINDS, 0)

    @property
    def events(self) -> int:
        """Events emitted (duplicate copies not counted)."""
        return int(self.type_counts.sum())

    def add(self, block: EventBlock, ts_ms: np.ndarray, message_partitions: np.ndarray,
            payload: builtins.bytes) -> None:
        """Count emitted events (``block``) and their messages; ``payload`` is their JSONL bytes."""
        if len(block) == 0:
            return
        self.type_counts += np.bincount(block.etype, minlength=len(EVENT_TYPES))
        self.user_events += np.bincount(block.user, minlength=self.users)
        self.item_events += np.bincount(block.item, minlength=self.items)
        views = block.etype == VIEW
        self.item_views += np.bincount(block.item[views], minlength=self.items)
        self.ratings += np.bincount(block.rating[block.etype == PURCHASE], minlength=6)
        self.virtual_partitions += np.bincount(message_partitions, minlength=self.partitions)
        self.messages += len(message_partitions)
        self.bytes += len(payload) - len(message_partitions)  # minus the newlines
        self._hash.update(payload)
        self.first_ts = int(ts_ms[0]) if self.first_ts is None else self.first_ts
        self.last_ts = int(ts_ms[-1])
        room = ORACLE_MAX_VIEWS - self._oracle_views
        if room > 0:
            rows = np.flatnonzero(views)[:room]
            self._p_click.append(block.p_click[rows])
            self._clicked.append(block.clicked[rows])
            self._view_item.append(block.item[rows])
            self._oracle_views += len(rows)

    def add_faults(self, kinds: list[str]) -> None:
        """Count injected faults by kind."""
        for kind in kinds:
            self.faults[kind] += 1

    def checksum(self) -> str:
        """sha256 of the emitted stream: equal to the sha256 of the JSONL file of it."""
        return self._hash.hexdigest()

    def oracle(self) -> dict[str, float | int | None]:
        """Click-prediction metrics of the true probabilities and of a popularity baseline."""
        if not self._p_click:
            return {"views": 0}
        p = np.concatenate(self._p_click)
        y = np.concatenate(self._clicked)
        pop_score = self.item_views[np.concatenate(self._view_item)]
        q = np.clip(p, 1e-12, 1 - 1e-12)
        return {
            "views": len(p),
            "click_rate": round(float(y.mean()), 6),
            "auc": _r(roc_auc(y, p)),
            "expected_auc": _r(expected_auc(p)),
            "log_loss": _r(log_loss(y, p)),
            "expected_log_loss": _r(float(-np.mean(q * np.log(q) + (1 - q) * np.log(1 - q)))),
            "popularity_auc": _r(roc_auc(y, pop_score)),
            "base_rate_log_loss": _r(log_loss(y, np.full(len(y), y.mean()))),
        }

    def summary(self, user_top: float, item_top: float) -> dict[str, Any]:
        """Counts, event mix, funnel, realised skew and the dataset statistics."""
        c = self.type_counts
        events = max(self.events, 1)
        rated = int(self.ratings.sum())
        return {
            "counts_by_type": dict(zip(EVENT_TYPES, c.tolist(), strict=True)),
            "event_mix": {t: round(int(n) / events, 4) for t, n in zip(EVENT_TYPES, c, strict=True)},
            "funnel": {
                "click_per_view": _ratio(c[CLICK], c[VIEW]),
                "cart_per_click": _ratio(c[CART], c[CLICK]),
                "purchase_per_cart": _ratio(c[PURCHASE], c[CART]),
            },
            "skew": {
                "user_top": user_top,
                "user_top_share": round(top_share(self.user_events, user_top), 4),
                "item_top": item_top,
                "item_top_share_views": round(top_share(self.item_views, item_top), 4),
                "item_top_share_events": round(top_share(self.item_events, item_top), 4),
            },
            "dataset": {
                "users": self.users,
                "items": self.items,
                "interactions": self.events,
                "active_users": int((self.user_events > 0).sum()),
                "active_items": int((self.item_events > 0).sum()),
                "average_rating": round(float((self.ratings * np.arange(6)).sum() / rated), 3) if rated else None,
                "rating_distribution": {str(r): int(self.ratings[r]) for r in range(5, 0, -1)},
            },
        }


def _r(x: float) -> float | None:
    """Rounded for the report; NaN (e.g. AUC with one class only) becomes null."""
    return None if np.isnan(x) else round(float(x), 6)


def _ratio(a: int, b: int) -> float | None:
    return round(int(a) / int(b), 4) if b else None


def progress_line(events: int, rate: float, mb_per_s: float, latency_ms: tuple[float, float] | None) -> str:
    """One progress line (kafka-producer-perf-test style).

    >>> progress_line(1000, 250.0, 0.07, (1.5, 9.0))
    '1000 events sent, 250 ev/s (0.07 MB/s), 1.5 ms avg, 9.0 ms max delivery latency'
    >>> progress_line(10, 5.0, 0.0, None)
    '10 events sent, 5 ev/s (0.00 MB/s)'
    """
    line = f"{events} events sent, {rate:.0f} ev/s ({mb_per_s:.2f} MB/s)"
    if latency_ms is not None:
        line += f", {latency_ms[0]:.1f} ms avg, {latency_ms[1]:.1f} ms max delivery latency"
    return line


def dataset_text(report: dict[str, Any]) -> str:
    """The seed generator's statistics block plus the run's key figures, for humans."""
    d = report["dataset"]
    rated = sum(d["rating_distribution"].values())
    avg = "n/a" if d["average_rating"] is None else f"{d['average_rating']:.2f}"
    lines = [
        "Dataset Statistics",
        "=" * 70,
        f"Total Users: {d['users']}",
        f"Total Items: {d['items']}",
        f"Total Interactions: {d['interactions']}",
        f"Unique Active Users: {d['active_users']}",
        f"Average Rating: {avg}",
        "",
        "Rating Distribution:",
    ]
    for rating, n in d["rating_distribution"].items():
        share = n / rated if rated else 0.0
        lines.append(f"  {rating}: {n:8d} ({100 * share:6.2f}%) {'█' * round(40 * share)}")
    mix, funnel, skew, oracle = report["event_mix"], report["funnel"], report["skew"], report["oracle"]
    lines += [
        "",
        "Event mix: " + ", ".join(f"{t} {100 * s:.1f}%" for t, s in mix.items()),
        "Funnel: " + ", ".join(f"{k} {v} (target {funnel['targets'][k]})" for k, v in funnel.items() if k != "targets"),
        (f"Skew: top {100 * skew['user_top']:g}% of users make {100 * skew['user_top_share']:.1f}% of events; "
         f"top {100 * skew['item_top']:g}% of items get {100 * skew['item_top_share_views']:.1f}% of views"),
    ]
    if oracle.get("auc") is not None:
        lines.append(
            f"Oracle click AUC {oracle['auc']:.4f} (expected {oracle['expected_auc']:.4f}), log-loss "
            f"{oracle['log_loss']:.4f}; popularity-only AUC {oracle['popularity_auc']:.4f}"
        )
    faults = {k: v for k, v in report["faults"].items() if v}
    if faults:
        lines.append("Faults: " + ", ".join(f"{k} {v}" for k, v in faults.items()))
    lines += [
        (f"Rate: requested {report['rate_requested']:g}/s, achieved {report['rate_achieved']:.1f}/s "
         f"({report['mode']}, {report['elapsed_s']:.2f} s)"),
        f"Delivery failures: {report['delivery_failures']}",
        f"Checksum (sha256 of the stream): {report['checksum']}",
        "=" * 70,
    ]
    return "\n".join(lines)
