"""Items: counts over closed windows only, because an item's events come from every partition.

An item window is final once every input partition's watermark has passed its end.
Events are counted into their open window at once (:meth:`ClosedWindowTable.add`); windows
enter the running totals when :meth:`ClosedWindowTable.close_windows` closes them;
:meth:`ClosedWindowTable.query` returns the counts over closed windows in
``[horizon start(t), cut)``, which does not depend on the order in which partitions were read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar

from features.spec import Horizon
from features.tiles import HOUR_MS, INC_WINDOW, NO_WINDOW, TILE_FIELDS, TileEntity, TileTable, WindowRegistry


class ItemEntity(TileEntity):
    """An item's tiles and totals, its open windows, and what its last query saw.

    ``total`` covers the closed windows from each horizon's cursor on; ``hidden`` is the part
    of it before the sawtooth starts of the last query, which queries in
    ``[fast_from, fast_until)`` reuse.
    """

    __slots__ = ("fast_from", "open")
    FIELDS: ClassVar[tuple[str, ...]] = (*TILE_FIELDS, "fast_from", "open")

    def __init__(self, t: int, lo: list[int], fast_until: int):
        super().__init__(t, lo, fast_until)
        self.fast_from = t
        self.open: dict[int, int] = {}  # open windows but the current one: start -> packed counts


class ClosedWindowTable(TileTable):
    """Items' counts over closed windows (module docstring)."""

    STATE: ClassVar[tuple[str, ...]] = (*TileTable.STATE, "registry", "closed_until", "t_floor")

    def __init__(self, window_ms: int, horizons: Sequence[Horizon], lateness_ms: int, retention_ms: int):
        super().__init__(window_ms, horizons, lateness_ms, retention_ms)
        self.registry = WindowRegistry(window_ms)
        self.closed_until = NO_WINDOW  # every window ending at or before this is closed
        self.t_floor = 0  # no future query has an event time below this (raised with the watermark)

    def _entity_at(self, key: str, t: int) -> ItemEntity:
        """The item's entity, made if new, with its newest time raised to ``t``."""
        e: ItemEntity | None = self.entities.get(key)  # type: ignore[assignment]  # this table's entities
        if e is None:
            e = ItemEntity(t, self._lo(self.t_floor), t)  # fast_until = t: the first query syncs
            self._add_entity(key, e)
        elif t > e.max_ts:
            e.max_ts = t
            if t // HOUR_MS > e.bucket:
                self._touch(key, e, t)
        return e

    def add(self, key: str, t: int, k: int) -> None:
        """Count an event into its (open) window."""
        e = self._entity_at(key, t)
        ws = t - t % self.window_ms
        if ws == e.cur_ws:  # most events: the item's latest window, kept out of the dict
            e.cur_w += INC_WINDOW[k]
            return
        windows = e.open
        if e.cur_ws != NO_WINDOW:
            windows[e.cur_ws] = e.cur_w
        w = windows.pop(ws, None)
        if w is None:
            w = 0
            self.registry.add(ws, key)
        e.cur_ws, e.cur_w = ws, w + INC_WINDOW[k]

    def close_windows(self, watermark: int) -> Iterator[tuple[str, int, int]]:
        """Close windows ending <= watermark: add them to the totals and yield ``(key, window start, counts)``."""
        rep = self.rep
        for ws, keys in self.registry.closed(watermark):
            for key in keys:
                e: ItemEntity = self.entities[key]  # type: ignore[assignment]  # this table's entities
                if ws == e.cur_ws:
                    w = e.cur_w
                    e.cur_ws, e.cur_w = NO_WINDOW, 0
                else:
                    w = e.open.pop(ws)
                e.min_ws.append(ws)  # windows close in start order: the list stays sorted
                e.min_c.append(w)
                e.total += w * rep
                yield key, ws, w
        w_ms = self.window_ms
        boundary = watermark - watermark % w_ms
        self.closed_until = max(self.closed_until, boundary)

    def add_closed(self, key: str, ws: int, w: int) -> None:
        """A window another table closed (the slate stage's copy of every shard's items): into the tiles at once.

        Windows of one item must come in start order, as a table closes them.
        """
        e = self._entity_at(key, ws)
        e.min_ws.append(ws)
        e.min_c.append(w)
        e.total += w * self.rep

    def query(self, key: str, t: int, cut: int) -> int:
        """Closed-window counts for an event at ``t``: windows in [horizon start, cut)."""
        if cut > self.closed_until:
            msg = f"item windows before {cut} are not all closed yet (closed until {self.closed_until})"
            raise RuntimeError(msg)
        e: ItemEntity = self.entities[key]  # type: ignore[assignment]  # this table's entities
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
