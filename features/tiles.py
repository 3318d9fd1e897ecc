"""Per-entity sawtooth counts kept as window tiles, with packed integer counters.

Every entity (a user, a user x category pair, an item) keeps

* the counts of each tumbling window it had events in, as a list sorted by window start
  (minute tiles), folded into hour tiles once no fine-grained horizon reads them;
* per horizon h, a running total over the tiles from a cursor on (``lo[h]`` is the first
  window start the total covers).

A query for an event at time t subtracts the few tiles between ``lo[h]`` and the
horizon's sawtooth start ``floor((t - length) / hop) * hop``; most queries need no work at
all (``t < fast_until``). Cursors only move forward, so the work is proportional to the
tiles that leave a horizon. State is bounded: tiles older than every horizon are dropped,
and entities without events for longer than the retention are evicted.

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
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from operator import add
from typing import ClassVar, Final

import numpy as np

from features.spec import Horizon

FIELD_BITS = 32
GROUP_BITS = 4 * FIELD_BITS  # one window / one horizon: views, clicks, add_carts, purchases
HOUR_MS = 3_600_000
NO_WINDOW = -(1 << 62)
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
    buf = b"".join([v.to_bytes(n_bytes, "little") for v in vectors])
    return np.frombuffer(buf, dtype="<u4").reshape(len(vectors), 4 * n_groups)


RAW_MIN_CAP = 64
#: An entity's attributes: its ``__slots__`` as plain Python, its snapshot fields either way.
ENTITY_FIELDS: Final = ("max_ts", "fast_from", "fast_until", "total", "hidden", "cur_ws", "cur_w", "min_ws", "min_c",
                        "hour_ws", "hour_c", "cursor", "lo", "raw", "raw_cap", "bucket", "open")


class Entity:
    """One entity's tiles and running totals (``__slots__``: attribute access is the hot path)."""

    __slots__ = ENTITY_FIELDS

    def __init__(self, t: int, lo: list[int], fast_until: int, items: bool):
        self.max_ts = t  # newest event time
        self.fast_from = t  # items: queries in [fast_from, fast_until) reuse ``hidden``
        self.fast_until = fast_until  # queries before this need no tile work
        # Packed counts per horizon. Items: ``total`` covers the tiles from each horizon's cursor
        # on. Arrival tables split that into ``total`` (what an in-order query at the current
        # sawtooth starts sees) plus ``hidden`` (tiles kept only for out-of-order queries).
        self.total = 0
        self.hidden = 0
        # Current window: arrival tables keep it out of the tile list, items out of ``open``.
        self.cur_ws = NO_WINDOW
        self.cur_w = 0
        self.min_ws: list[int] = []  # minute tiles, sorted by start
        self.min_c: list[int] = []
        self.hour_ws: list[int] = []  # hour tiles, sorted by start
        self.hour_c: list[int] = []
        self.cursor = [0] * len(lo)  # per horizon: first tile in its total
        self.lo = lo  # per horizon: first window start its total covers
        self.raw: list[int] = []  # recent events as (ts << 2 | type), for out-of-order queries
        self.raw_cap = RAW_MIN_CAP
        self.bucket = t // HOUR_MS  # eviction bucket: hour of the newest event
        self.open: dict[int, int] | None = {} if items else None  # items: open windows but the current one

    def __reduce__(self) -> tuple[type[Entity], tuple[int, list[int], int, bool], dict[str, object]]:
        # Explicit, so that the compiled class (which has no __dict__) pickles like the plain one.
        return Entity, (self.max_ts, self.lo, self.fast_until, self.open is not None), {
            name: getattr(self, name) for name in ENTITY_FIELDS}

    def __setstate__(self, state: dict[str, object] | tuple[None, dict[str, object]]) -> None:
        # Pickled as a plain slotted class (snapshots from before the compiled build): (None, slots).
        values = state[1] if isinstance(state, tuple) else state
        for name in ENTITY_FIELDS:
            setattr(self, name, values[name])


