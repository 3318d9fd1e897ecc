"""Per-entity sawtooth counts kept as window tiles, with packed integer counters.

Every entity (a user, a user x category pair, an item) keeps

* the counts of each tumbling window it had events in (``wins``: window start -> counts),
  folded into hour tiles (``hours``) once no fine-grained horizon needs the minutes;
* per horizon h, a running total over the tiles with start >= ``lo[h]``.

A query for an event at time t subtracts the few tiles between ``lo[h]`` and the
horizon's sawtooth start ``floor((t - length) / hop) * hop``; most queries need no work at
all (``fast_until``). State is bounded: tiles older than every horizon are dropped, and
entities without events for longer than the retention are evicted.

Counts are packed into Python ints: the 4 event-type counts of a window are 32-bit fields
of one int (128 bits), and a horizon vector of H horizons is H such groups (H * 128 bits).
Counting an event is one integer addition, a vector is immutable (no copy), and
:func:`unpack` turns a batch of vectors into a numpy array at once.

>>> pack_window(1, 2, 0, 0) == INC_WINDOW[0] + 2 * INC_WINDOW[1]
True
>>> unpack([replicate(pack_window(3, 1, 0, 0), 2)], 2).tolist()
[[3, 1, 0, 0, 3, 1, 0, 0]]
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np

from features.spec import Horizon

FIELD_BITS = 32
GROUP_BITS = 4 * FIELD_BITS  # one window / one horizon: views, clicks, add_carts, purchases
HOUR_MS = 3_600_000
#: counts of one event of type k, in a window group
INC_WINDOW = tuple(1 << (FIELD_BITS * k) for k in range(4))


def pack_window(views: int, clicks: int, add_carts: int, purchases: int) -> int:
    """Pack 4 counts into one window group."""
    return views | clicks << FIELD_BITS | add_carts << 2 * FIELD_BITS | purchases << 3 * FIELD_BITS


def unpack_window(w: int) -> tuple[int, int, int, int]:
    """The 4 counts of a window group.

    >>> unpack_window(pack_window(5, 3, 2, 1))
    (5, 3, 2, 1)
    """
    m = (1 << FIELD_BITS) - 1
    return w & m, w >> FIELD_BITS & m, w >> 2 * FIELD_BITS & m, w >> 3 * FIELD_BITS & m


def replicate(w: int, n_groups: int) -> int:
    """A window group repeated into every horizon group."""
    out = 0
    for h in range(n_groups):
        out |= w << (GROUP_BITS * h)
    return out


def unpack(vectors: Sequence[int], n_groups: int) -> np.ndarray:
    """Packed horizon vectors -> ``(B, 4 * n_groups)`` uint32 counts."""
    n_bytes = n_groups * GROUP_BITS // 8
    buf = b"".join(v.to_bytes(n_bytes, "little") for v in vectors)
    return np.frombuffer(buf, dtype="<u4").reshape(len(vectors), 4 * n_groups)


# Entity layout (a list, for speed): indices into it.
MAX_TS, FAST_UNTIL, TOTAL, WINS, HOURS, LO, RAW, BUCKET, FOLDED = range(9)


class TileTable:
    """Shared tile bookkeeping; see :class:`ArrivalTable` and :class:`ClosedWindowTable`."""

    def __init__(self, window_ms: int, horizons: Sequence[Horizon], lateness_ms: int, retention_ms: int):
        self.window_ms = window_ms
        self.horizons = tuple(horizons)
        self.lateness_ms = lateness_ms
        self.retention_ms = retention_ms
        self.n_groups = len(self.horizons)
        self.rep = replicate(1, self.n_groups)
        self.inc_all = tuple(inc * self.rep for inc in INC_WINDOW)
        self.entities: dict[str, list] = {}
        # hour -> keys whose newest event falls in that hour (eviction without scanning)
        self.buckets: dict[int, set[str]] = {}
        self._bucket_heap: list[int] = []
        # horizons whose hop is finer than an hour read minute windows; the others hour tiles
        self._fine = [i for i, h in enumerate(self.horizons) if h.hop_ms < HOUR_MS]

    def __len__(self) -> int:
        return len(self.entities)

    def _new(self, key: str, t: int, floor: int) -> list:
        """A new entity whose queries will all be at or after ``floor``."""
        lo = [h.start(floor) for h in self.horizons]
        e = [t, self._fast_until(lo), 0, {}, {}, lo, deque(), t // HOUR_MS, min(lo) - min(lo) % HOUR_MS]
        self.entities[key] = e
        self._bucket_add(key, e[BUCKET])
        return e

    def _fast_until(self, lo: list[int]) -> int:
        return min(lo[i] + h.hop_ms + h.length_ms for i, h in enumerate(self.horizons))

    def _bucket_add(self, key: str, hour: int) -> None:
        bucket = self.buckets.get(hour)
        if bucket is None:
            bucket = self.buckets[hour] = set()
            heapq.heappush(self._bucket_heap, hour)
        bucket.add(key)

    def _touch(self, key: str, e: list, t: int) -> None:
        hour = t // HOUR_MS
        if hour > e[BUCKET]:
            self.buckets[e[BUCKET]].discard(key)
            e[BUCKET] = hour
            self._bucket_add(key, hour)

    def tile_sum(self, e: list, start: int, end: int) -> int:
        """Packed sum of the entity's windows that start in ``[start, end)``."""
        wins, hours, w_ms = e[WINS], e[HOURS], self.window_ms
        if (end - start) // w_ms > 2 * (len(wins) + len(hours)) + 8:  # sparse: scan the tiles instead
            return sum(v for ws, v in wins.items() if start <= ws < end) + sum(
                v for hs, v in hours.items() if start <= hs < end
            )
        total = 0
        ws = start
        while ws < end:
            if ws % HOUR_MS == 0 and ws + HOUR_MS <= end and ws in hours:
                total += hours[ws]
                ws += HOUR_MS
                continue
            w = wins.get(ws)
            if w:
                total += w
            ws += w_ms
        return total

    def advance(self, e: list, t_floor: int) -> None:
        """Drop tiles no query at or after ``t_floor`` can need (permanent)."""
        lo = e[LO]
        total = e[TOTAL]
        for i, h in enumerate(self.horizons):
            new_lo = h.start(t_floor)
            if new_lo > lo[i]:
                total -= self.tile_sum(e, lo[i], new_lo) << (GROUP_BITS * i)
                lo[i] = new_lo
        e[TOTAL] = total
        e[FAST_UNTIL] = self._fast_until(lo)
        self._compact(e)

    def _compact(self, e: list) -> None:
        """Fold minute windows into hour tiles and delete tiles below every horizon.

        Runs its loops at most once per hour of event time per entity (``FOLDED``).
        """
        lo = e[LO]
        fine_from = min([lo[i] for i in self._fine] or lo)
        fold_before = fine_from - fine_from % HOUR_MS  # whole hours no fine horizon reads
        if fold_before <= e[FOLDED]:
            return
        e[FOLDED] = fold_before
        wins, hours = e[WINS], e[HOURS]
        keep_from = min(lo)
        for ws in [ws for ws in wins if ws < fold_before]:
            w = wins.pop(ws)
            if ws >= keep_from - HOUR_MS:
                hs = ws - ws % HOUR_MS
                hours[hs] = hours.get(hs, 0) + w
        for hs in [hs for hs in hours if hs + HOUR_MS <= keep_from]:
            del hours[hs]

    def query_starts(self, e: list, t: int, vec: int) -> int:
        """``vec`` minus the tiles between ``lo[h]`` and the sawtooth start for time t."""
        lo = e[LO]
        for i, h in enumerate(self.horizons):
            q = h.start(t)
            if q > lo[i]:
                vec -= self.tile_sum(e, lo[i], q) << (GROUP_BITS * i)
        return vec

    def evict(self, watermark: int) -> int:
        """Delete entities whose newest event is older than the retention; return how many."""
        evicted = 0
        limit_hour = (watermark - self.retention_ms) // HOUR_MS
        heap = self._bucket_heap
        while heap and heap[0] < limit_hour:
            hour = heapq.heappop(heap)
            for key in self.buckets.pop(hour, ()):
                del self.entities[key]
                evicted += 1
        return evicted

    def window_counts(self, key: str, ws: int) -> int:
        """Packed counts of one window of one entity (0 if none)."""
        e = self.entities.get(key)
        return 0 if e is None else e[WINS].get(ws, 0)


