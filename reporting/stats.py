"""The exploration's statistics: counters that stay small however many events pass.

Memory, by what it grows with (nothing is kept per event):

* per user: one event count (a dict entry, ~100 bytes); per item: a count, a view count, and
  the category and price it was first seen with (~250 bytes). A million users and a million
  items cost a few hundred MB; the default world (10k users, 5k items) a few MB;
* per open session: five integers, for sessions that had an event in the last
  :data:`SESSION_IDLE_MS` of event time *or* in the last :data:`SESSION_IDLE_RECORDS` records
  (so the input's order does not split them); a closed session only adds to two histograms;
* fixed: event types, 24 hours x countries, segments x categories, histogram bins.

Duplicates (an at-least-once producer's retries) are counted as they come: telling them apart
would need every event id.

:meth:`ExploreStats.summary` turns the counters into the numbers the plots draw
(``reporting/plots.py`` reads nothing else), so the JSON summary and the PNGs always agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from events.schema import CATEGORIES, COUNTRIES, EVENT_TYPES, Rejection
from producers.synthetic.world import SEGMENTS, UTC_OFFSET_H, top_share
from reporting.sources import Row

SESSION_IDLE_MS: Final = 30 * 60 * 1000  # a session idle this long in event time ...
SESSION_IDLE_RECORDS: Final = 100_000  # ... and for this many records is finished
SWEEP_EVERY: Final = 50_000  # events between looks for finished sessions
USER_TOP: Final = 0.2  # "the top 20% of users"
ITEM_TOP: Final = 0.1  # "the top 10% of items"
FIT_MIN_COUNT: Final = 5  # the rank fit uses users with at least this many events (below, counts are too coarse)
CURVE_POINTS: Final = 400  # points of a rank curve kept for the plot (log-spaced ranks)
SESSION_EVENTS_MAX: Final = 50  # events-per-session histogram: 1..50, then one bin for more
DURATION_EDGES_S: Final = (0, 1, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, math.inf)
OFFSETS_MS: Final = {c: h * 3_600_000 for c, h in zip(COUNTRIES, UTC_OFFSET_H, strict=True)}
HOUR_MS: Final = 3_600_000
VIEW, CLICK, CART, PURCHASE = range(4)  # EVENT_TYPES order
assert EVENT_TYPES == ("view", "click", "add_cart", "purchase")


class ExploreStats:
    """Accumulates chunks of rows; :meth:`summary` gives every figure of the exploration.

    ``segments`` (optional) is the generator's latent segment of user ``u{n}`` at index n
    (indices into :data:`producers.synthetic.world.SEGMENTS`); with it, events are counted by
    segment x category.
    """

    def __init__(self, segments: Sequence[int] | None = None):
        self.types = [0] * len(EVENT_TYPES)
        self.users: dict[str, int] = {}
        self.items: dict[str, list[Any]] = {}  # item -> [events, views, category, price]
        self.utc_hour = [0] * 24
        self.local_hour = [0] * 24
        self.no_country = 0  # events whose country has no known UTC offset
        self.segments = list(segments) if segments is not None else None
        self.segment_category = np.zeros((len(SEGMENTS), len(CATEGORIES)), dtype=np.int64)
        self.outside_world = 0  # events of users the world has no segment for
        self.sessions: dict[str, list[int]] = {}  # open: session -> [events, views, first ts, last ts, seen at]
        self.session_events: dict[int, int] = {}  # closed sessions by events (capped)
        self.session_views: dict[int, int] = {}  # closed sessions by views (capped)
        self.session_durations = np.zeros(len(DURATION_EDGES_S) - 1, dtype=np.int64)
        self.session_count = 0
        self.session_event_sum = 0
        self.no_session = 0
        self.refused: dict[str, int] = {}
        self.refused_example: dict[str, str] = {}
        self.skipped = 0  # valid events of other producer runs
        self.events = 0
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.newest_ts = -(2**62)
        self._next_sweep = SWEEP_EVERY

    def refuse(self, rejections: Sequence[Rejection]) -> None:
        for r in rejections:
            self.refused[r.reason] = self.refused.get(r.reason, 0) + 1
            self.refused_example.setdefault(r.reason, r.detail)

    def add(self, rows: Sequence[Row]) -> None:
        """Count a chunk of rows."""
        types, users, items, sessions = self.types, self.users, self.items, self.sessions
        utc, local, offsets = self.utc_hour, self.local_hour, OFFSETS_MS
        segments, seg_cat = self.segments, self.segment_category
        n_world = len(segments) if segments is not None else 0
        cat_index = {c: i for i, c in enumerate(CATEGORIES)}
        n = self.events
        newest = self.newest_ts
        for kind, ts, user, item, session, category, price, country in rows:
            n += 1
            types[kind] += 1
            users[user] = users.get(user, 0) + 1
            entry = items.get(item)
            if entry is None:
                items[item] = [1, int(kind == VIEW), category, price]
            else:
                entry[0] += 1
                if kind == VIEW:
                    entry[1] += 1
            utc[(ts // HOUR_MS) % 24] += 1
            offset = offsets.get(country) if country is not None else None
            if offset is None:
                self.no_country += 1
            else:
                local[((ts + offset) // HOUR_MS) % 24] += 1
            if segments is not None:
                number = int(user[1:]) if user[:1] == "u" and user[1:].isdigit() else -1
                c = cat_index.get(category) if category is not None else None
                if 0 <= number < n_world and c is not None:
                    seg_cat[segments[number], c] += 1
                else:
                    self.outside_world += 1
            if session is None:
                self.no_session += 1
            else:
                s = sessions.get(session)
                if s is None:
                    sessions[session] = [1, int(kind == VIEW), ts, ts, n]
                else:
                    s[0] += 1
                    s[1] += kind == VIEW
                    s[2] = min(s[2], ts)
                    s[3] = max(s[3], ts)
                    s[4] = n
            newest = max(newest, ts)
        if rows:
            first = min(r[1] for r in rows)
            self.first_ts = first if self.first_ts is None else min(self.first_ts, first)
            self.last_ts = newest if self.last_ts is None else max(self.last_ts, newest)
        self.events = n
        self.newest_ts = newest
        if n >= self._next_sweep:
            self._close_sessions(final=False)
            self._next_sweep = n + SWEEP_EVERY

    def _close_sessions(self, final: bool) -> None:
        """Fold finished sessions (all of them when ``final``) into the histograms."""
        idle_ts, idle_n = self.newest_ts - SESSION_IDLE_MS, self.events - SESSION_IDLE_RECORDS
        done = [k for k, s in self.sessions.items() if final or (s[3] < idle_ts and s[4] < idle_n)]
        if not done:
            return
        closed = np.array([self.sessions.pop(k)[:4] for k in done], dtype=np.int64)  # (S, 4)
        for hist, column in ((self.session_events, 0), (self.session_views, 1)):
            values, counts = np.unique(np.minimum(closed[:, column], SESSION_EVENTS_MAX + 1), return_counts=True)
            for v, c in zip(values.tolist(), counts.tolist(), strict=True):
                hist[v] = hist.get(v, 0) + c
        seconds = (closed[:, 3] - closed[:, 2]) / 1000.0
        self.session_durations += np.histogram(seconds, bins=np.array(DURATION_EDGES_S))[0]
        self.session_count += len(closed)
        self.session_event_sum += int(closed[:, 0].sum())

    def finish(self) -> None:
        """Close every open session (the input has ended)."""
        self._close_sessions(final=True)

    def progress(self) -> str:
        """What the progress line says about the counts."""
        refused = sum(self.refused.values())
        return (f"{self.events:,} events, {refused:,} refused, {self.skipped:,} skipped, {len(self.users):,} users, "
                f"{len(self.items):,} items, {len(self.sessions):,} open sessions")

    def summary(self, world: Any = None, world_note: str | None = None) -> dict[str, Any]:
        """Every figure of the exploration (the plots draw these numbers and nothing else).

        ``world``: the generator's world the ``segments`` came from, to compare the items it
        holds with the data's (``None`` with ``world_note`` saying why there is none).
        """
        user_counts = np.fromiter(self.users.values(), dtype=np.int64, count=len(self.users))
        item_counts = np.fromiter((e[0] for e in self.items.values()), dtype=np.int64, count=len(self.items))
        item_views = np.fromiter((e[1] for e in self.items.values()), dtype=np.int64, count=len(self.items))
        skipped: dict[str, str] = {}
        out: dict[str, Any] = {
            "events": self.events,
            "refused": dict(sorted(self.refused.items())),
            "refused_examples": dict(sorted(self.refused_example.items())),
            "skipped_other_runs": self.skipped,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "users": len(self.users),
            "items": len(self.items),
            "event_types": self._event_types(),
            "funnel": self._funnel(),
        }
        out["users_by_events"] = _user_histogram(user_counts)
        out["user_rank"] = _user_rank(user_counts)
        out["item_popularity"] = _item_popularity(item_counts, item_views, has_views=self.types[VIEW] > 0)
        out["hours"] = self._hours(skipped)
        out["price_by_category"] = self._prices(skipped)
        out["category_segment"] = self._category_segment(world, world_note, skipped)
        out["sessions"] = self._sessions(skipped)
        out["skipped"] = skipped
        return out

    def _event_types(self) -> dict[str, Any]:
        total = max(self.events, 1)
        return {"counts": dict(zip(EVENT_TYPES, self.types, strict=True)),
                "shares": {t: round(n / total, 6) for t, n in zip(EVENT_TYPES, self.types, strict=True)}}

    def _funnel(self) -> dict[str, Any]:
        v, c, a, p = self.types
        return {
            "stages": dict(zip(("view", "click", "add_cart", "purchase"), self.types, strict=True)),
            "click_per_view": _rate(c, v), "cart_per_click": _rate(a, c), "purchase_per_cart": _rate(p, a),
            "purchase_per_view": _rate(p, v), "purchase_per_click": _rate(p, c),
        }

    def _hours(self, skipped: dict[str, str]) -> dict[str, Any]:
        local = sum(self.local_hour)
        if not local:
            skipped["local_hour"] = "no event has a country with a known UTC offset: activity is by UTC hour only"
        return {"utc": list(self.utc_hour), "local": list(self.local_hour) if local else None,
                "events_without_country": self.no_country,
                "offsets_h": dict(zip(COUNTRIES, UTC_OFFSET_H, strict=True))}

    def _prices(self, skipped: dict[str, str]) -> dict[str, Any] | None:
        by_cat: dict[str, list[float]] = {}
        for _, _, category, price in self.items.values():
            if category is not None and price is not None:
                by_cat.setdefault(category, []).append(price)
        if not by_cat:
            skipped["price_by_category"] = "the input has no item category and price"
            return None
        order = [c for c in CATEGORIES if c in by_cat] + sorted(set(by_cat) - set(CATEGORIES))
        out = {}
        for c in order:
            p = np.array(by_cat[c])
            q = np.percentile(p, [5, 25, 50, 75, 95])
            out[c] = {"items": len(p), "mean": _r(p.mean()), "min": _r(p.min()), "p5": _r(q[0]), "p25": _r(q[1]),
                      "median": _r(q[2]), "p75": _r(q[3]), "p95": _r(q[4]), "max": _r(p.max())}
        return out

    def _category_segment(self, world: Any, note: str | None, skipped: dict[str, str]) -> dict[str, Any] | None:
        if self.segments is None:
            skipped["category_segment"] = note or "the users' latent segments are unknown (real data, or no --generator-seed)"
            return None
        mismatch = _world_mismatch(world, self.items) if world is not None else None
        if mismatch is not None:
            skipped["category_segment"] = mismatch
            return None
        counts = self.segment_category
        rows = counts.sum(axis=1, keepdims=True)
        shares = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
        diagonal = float(np.trace(counts) / counts.sum()) if counts.sum() else None
        return {"segments": list(SEGMENTS), "categories": list(CATEGORIES), "counts": counts.tolist(),
                "row_shares": np.round(shares, 6).tolist(), "own_category_share": _r(diagonal),
                "events_outside_world": self.outside_world,
                "note": f"segment k prefers category k ({', '.join(f'{s}: {c}' for s, c in zip(SEGMENTS, CATEGORIES))})"}

    def _sessions(self, skipped: dict[str, str]) -> dict[str, Any] | None:
        if not self.session_count:
            skipped["sessions"] = "no event has a session id"
            return None
        labels = [str(k) for k in range(1, SESSION_EVENTS_MAX + 1)] + [f">{SESSION_EVENTS_MAX}"]

        def hist(d: dict[int, int], start: int) -> dict[str, Any]:
            keys = list(range(start, SESSION_EVENTS_MAX + 2))
            counts = [d.get(k, 0) for k in keys]
            total = sum(counts)
            cum = np.cumsum(counts)
            median = keys[int(np.searchsorted(cum, total / 2))]
            p90 = keys[int(np.searchsorted(cum, 0.9 * total))]
            return {"labels": (["0"] if start == 0 else []) + labels, "counts": counts,
                    "median": median, "p90": p90}

        durations = self.session_durations.tolist()
        return {
            "sessions": self.session_count,
            "mean_events": _r(self.session_event_sum / self.session_count),
            "events": hist(self.session_events, 1),
            "views": hist(self.session_views, 0) if self.types[VIEW] else None,
            "duration_edges_s": [e if math.isfinite(e) else None for e in DURATION_EDGES_S],
            "duration_counts": durations,
            "events_without_session": self.no_session,
            "rule": f"a session is its session id; one idle {SESSION_IDLE_MS // 60_000} minutes is finished",
        }


def _rate(a: int, b: int) -> float | None:
    return round(a / b, 6) if b else None


def _r(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def _thin_ranks(n: int) -> np.ndarray:
    """Up to CURVE_POINTS log-spaced ranks 1..n (1-based, always n)."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate([np.geomspace(1, n, CURVE_POINTS).round().astype(np.int64), [n]]))


