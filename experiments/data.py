"""An experiment's served events and its truth, as columns: from the offline simulation or from the stream.

The stream form is what the producer writes in experiment mode (docs/experiments.md): events
of version 2 with ``experiment``, ``arm``, ``slate_id`` and ``position``, and truth records
keyed by ``event_id``: every served view's ``p_click``, and on the first view of each slate
the slate's potential outcomes (``slate``: expected views, and expected clicks under every
arm). Sources are a JSONL file or ``topic:NAME`` (read to its end).

>>> t = Truth(np.array([0, 5]), np.array([[1.0, 2.0], [0.5, 1.0]]), np.array([3.0, 3.0]), np.array([0, 1]))
>>> t.ctr().tolist(), t.ctr(until_ms=0).tolist()
([0.25, 0.5], [0.3333333333333333, 0.6666666666666666])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from events.schema import EVENT_TYPE_INDEX, EVENT_TYPES, check

if TYPE_CHECKING:
    from experiments.design import ExperimentDesign
    from producers.synthetic.stream import EventBlock

VIEW, CLICK, CART, PURCHASE = (EVENT_TYPE_INDEX[t] for t in EVENT_TYPES)


class DataError(ValueError):
    """The input holds no usable experiment: names the source and what is missing."""


@dataclass(frozen=True)
class Truth:
    """Potential outcomes of every served session (S sessions, A arms)."""

    ts_ms: np.ndarray  # (S,) int64 session start
    expected_clicks: np.ndarray  # (S, A) float64 expected clicks had the session been served by each arm
    expected_views: np.ndarray  # (S,) float64 expected views (the same under every arm)
    slate: np.ndarray  # (S,) int64 slate number (ExperimentData.slate)

    def take(self, rows: np.ndarray) -> Truth:
        return Truth(self.ts_ms[rows], self.expected_clicks[rows], self.expected_views[rows], self.slate[rows])

    def ctr(self, until_ms: int | None = None) -> np.ndarray:
        """(A,) true CTR of each arm over the sessions started by ``until_ms`` (all by default)."""
        keep = slice(None) if until_ms is None else self.ts_ms <= until_ms
        views = float(self.expected_views[keep].sum())
        return self.expected_clicks[keep].sum(axis=0) / views if views > 0 else np.full(self.expected_clicks.shape[1], np.nan)


@dataclass(frozen=True)
class ExperimentData:
    """The served events of one experiment as columns (n,), with its arms and truth."""

    experiment: str
    arms: tuple[str, ...]  # arm names; index 0 is the control
    user_ids: list[str]  # user number -> id
    user: np.ndarray  # (n,) int64 user number
    arm: np.ndarray  # (n,) int8 index into arms
    slate: np.ndarray  # (n,) int64 slate number (one per served session)
    etype: np.ndarray  # (n,) int8 index into EVENT_TYPES
    ts_ms: np.ndarray  # (n,) int64 event time
    value: np.ndarray  # (n,) float64 price on purchases (revenue, USD), 0 otherwise
    p_click: np.ndarray  # (n,) float64 true P(click) on views, NaN where unknown
    truth: Truth | None = None  # potential outcomes, when the source has them
    weights: tuple[float, ...] | None = None  # planned relative arm sizes (None: equal)

    def __len__(self) -> int:
        return len(self.ts_ms)

    @classmethod
    def from_block(cls, block: EventBlock, design: ExperimentDesign, price: np.ndarray, user_ids: list[str],
                   truth: Truth | None) -> ExperimentData:
        """From the simulator's served events (``block.arm >= 0``)."""
        is_purchase = block.etype == PURCHASE
        return cls(design.name, design.arm_names, user_ids, block.user, block.arm, block.slate, block.etype, block.t_ms,
                   np.where(is_purchase, price[block.item], 0.0), np.where(block.etype == VIEW, block.p_click, np.nan),
                   truth, design.arm_weights)

    def take(self, rows: np.ndarray) -> ExperimentData:
        """The events at ``rows`` (truth unchanged)."""
        return replace(self, user=self.user[rows], arm=self.arm[rows], slate=self.slate[rows], etype=self.etype[rows],
                       ts_ms=self.ts_ms[rows], value=self.value[rows], p_click=self.p_click[rows])

    def first_sessions(self, k: int) -> ExperimentData:
        """Only each user's first ``k`` served sessions (by start time), in the events and the truth; k <= 0: all.

        Caps how much one user weighs: in the generator's world the most active users start
        a large share of all sessions (rank-based Zipf activity), and a handful of users
        carrying a quarter of the views leave a user-level test with an effective sample of
        a few dozen users per arm (docs/experiments.md).
        """
        if k <= 0 or len(self) == 0:
            return self
        slates, inv = np.unique(self.slate, return_inverse=True)
        start = np.full(len(slates), np.iinfo(np.int64).max)
        np.minimum.at(start, inv, self.ts_ms)
        owner = np.zeros(len(slates), dtype=np.int64)
        owner[inv] = self.user
        order = np.lexsort((slates, start, owner))  # by user, then start time
        by_user = owner[order]
        firsts = np.flatnonzero(np.r_[True, by_user[1:] != by_user[:-1]])
        counts = np.diff(np.r_[firsts, len(order)])
        rank = np.empty(len(slates), dtype=np.int64)
        rank[order] = np.arange(len(order)) - np.repeat(firsts, counts)
        kept = self.take(rank[inv] < k)
        if self.truth is None:
            return kept
        return replace(kept, truth=self.truth.take(np.isin(self.truth.slate, slates[rank < k])))

    def true_ctr(self) -> np.ndarray:
        """(A,) the arms' expected CTR over their own served views (mean true p_click), NaN when unknown."""
        views = self.etype == VIEW
        return np.array([np.mean(self.p_click[views & (self.arm == a)]) if (views & (self.arm == a)).any() else np.nan
                         for a in range(len(self.arms))])