class ArrivalTable(TileTable):
    """Counts as of each event's arrival: users and user x category pairs.

    :meth:`observe` returns the entity's packed horizon vector before the event is counted:
    every earlier-accepted event of the entity with event time in ``[horizon start(t), t]``.
    Events arriving out of order (at most the allowed lateness behind the entity's newest)
    get exactly that too: earlier arrivals with a later event time are subtracted.

    With ``track_windows`` the table also remembers which windows each entity has, so
    :meth:`close_windows` can emit each tumbling window once when the watermark passes it.
    """

    def __init__(self, window_ms: int, horizons: Sequence[Horizon], lateness_ms: int, retention_ms: int,
                 track_windows: bool = False):
        super().__init__(window_ms, horizons, lateness_ms, retention_ms)
        self.registry: dict[int, list[str]] | None = {} if track_windows else None
        self._registry_heap: list[int] = []

    def observe(self, key: str, t: int, k: int) -> int:
        """Count an event of type index ``k`` at ``t``; return the vector before it."""
        e = self.entities.get(key)
        if e is None:
            e = self._new(key, t, t - self.lateness_ms)
        if t >= e[MAX_TS]:
            vec = e[TOTAL] if t < e[FAST_UNTIL] else self._slow(e, t, t)
            e[MAX_TS] = t
        else:
            vec = self._slow(e, t, e[MAX_TS])
        w_ms = self.window_ms
        ws = t - t % w_ms
        wins = e[WINS]
        w = wins.get(ws)
        if w is None:
            wins[ws] = INC_WINDOW[k]
            if self.registry is not None:
                keys = self.registry.get(ws)
                if keys is None:
                    keys = self.registry[ws] = []
                    heapq.heappush(self._registry_heap, ws)
                keys.append(key)
        else:
            wins[ws] = w + INC_WINDOW[k]
        e[TOTAL] += self.inc_all[k]
        raw = e[RAW]
        raw.append(t << 2 | k)
        limit = (e[MAX_TS] - self.lateness_ms) << 2
        while raw[0] < limit:
            raw.popleft()
        if t // HOUR_MS > e[BUCKET]:
            self._touch(key, e, t)
        return vec

    def _slow(self, e: list, t: int, newest: int) -> int:
        self.advance(e, newest - self.lateness_ms)
        vec = self.query_starts(e, t, e[TOTAL])
        if t < newest:
            for r in e[RAW]:
                if r >> 2 > t:
                    vec -= self.inc_all[r & 3]
        return vec

    def close_windows(self, watermark: int) -> Iterator[tuple[str, int, int]]:
        """Yield ``(key, window_start, packed counts)`` for windows that end <= watermark."""
        if self.registry is None:
            return
        heap, w_ms = self._registry_heap, self.window_ms
        while heap and heap[0] + w_ms <= watermark:
            ws = heapq.heappop(heap)
            for key in self.registry.pop(ws):
                yield key, ws, self.entities[key][WINS][ws]

    def open_windows(self) -> int:
        return sum(len(v) for v in self.registry.values()) if self.registry else 0