def _user_histogram(counts: np.ndarray) -> dict[str, Any]:
    """Users by their number of events, in log-spaced bins (events 1, 2, 3-4, 5-8, ...)."""
    if not len(counts):
        return {"edges": [], "counts": [], "mean": None, "median": None, "max": None}
    top = int(counts.max())
    edges = [1]
    while edges[-1] <= top:
        edges.append(edges[-1] * 2)
    hist = np.histogram(counts, bins=np.array(edges))[0]
    return {"edges": edges, "counts": hist.tolist(), "mean": _r(counts.mean()), "median": _r(float(np.median(counts))),
            "max": top, "bins": "[edge_i, edge_i+1): events per user"}


def _user_rank(counts: np.ndarray) -> dict[str, Any]:
    """Events per user by rank (log-log), the fitted power law and the top 20% share."""
    ordered = np.sort(counts)[::-1]
    n = len(ordered)
    ranks = _thin_ranks(n)
    out: dict[str, Any] = {"ranks": ranks.tolist(), "counts": ordered[ranks - 1].tolist() if n else [],
                           "top": USER_TOP, "top_users": math.ceil(USER_TOP * n - 1e-9) if n else 0,
                           "top_share": _r(top_share(ordered, USER_TOP)) if n else None}
    fit = ordered[ordered >= FIT_MIN_COUNT]
    if len(fit) >= 10:
        slope, intercept = np.polyfit(np.log(np.arange(1, len(fit) + 1)), np.log(fit), 1)
        out["fit"] = {"exponent": _r(-slope), "scale": _r(math.exp(intercept)), "pareto_alpha": _r(-1 / slope) if slope else None,
                      "users": len(fit), "min_events": FIT_MIN_COUNT,
                      "model": "events(rank) = scale * rank ** -exponent, least squares on log-log; "
                               "pareto_alpha = 1 / exponent is the tail index of P(events > x)"}
    else:
        out["fit"] = None
    return out


