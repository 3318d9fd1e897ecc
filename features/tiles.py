"""Per-entity sawtooth counts kept as window tiles, with packed integer counters: the shared machinery.

Every entity of a tile table (a user with its per-category breakdown, an item) keeps

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
of one int (128 bits, :func:`pack_window`), and a horizon vector of H horizons is H such
groups (H * 128 bits). Counting an event is one integer addition, a vector is immutable (no
copy), and :func:`unpack` turns a batch of vectors into a numpy array at once.

The tables, one per module: :class:`features.arrival_table.ArrivalTable` (users: counts as
of each event's arrival, by category), :class:`features.item_table.ClosedWindowTable`
(items: counts over closed windows), and :class:`features.window_table.WindowCountTable`
(either, when no output reads a vector: open windows only, no tiles).

>>> pack_window(1, 2, 0, 0) == INC_WINDOW[0] + 2 * INC_WINDOW[1]
True
>>> unpack([replicate(pack_window(3, 1, 0, 0), 2)], 2).tolist()
[[3, 1, 0, 0, 3, 1, 0, 0]]
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from operator import add
from typing import Any, ClassVar

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


class WindowRegistry:
    """Which keys have a window starting at each window start, to close windows in start order.

    >>> r = WindowRegistry(60_000)
    >>> r.add(0, "u1"); r.add(60_000, "u2"); r.add(0, "u3")
    >>> [(ws, keys) for ws, keys in r.closed(60_000)]
    [(0, ['u1', 'u3'])]
    """

    def __init__(self, window_ms: int):
        self.window_ms = window_ms
        self.keys: dict[int, list[str]] = {}
        self.heap: list[int] = []

    def __reduce__(self) -> tuple[type[WindowRegistry], tuple[int], dict[str, Any]]:
        return WindowRegistry, (self.window_ms,), {"keys": self.keys, "heap": self.heap}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.keys, self.heap = state["keys"], state["heap"]

    def add(self, ws: int, key: str) -> None:
        """Register ``key``'s window starting at ``ws`` (once per key and window)."""
        keys = self.keys.get(ws)
        if keys is None:
            keys = self.keys[ws] = []
            heapq.heappush(self.heap, ws)
        keys.append(key)

    def closed(self, watermark: int) -> Iterator[tuple[int, list[str]]]:
        """Pop ``(window start, keys)`` of every window that ends <= ``watermark``, oldest first."""
        heap, w_ms = self.heap, self.window_ms
        while heap and heap[0] + w_ms <= watermark:
            ws = heapq.heappop(heap)
            yield ws, self.keys.pop(ws)


#: the fields every tile entity has (its ``__slots__``; subclasses add theirs)
TILE_FIELDS: tuple[str, ...] = ("max_ts", "fast_until", "total", "hidden", "cur_ws", "cur_w", "min_ws", "min_c",
                                "hour_ws", "hour_c", "cursor", "lo", "bucket")


class TileEntity:
    """One entity's tiles and running totals (``__slots__``: attribute access is the hot path)."""

    __slots__ = TILE_FIELDS
    FIELDS: ClassVar[tuple[str, ...]] = TILE_FIELDS

    def __init__(self, t: int, lo: list[int], fast_until: int):
        self.max_ts = t  # newest event time
        self.fast_until = fast_until  # queries before this need no tile work
        # Packed counts per horizon over the tiles from each horizon's cursor on; a table may
        # keep part of it in ``hidden`` (see the tables).
        self.total = 0
        self.hidden = 0
        self.cur_ws = NO_WINDOW  # the current window, kept out of the tile lists
        self.cur_w = 0
        self.min_ws: list[int] = []  # minute tiles, sorted by start
        self.min_c: list[int] = []
        self.hour_ws: list[int] = []  # hour tiles, sorted by start
        self.hour_c: list[int] = []
        self.cursor = [0] * len(lo)  # per horizon: first tile in its total
        self.lo = lo  # per horizon: first window start its total covers
        self.bucket = t // HOUR_MS  # eviction bucket: hour of the newest event

    def __reduce__(self) -> tuple[type[TileEntity], tuple[int, list[int], int], dict[str, object]]:
        # Explicit, so that the compiled classes (which have no __dict__) pickle like the plain ones.
        return type(self), (self.max_ts, self.lo, self.fast_until), {name: getattr(self, name) for name in self.FIELDS}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name in self.FIELDS:
            setattr(self, name, state[name])