def _lines(source: str) -> tuple[Iterable[bytes], str]:
    if source.startswith("topic:"):
        from broker.console import read_topic
        from broker.embedded import resolve_bootstrap

        topic = source.removeprefix("topic:")
        return [r.value or b"" for r in read_topic(resolve_bootstrap(autostart=False), topic)], f"topic {topic}"
    path = Path(source)
    if not path.is_file():
        msg = f"events file {path} not found"
        raise DataError(msg)
    return path.read_bytes().splitlines(), f"file {path}"


def load(events: str, experiment: str, truth: str | None = None, control: str | None = None,
         weights: tuple[float, ...] | None = None) -> ExperimentData:
    """The served events of ``experiment`` from a JSONL file or ``topic:NAME``, and its truth if given.

    Counted are the events the features flow accepts: lines that are not JSON, not valid events
    (``events.schema.check``) or not of the experiment are skipped, and so is an event whose
    ``event_id`` came before (a duplicate); the flow's dead letters are where malformed records are
    reported. The control is ``control``, else the arm named ``control``, else the first arm in
    alphabetical order.
    """
    lines, where = _lines(events)
    rows: list[tuple[str, str, int, int, float, str, str]] = []  # user, arm, etype, ts, value, event_id, slate_id
    seen: set[str] = set()
    for raw in lines:
        try:
            e = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if type(e) is not dict or e.get("experiment") != experiment or check(e) is not None or e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        etype = EVENT_TYPE_INDEX[e["event_type"]]
        value = float(e.get("price") or 0.0) if etype == PURCHASE else 0.0
        rows.append((str(e["user_id"]), str(e["arm"]), etype, int(e["ts"]), value, str(e["event_id"]), str(e["slate_id"])))
    if not rows:
        msg = f"{where} holds no events of experiment {experiment!r}"
        raise DataError(msg)
    names = sorted({r[1] for r in rows})
    first = control if control is not None else ("control" if "control" in names else names[0])
    if first not in names:
        msg = f"--control {first!r} is not an arm of experiment {experiment!r} in {where} (arms: {', '.join(names)})"
        raise DataError(msg)
    arms = (first, *[a for a in names if a != first])
    if weights is not None and len(weights) != len(arms):
        msg = f"--weights gives {len(weights)} numbers for {len(arms)} arms ({', '.join(arms)})"
        raise DataError(msg)
    arm_index = {a: i for i, a in enumerate(arms)}
    user_index: dict[str, int] = {}
    user = np.array([user_index.setdefault(r[0], len(user_index)) for r in rows], dtype=np.int64)
    slate_index: dict[str, int] = {}
    slate = np.array([slate_index.setdefault(r[6], len(slate_index)) for r in rows], dtype=np.int64)
    etype_col = np.array([r[2] for r in rows], dtype=np.int8)
    p_click = np.full(len(rows), np.nan)
    truth_table = None
    if truth is not None:
        by_event, truth_table = _truth(truth, [r[5] for r in rows], [r[3] for r in rows], slate.tolist(), arms)
        for n, r in enumerate(rows):
            p = by_event.get(r[5])
            if p is not None and etype_col[n] == VIEW:
                p_click[n] = p
    return ExperimentData(experiment, arms, list(user_index), user, np.array([arm_index[r[1]] for r in rows], dtype=np.int8),
                          slate, etype_col, np.array([r[3] for r in rows], dtype=np.int64), np.array([r[4] for r in rows]),
                          p_click, truth_table, weights)


def _truth(source: str, event_ids: list[str], ts: list[int], slates: list[int],
           arms: tuple[str, ...]) -> tuple[dict[str, float], Truth | None]:
    """p_click by event_id, and the potential outcomes of the slates whose first view is among the events."""
    lines, where = _lines(source)
    ts_of = dict(zip(event_ids, ts, strict=True))
    slate_of = dict(zip(event_ids, slates, strict=True))
    p_click: dict[str, float] = {}
    found: list[tuple[int, list[float], float, int]] = []
    for raw in lines:
        try:
            t: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if type(t) is not dict or t.get("kind") != "view" or t.get("event_id") not in ts_of:
            continue
        p_click[t["event_id"]] = float(t["p_click"])
        slate = t.get("slate")
        if isinstance(slate, dict):
            clicks = slate.get("expected_clicks", {})
            if all(a in clicks for a in arms):
                found.append((ts_of[t["event_id"]], [float(clicks[a]) for a in arms], float(slate["expected_views"]),
                              slate_of[t["event_id"]]))
    if not p_click:
        msg = f"truth {where} holds no record of the experiment's views"
        raise DataError(msg)
    if not found:
        return p_click, None
    found.sort(key=lambda s: s[0])
    return p_click, Truth(np.array([s[0] for s in found], dtype=np.int64), np.array([s[1] for s in found]),
                          np.array([s[2] for s in found]), np.array([s[3] for s in found], dtype=np.int64))