class ClosedWindowTable(TileTable):
    """Counts over closed windows only: items, whose events come from every partition.

    An item window is final once every input partition's watermark has passed its end.
    Events are counted into their open window at once (:meth:`add`); windows enter the
    running totals when :meth:`close_windows` closes them; :meth:`query` returns the counts
    over closed windows in ``[horizon start(t), cut)``, which does not depend on the order
    in which partitions were read.
    """

    def __init__(self, window_ms: int, horizons: Sequence[Horizon], lateness_ms: int, retention_ms: int):
        super().__init__(window_ms, horizons, lateness_ms, retention_ms)
        self.registry: dict[int, list[str]] = {}
        self._registry_heap: list[int] = []
        self.closed_until = -(1 << 62)  # every window ending at or before this is closed
        self.t_floor = 0  # no future query has an event time below this (raised with the watermark)

    def add(self, key: str, t: int, k: int) -> None:
        """Count an event into its (open) window."""
        e = self.entities.get(key)
        if e is None:
            e = self._new(key, t, self.t_floor)
        elif t > e[MAX_TS]:
            e[MAX_TS] = t
            if t // HOUR_MS > e[BUCKET]:
                self._touch(key, e, t)
        ws = t - t % self.window_ms
        wins = e[WINS]
        w = wins.get(ws)
        if w is None:
            wins[ws] = INC_WINDOW[k]
            keys = self.registry.get(ws)
            if keys is None:
                keys = self.registry[ws] = []
                heapq.heappush(self._registry_heap, ws)
            keys.append(key)
        else:
            wins[ws] = w + INC_WINDOW[k]

    def close_windows(self, watermark: int) -> Iterator[tuple[str, int, int]]:
        """Close windows ending <= watermark: add them to the totals and yield them."""
        heap, w_ms, rep = self._registry_heap, self.window_ms, self.rep
        while heap and heap[0] + w_ms <= watermark:
            ws = heapq.heappop(heap)
            for key in self.registry.pop(ws):
                e = self.entities[key]
                w = e[WINS][ws]
                e[TOTAL] += w * rep
                yield key, ws, w
        boundary = watermark - watermark % w_ms
        if boundary > self.closed_until:
            self.closed_until = boundary

    def query(self, key: str, t: int, cut: int) -> int:
        """Closed-window counts for an event at ``t``: windows in [horizon start, cut)."""
        if cut > self.closed_until:
            msg = f"item windows before {cut} are not all closed yet (closed until {self.closed_until})"
            raise RuntimeError(msg)
        e = self.entities[key]
        if self.t_floor >= e[FAST_UNTIL]:
            self.advance(e, self.t_floor)
        vec = e[TOTAL]
        # closed windows at or after the cut are in the totals but not in this event's view
        hi = min(self.closed_until, e[MAX_TS] + 1)
        if cut < hi:
            vec -= self.tile_sum(e, cut, hi) * self.rep
        if t >= e[FAST_UNTIL]:
            vec = self.query_starts(e, t, vec)
        return vec