class TileTable:
    """Tile bookkeeping shared by the tables: horizon totals, compaction, eviction.

    Horizons whose hop is finer than an hour read minute tiles; the others read hour tiles
    (and every minute tile, all of which are recent enough to be inside them). A table
    makes its own kind of entity (:meth:`_new`).
    """

    def __init__(self, window_ms: int, horizons: Sequence[Horizon], lateness_ms: int, retention_ms: int):
        self.window_ms = window_ms
        self.horizons = tuple(horizons)
        self.lateness_ms = lateness_ms
        self.retention_ms = retention_ms
        self.n_groups = len(self.horizons)
        self.rep = replicate(1, self.n_groups)
        self.inc_all = tuple(inc * self.rep for inc in INC_WINDOW)
        self.entities: dict[str, TileEntity] = {}
        self.fine = tuple(i for i, h in enumerate(self.horizons) if h.hop_ms < HOUR_MS)
        self.coarse = tuple(i for i, h in enumerate(self.horizons) if h.hop_ms >= HOUR_MS)
        # per horizon: (index, length, hop, reads minute tiles, bit shift of its group)
        self._hz = tuple((i, h.length_ms, h.hop_ms, i in self.fine, GROUP_BITS * i) for i, h in enumerate(self.horizons))
        self._extent = tuple(h.hop_ms + h.length_ms for h in self.horizons)  # lo + extent = fast limit
        # hour -> keys whose newest event falls in that hour (eviction without scanning)
        self.buckets: dict[int, set[str]] = {}
        self._bucket_heap: list[int] = []

    #: what a snapshot keeps besides the constructor's arguments
    STATE: ClassVar[tuple[str, ...]] = ("entities", "buckets", "_bucket_heap")

    def __len__(self) -> int:
        return len(self.entities)

    def __reduce__(self) -> tuple[type[TileTable], tuple[int, tuple[Horizon, ...], int, int], dict[str, Any]]:
        # Explicit, so that the compiled classes (built only through __init__) unpickle too.
        return type(self), (self.window_ms, self.horizons, self.lateness_ms, self.retention_ms), {
            name: getattr(self, name) for name in self.STATE}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in self.STATE:
            setattr(self, name, state[name])

    def _lo(self, floor: int) -> list[int]:
        """Horizon starts of a new entity whose queries will all be at or after ``floor``."""
        return [h.start(floor) for h in self.horizons]

    def _add_entity(self, key: str, e: TileEntity) -> None:
        self.entities[key] = e
        self._bucket_add(key, e.bucket)

    def _fast_until(self, lo: list[int]) -> int:
        """First event time whose query would need a horizon start beyond ``lo``."""
        return min(map(add, lo, self._extent))

    def _bucket_add(self, key: str, hour: int) -> None:
        bucket = self.buckets.get(hour)
        if bucket is None:
            bucket = self.buckets[hour] = set()
            heapq.heappush(self._bucket_heap, hour)
        bucket.add(key)

    def _touch(self, key: str, e: TileEntity, t: int) -> None:
        hour = t // HOUR_MS
        if hour > e.bucket:
            self.buckets[e.bucket].discard(key)
            e.bucket = hour
            self._bucket_add(key, hour)

    def sync(self, e: TileEntity, total: int, t_floor: int, t: int) -> tuple[int, int]:
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

    def _compact(self, e: TileEntity) -> None:
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

    def evict(self, watermark: int) -> list[str]:
        """Delete entities whose newest event is older than the retention; return their keys."""
        evicted: list[str] = []
        limit_hour = (watermark - self.retention_ms) // HOUR_MS
        heap = self._bucket_heap
        while heap and heap[0] < limit_hour:
            hour = heapq.heappop(heap)
            for key in self.buckets.pop(hour, ()):
                del self.entities[key]
                evicted.append(key)
        return evicted