def _item_popularity(counts: np.ndarray, views: np.ndarray, has_views: bool) -> dict[str, Any]:
    """Events per item by rank (the long tail) and the top 10% items' shares."""
    ordered = np.sort(counts)[::-1]
    n = len(ordered)
    ranks = _thin_ranks(n)
    return {"ranks": ranks.tolist(), "counts": ordered[ranks - 1].tolist() if n else [], "top": ITEM_TOP,
            "top_items": math.ceil(ITEM_TOP * n - 1e-9) if n else 0,
            "top_share_events": _r(top_share(ordered, ITEM_TOP)) if n else None,
            "top_share_views": _r(top_share(views, ITEM_TOP)) if n and has_views else None,
            "items_with_one_event": int((ordered == 1).sum())}


def _world_mismatch(world: Any, items: dict[str, list[Any]]) -> str | None:
    """Why the data is not from this world (items' category or price differ), or None if it is."""
    n_items = len(world.items.price)
    checked = bad = 0
    for item, (_, _, category, price) in items.items():
        if item[:1] != "i" or not item[1:].isdigit() or int(item[1:]) >= n_items:
            bad += 1
            continue
        n = int(item[1:])
        checked += 1
        if category != CATEGORIES[world.items.category[n]] or price is None or abs(price - world.items.price[n]) > 0.005:
            bad += 1
    if bad > 0.01 * max(len(items), 1):
        return (f"{bad:,} of {len(items):,} items differ from the generator's world in id, category or price: "
                "pass the producer's --seed (and default world parameters) as --generator-seed")
    return None
