"""Users: counts as of each event's arrival, with a breakdown by category, and their tumbling windows.

:meth:`ArrivalTable.observe` returns the user's packed vector *before* the event is counted:
every earlier-accepted event of the user with event time in ``[horizon start(t), t]``.
Events arriving out of order (at most the allowed lateness behind the user's newest) get
exactly that too: earlier arrivals with a later event time are subtracted, from a short
buffer of the user's recent events.

Each event also counts in a *slot* (1, 2, ...: the caller maps categories to slots): slot 0
holds the user's own counts, slot s the counts of its events in slot s, in the same packed
layout one slot block higher. So user x category counts cost no extra entity and no extra
addition; :meth:`ArrivalTable.slot_vector` reads them out.

The table also registers each user's windows, so :meth:`ArrivalTable.close_windows` emits
every tumbling window once when the partition's watermark passes it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import ClassVar

from features.spec import Horizon
from features.tiles import (
    GROUP_BITS,
    HOUR_MS,
    INC_WINDOW,
    NO_WINDOW,
    TILE_FIELDS,
    TileEntity,
    TileTable,
    WindowRegistry,
)

RAW_MIN_CAP = 64  # the out-of-order buffer is trimmed when it reaches its cap (doubling with what stays)


class ArrivalEntity(TileEntity):
    """A user's tiles and totals, plus its recent events for out-of-order queries.

    ``total`` is what an in-order query at the current sawtooth starts sees; ``hidden`` holds
    the tiles kept only for out-of-order queries (between ``lo`` and those starts).
    """

    __slots__ = ("raw", "raw_cap")
    FIELDS: ClassVar[tuple[str, ...]] = (*TILE_FIELDS, "raw", "raw_cap")

    def __init__(self, t: int, lo: list[int], fast_until: int):
        super().__init__(t, lo, fast_until)
        self.raw: list[int] = []  # recent events as (ts << 12 | slot << 2 | type)
        self.raw_cap = RAW_MIN_CAP


def _find_window(e: TileEntity, ws: int) -> int:
    """Index of minute tile ``ws`` in the entity's sorted list, or -1."""
    starts = e.min_ws
    j = bisect_left(starts, ws)
    return j if j < len(starts) and starts[j] == ws else -1


class ArrivalTable(TileTable):
    """Users' point-in-time counts by arrival, by category slot, and their windows (module docstring)."""

    MAX_SLOT: ClassVar[int] = 1023  # slots are packed into 10 bits of the out-of-order buffer
    STATE: ClassVar[tuple[str, ...]] = (*TileTable.STATE, "registry", "_incs")

    def __init__(self, window_ms: int, horizons: Sequence[Horizon], lateness_ms: int, retention_ms: int):
        super().__init__(window_ms, horizons, lateness_ms, retention_ms)
        self.slot_bits = self.n_groups * GROUP_BITS  # one slot's block: its counts for every horizon
        self.mask = (1 << self.slot_bits) - 1
        self.registry = WindowRegistry(window_ms)
        self._incs: list[tuple[tuple[int, int], ...]] = []  # per slot, per type: (window inc, totals inc)
        self.add_slots(1)

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
        e: ArrivalEntity | None = self.entities.get(key)  # type: ignore[assignment]  # this table's entities
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

    def _observe_slow(self, key: str, e: ArrivalEntity | None, t: int, k: int, slot: int) -> int:
        w_inc, a_inc = self._incs[slot][k]
        if e is None:
            lo = self._lo(t - self.lateness_ms)
            e = ArrivalEntity(t, lo, self._fast_until(lo))
            self._add_entity(key, e)
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

    def peek(self, key: str) -> tuple[int, int]:
        """``(vector, as of)``: the entity's counts as of its newest event, that event included; ``(0, 0)`` if unknown.

        Nothing is counted; the entity's totals are brought to its newest event's sawtooth
        starts, as its next event would do anyway.
        """
        e: ArrivalEntity | None = self.entities.get(key)  # type: ignore[assignment]  # this table's entities
        if e is None:
            return 0, 0
        newest = e.max_ts
        if not newest < e.fast_until:
            total, hidden = self.sync(e, e.total + e.hidden, newest - self.lateness_ms, newest)
            e.total, e.hidden = total - hidden, hidden
            e.fast_until = self._starts_until(newest)
        return e.total, newest

    def _add_earlier(self, key: str, e: TileEntity, ws: int, inc: int) -> None:
        """Count ``inc`` into window ``ws``, earlier than the current one (a tile, made if new)."""
        j = _find_window(e, ws)
        if j >= 0:
            e.min_c[j] += inc
        else:
            j = bisect_left(e.min_ws, ws)
            e.min_ws.insert(j, ws)
            e.min_c.insert(j, inc)
            self.registry.add(ws, key)

    def _roll(self, key: str, e: TileEntity, ws: int, first: int) -> None:
        """Start window ``ws``; the finished current window joins the minute tiles."""
        if e.cur_ws != NO_WINDOW:
            e.min_ws.append(e.cur_ws)
            e.min_c.append(e.cur_w)
        e.cur_ws, e.cur_w = ws, first
        self.registry.add(ws, key)

    def _trim(self, e: ArrivalEntity) -> None:
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

    def close_windows(self, watermark: int) -> Iterator[tuple[str, int, int]]:
        """Yield ``(key, window_start, packed counts of all slots)`` for windows that end <= watermark."""
        for ws, keys in self.registry.closed(watermark):
            for key in keys:
                yield key, ws, self.window_counts(key, ws)