class TileTable:
    """Shared tile bookkeeping; see :class:`ArrivalTable` and :class:`ClosedWindowTable`.

    Horizons whose hop is finer than an hour read minute tiles; the others read hour tiles
    (and every minute tile, all of which are recent enough to be inside them).
    """

    def __init__(self, window_ms: int, horizons: Sequence[Horizon], lateness_ms: int, retention_ms: int):
        self.window_ms = window_ms
        self.horizons = tuple(horizons)
        self.lateness_ms = lateness_ms
        self.retention_ms = retention_ms
        self.n_groups = len(self.horizons)
        self.rep = replicate(1, self.n_groups)
        self.inc_all = tuple(inc * self.rep for inc in INC_WINDOW)
        self.slot_bits = self.n_groups * GROUP_BITS  # one slot's block: its counts for every horizon
        self.mask = (1 << self.slot_bits) - 1
        self.entities: dict[str, Entity] = {}
        self.fine = tuple(i for i, h in enumerate(self.horizons) if h.hop_ms < HOUR_MS)
        self.coarse = tuple(i for i, h in enumerate(self.horizons) if h.hop_ms >= HOUR_MS)
        # per horizon: (index, length, hop, reads minute tiles, bit shift of its group)
        self._hz = tuple((i, h.length_ms, h.hop_ms, i in self.fine, GROUP_BITS * i) for i, h in enumerate(self.horizons))
        self._extent = tuple(h.hop_ms + h.length_ms for h in self.horizons)  # lo + extent = fast limit
        # hour -> keys whose newest event falls in that hour (eviction without scanning)
        self.buckets: dict[int, set[str]] = {}
        self._bucket_heap: list[int] = []

    def __len__(self) -> int:
        return len(self.entities)

    def __reduce__(self) -> tuple[type[TileTable], tuple[object, ...], object]:
        # Explicit, so that the compiled classes (built only through __init__) unpickle too.
        return type(self), self._init_args(), self.__getstate__()

    def _init_args(self) -> tuple[object, ...]:
        return self.window_ms, self.horizons, self.lateness_ms, self.retention_ms

    def _new(self, key: str, t: int, floor: int) -> Entity:
        """A new entity whose queries will all be at or after ``floor``."""
        lo = [h.start(floor) for h in self.horizons]
        items = isinstance(self, ClosedWindowTable)
        e = Entity(t, lo, t if items else self._fast_until(lo), items)  # items: first query syncs
        self.entities[key] = e
        self._bucket_add(key, e.bucket)
        return e

    def _fast_until(self, lo: list[int]) -> int:
        """First event time whose query would need a horizon start beyond ``lo``."""
        return min(map(add, lo, self._extent))

    def _bucket_add(self, key: str, hour: int) -> None:
        bucket = self.buckets.get(hour)
        if bucket is None:
            bucket = self.buckets[hour] = set()
            heapq.heappush(self._bucket_heap, hour)
        bucket.add(key)

    def _touch(self, key: str, e: Entity, t: int) -> None:
        hour = t // HOUR_MS
        if hour > e.bucket:
            self.buckets[e.bucket].discard(key)
            e.bucket = hour
            self._bucket_add(key, hour)

    def _tiles(self, e: Entity, i: int) -> tuple[list[int], list[int]]:
        return (e.min_ws, e.min_c) if i in self.fine else (e.hour_ws, e.hour_c)

    def sync(self, e: Entity, total: int, t_floor: int, t: int) -> tuple[int, int]:
        """Move horizon starts up to ``t_floor`` for good; return ``(total, hidden)``.

        ``total`` is the entity's packed total over the tiles from each horizon's start
        (``lo``) on; the returned one is after the move. ``hidden`` is the part of it
        between ``lo`` and the sawtooth starts of a query at ``t`` (>= ``t_floor``): a query
        at ``t`` sees ``total - hidden``.
        """
        lo, cursor = e.lo, e.cursor
        hidden = 0
        moved = False
        for i, length, hop, fine, shift in self._hz:
            if fine:
                starts, counts = e.min_ws, e.min_c
            else:
                starts, counts = e.hour_ws, e.hour_c
            j, n = cursor[i], len(starts)
            new_lo = (t_floor - length) // hop * hop
            if new_lo > lo[i]:
                lo[i] = new_lo
                out = 0
                while j < n and starts[j] < new_lo:
                    out += counts[j]
                    j += 1
                if out:
                    total -= out << shift
                cursor[i] = j
                moved = True
            q = (t - length) // hop * hop
            if q > lo[i]:
                out = 0
                while j < n and starts[j] < q:
                    out += counts[j]
                    j += 1
                hidden += out << shift
        if moved:
            self._compact(e)
        return total, hidden

    def _starts_until(self, t: int) -> int:
        """First event time after ``t`` whose sawtooth starts differ from ``t``'s."""
        return min((t - length) // hop * hop + extent for (_, length, hop, _, _), extent in zip(self._hz, self._extent))

    def _starts_from(self, t: int) -> int:
        """First event time with the same sawtooth starts as ``t``."""
        return max((t - length) // hop * hop + length for (_, length, hop, _, _) in self._hz)

    def _compact(self, e: Entity) -> None:
        """Fold minute tiles no fine horizon reads into hour tiles; drop hour tiles no one reads."""
        cursor = e.cursor
        min_ws, min_c = e.min_ws, e.min_c
        if self.fine:
            first_needed = min(cursor[i] for i in self.fine)
            lo_fine = min(e.lo[i] for i in self.fine)
            fold_before = lo_fine - lo_fine % HOUR_MS
            n = 0
            while n < first_needed and min_ws[n] < fold_before:
                n += 1
        else:
            n = len(min_ws)
        if n:
            if self.coarse:  # without an hour-hop horizon, folded minutes are simply gone
                hour_ws, hour_c = e.hour_ws, e.hour_c
                for ws, c in zip(min_ws[:n], min_c[:n]):
                    hs = ws - ws % HOUR_MS
                    if hour_ws and hour_ws[-1] == hs:
                        hour_c[-1] += c
                    else:
                        hour_ws.append(hs)
                        hour_c.append(c)
            del min_ws[:n], min_c[:n]
            for i in self.fine:
                cursor[i] -= n
        if self.coarse:
            drop = min(cursor[i] for i in self.coarse)
            if drop:
                del e.hour_ws[:drop], e.hour_c[:drop]
                for i in self.coarse:
                    cursor[i] -= drop

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


def _find_window(e: Entity, ws: int) -> int:
    """Index of minute tile ``ws`` in the entity's sorted list, or -1."""
    starts = e.min_ws
    j = bisect_left(starts, ws)
    return j if j < len(starts) and starts[j] == ws else -1


class ArrivalTable(TileTable):
    """Counts as of each event's arrival: users, with a breakdown by a sub-key (category).

    :meth:`observe` returns the entity's packed vector before the event is counted: every
    earlier-accepted event of the entity with event time in ``[horizon start(t), t]``.
    Events arriving out of order (at most the allowed lateness behind the entity's newest)
    get exactly that too: earlier arrivals with a later event time are subtracted.

    Each event also counts in a *slot* (1, 2, ...: the caller maps categories to slots):
    slot 0 holds the entity's own counts, slot s the counts of its events in slot s, in
    the same packed layout one slot block higher. So user x category counts cost no extra
    entity and no extra addition; :meth:`slot_vector` reads them out.

    With ``track_windows`` the table also remembers which windows each entity has, so
    :meth:`close_windows` can emit each tumbling window once when the watermark passes it.
    """

    MAX_SLOT: ClassVar[int] = 1023  # slots are packed into 10 bits of the out-of-order buffer

    def __init__(self, window_ms: int, horizons: Sequence[Horizon], lateness_ms: int, retention_ms: int,
                 track_windows: bool = False):
        super().__init__(window_ms, horizons, lateness_ms, retention_ms)
        self.registry: dict[int, list[str]] | None = {} if track_windows else None
        self._registry_heap: list[int] = []
        self._incs: list[tuple[tuple[int, int], ...]] = []  # per slot, per type: (window inc, totals inc)
        self.add_slots(1)

    def _init_args(self) -> tuple[object, ...]:
        return self.window_ms, self.horizons, self.lateness_ms, self.retention_ms, self.registry is not None

    def add_slots(self, up_to: int) -> None:
        """Make slots up to ``up_to`` usable (call before observing an event in a new slot)."""
        if up_to > self.MAX_SLOT:
            msg = f"slot {up_to} is above the maximum {self.MAX_SLOT}"
            raise ValueError(msg)
        for slot in range(len(self._incs), up_to + 1):
            shift = slot * self.slot_bits
            self._incs.append(tuple(
                (INC_WINDOW[k] | (INC_WINDOW[k] << shift if slot else 0),
                 self.inc_all[k] | (self.inc_all[k] << shift if slot else 0))
                for k in range(4)
            ))

    def slot_vector(self, vec: int, slot: int) -> int:
        """The counts of one slot (0: the entity's own) in plain horizon layout."""
        return (vec >> (slot * self.slot_bits)) & self.mask

    def observe(self, key: str, t: int, k: int, slot: int = 0) -> int:
        """Count an event of type index ``k`` (and slot) at ``t``; return the vector before it."""
        e = self.entities.get(key)
        if e is not None and e.max_ts <= t < e.fast_until:
            w_inc, a_inc = self._incs[slot][k]
            vec = e.total
            e.total = vec + a_inc  # in order, same sawtooth starts: one addition
            e.max_ts = t
            if t - e.cur_ws < self.window_ms:
                e.cur_w += w_inc
            else:
                self._roll(key, e, t - t % self.window_ms, w_inc)
            raw = e.raw
            raw.append(t << 12 | slot << 2 | k)
            if len(raw) >= e.raw_cap:
                self._trim(e)
            return vec
        return self._observe_slow(key, e, t, k, slot)

    def _observe_slow(self, key: str, e: Entity | None, t: int, k: int, slot: int) -> int:
        w_inc, a_inc = self._incs[slot][k]
        if e is None:
            e = self._new(key, t, t - self.lateness_ms)
        ws = t - t % self.window_ms
        if ws > e.cur_ws:
            # The current window joins the tiles first, so moving a horizon can drop it.
            self._roll(key, e, ws, 0)
        newest = max(e.max_ts, t)
        total, hidden = self.sync(e, e.total + e.hidden, newest - self.lateness_ms, newest)
        e.total, e.hidden = total - hidden, hidden
        e.fast_until = self._starts_until(newest)
        if newest // HOUR_MS > e.bucket:
            self._touch(key, e, newest)
        if t < e.max_ts:  # out of order: its own sawtooth starts, without later arrivals
            total, hidden = self.sync(e, total, newest - self.lateness_ms, t)
            vec = total - hidden
            incs = self._incs
            for r in e.raw:
                if r >> 12 > t:
                    vec -= incs[r >> 2 & 1023][r & 3][1]
        else:
            e.max_ts = t
            vec = e.total
        e.total += a_inc
        if ws == e.cur_ws:
            e.cur_w += w_inc
        else:  # out of order into an earlier window (within the lateness, so inside every horizon)
            self._add_earlier(key, e, ws, w_inc)
        e.raw.append(t << 12 | slot << 2 | k)
        self._trim(e)
        return vec

    def count(self, key: str, t: int, k: int) -> None:
        """Count an event of type index ``k`` at ``t`` into its window only (no vector).

        For runs in which no output reads a point-in-time vector: the entity then keeps its
        open windows only (close them with ``close_windows(..., keep=False)``), no horizon
        totals and no out-of-order buffer. ``fast_until`` is the next hour boundary here (the
        eviction bucket changes there). Do not mix with :meth:`observe` on one table.
        """
        e = self.entities.get(key)
        if e is not None and e.max_ts <= t < e.fast_until:
            e.max_ts = t
            if t - e.cur_ws < self.window_ms:
                e.cur_w += INC_WINDOW[k]
            else:
                self._roll(key, e, t - t % self.window_ms, INC_WINDOW[k])
            return
        if e is None:
            e = self._new(key, t, t - self.lateness_ms)
        if t > e.max_ts:
            e.max_ts = t
            if t // HOUR_MS > e.bucket:
                self._touch(key, e, t)
        e.fast_until = (e.bucket + 1) * HOUR_MS
        ws = t - t % self.window_ms
        if ws > e.cur_ws:
            self._roll(key, e, ws, INC_WINDOW[k])
        elif ws == e.cur_ws:
            e.cur_w += INC_WINDOW[k]
        else:  # out of order into an earlier, still open window
            self._add_earlier(key, e, ws, INC_WINDOW[k])

    def _add_earlier(self, key: str, e: Entity, ws: int, inc: int) -> None:
        """Count ``inc`` into window ``ws``, earlier than the current one (a tile, made if new)."""
        j = _find_window(e, ws)
        if j >= 0:
            e.min_c[j] += inc
        else:
            j = bisect_left(e.min_ws, ws)
            e.min_ws.insert(j, ws)
            e.min_c.insert(j, inc)
            self._register(key, ws)

    def _roll(self, key: str, e: Entity, ws: int, first: int) -> None:
        """Start window ``ws``; the finished current window joins the minute tiles."""
        if e.cur_ws != NO_WINDOW:
            e.min_ws.append(e.cur_ws)
            e.min_c.append(e.cur_w)
        e.cur_ws, e.cur_w = ws, first
        self._register(key, ws)

    def _register(self, key: str, ws: int) -> None:
        if self.registry is not None:
            keys = self.registry.get(ws)
            if keys is None:
                keys = self.registry[ws] = []
                heapq.heappush(self._registry_heap, ws)
            keys.append(key)

    def _trim(self, e: Entity) -> None:
        # Only events later than (newest - lateness) can ever be subtracted from a query.
        # The cap doubles with what must stay, so a busy entity trims in amortised O(1).
        limit = (e.max_ts - self.lateness_ms) << 12
        raw = e.raw
        if raw and raw[0] < limit:
            raw = e.raw = [r for r in raw if r >= limit]
        e.raw_cap = max(RAW_MIN_CAP, 2 * len(raw))

    def window_counts(self, key: str, ws: int) -> int:
        """Packed counts of one window of one entity, all slots (0 if none)."""
        e = self.entities.get(key)
        if e is None:
            return 0
        if e.cur_ws == ws:
            return e.cur_w
        j = _find_window(e, ws)
        return e.min_c[j] if j >= 0 else 0

    def close_windows(self, watermark: int, keep: bool = True) -> Iterator[tuple[str, int, int]]:
        """Yield ``(key, window_start, packed counts)`` for windows that end <= watermark.

        ``keep=False`` (tables fed by :meth:`count`): a closed window is also forgotten.
        """
        if self.registry is None:
            return
        heap, w_ms = self._registry_heap, self.window_ms
        while heap and heap[0] + w_ms <= watermark:
            ws = heapq.heappop(heap)
            for key in self.registry.pop(ws):
                if keep:
                    yield key, ws, self.window_counts(key, ws)
                    continue
                e = self.entities.get(key)
                if e is None:  # evicted since
                    yield key, ws, 0
                elif e.cur_ws == ws:
                    # No later event can fall into it (it is behind the watermark).
                    counts = e.cur_w
                    e.cur_ws, e.cur_w = NO_WINDOW, 0
                    yield key, ws, counts
                else:  # windows close in start order: it is the oldest tile
                    j = _find_window(e, ws)
                    counts = 0
                    if j >= 0:
                        counts = e.min_c[j]
                        del e.min_ws[j], e.min_c[j]
                    yield key, ws, counts

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
        self.closed_until = NO_WINDOW  # every window ending at or before this is closed
        self.t_floor = 0  # no future query has an event time below this (raised with the watermark)

    def add(self, key: str, t: int, k: int) -> None:
        """Count an event into its (open) window."""
        e = self.entities.get(key)
        if e is None:
            e = self._new(key, t, self.t_floor)
        elif t > e.max_ts:
            e.max_ts = t
            if t // HOUR_MS > e.bucket:
                self._touch(key, e, t)
        ws = t - t % self.window_ms
        if ws == e.cur_ws:  # most events: the item's latest window, kept out of the dict
            e.cur_w += INC_WINDOW[k]
            return
        windows = e.open
        assert windows is not None  # item entities always have open windows
        if e.cur_ws != NO_WINDOW:
            windows[e.cur_ws] = e.cur_w
        w = windows.pop(ws, None)
        if w is None:
            w = 0
            keys = self.registry.get(ws)
            if keys is None:
                keys = self.registry[ws] = []
                heapq.heappush(self._registry_heap, ws)
            keys.append(key)
        e.cur_ws, e.cur_w = ws, w + INC_WINDOW[k]

    def close_windows(self, watermark: int, keep: bool = True) -> Iterator[tuple[str, int, int]]:
        """Close windows ending <= watermark: add them to the totals and yield them.

        ``keep=False``: no query will read them (no output needs vectors), so closed windows
        are only yielded; an item then keeps no tiles.
        """
        heap, w_ms, rep = self._registry_heap, self.window_ms, self.rep
        while heap and heap[0] + w_ms <= watermark:
            ws = heapq.heappop(heap)
            for key in self.registry.pop(ws):
                e = self.entities[key]
                if ws == e.cur_ws:
                    w = e.cur_w
                    e.cur_ws, e.cur_w = NO_WINDOW, 0
                else:
                    assert e.open is not None
                    w = e.open.pop(ws)
                if keep:
                    e.min_ws.append(ws)  # windows close in start order: the list stays sorted
                    e.min_c.append(w)
                    e.total += w * rep
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
        if e.fast_from <= t < e.fast_until:  # same sawtooth starts as the last query: reuse its work
            vec = e.total - e.hidden
        else:
            e.total, e.hidden = self.sync(e, e.total, self.t_floor, t)
            e.fast_from, e.fast_until = self._starts_from(t), self._starts_until(t)
            vec = e.total - e.hidden
        # closed windows at or after the cut are in the totals but not in this event's view
        starts, counts = e.min_ws, e.min_c
        j = len(starts) - 1
        if j >= 0 and starts[j] >= cut:
            rep = self.rep
            while j >= 0 and starts[j] >= cut:
                vec -= counts[j] * rep
                j -= 1
        return vec
