"""Open windows only: the tumbling-window counts of users or items when no output reads a vector.

A features-only run writes the window records (user-features, item-features) and nothing
that needs point-in-time vectors. Then an entity needs no tiles, no horizon totals and no
out-of-order buffer: only the counts of its windows that are still open. An entity exists
while it has an open window; the window that closes last takes it away, so the state is
bounded by the entities active within the allowed lateness, and nothing needs evicting.

>>> table = WindowCountTable(60_000)
>>> table.count("u1", 1_000, 0); table.count("u1", 61_000, 1); table.count("u1", 2_000, 1)
>>> [(key, ws, unpack_window(w)) for key, ws, w in table.close_windows(60_000)]
[('u1', 0, (1, 1, 0, 0))]
>>> len(table), list(table.close_windows(120_000))[0][2] == pack_window(0, 1, 0, 0), len(table)
(1, True, 0)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from features.tiles import INC_WINDOW, NO_WINDOW, WindowRegistry, pack_window, unpack_window  # noqa: F401  (doctest)


class OpenWindows:
    """One entity's open windows: the one it counted into last, and the others by start."""

    __slots__ = ("cur_ws", "cur_w", "earlier")

    def __init__(self, ws: int, w: int):
        self.cur_ws = ws
        self.cur_w = w  # packed counts (features.tiles.pack_window layout)
        self.earlier: dict[int, int] = {}  # other open windows: start -> packed counts

    def __reduce__(self) -> tuple[type[OpenWindows], tuple[int, int], dict[int, int]]:
        return OpenWindows, (self.cur_ws, self.cur_w), self.earlier

    def __setstate__(self, state: dict[int, int]) -> None:
        self.earlier = state


class WindowCountTable:
    """Counts of each entity's open tumbling windows, each emitted once when it closes (module docstring)."""

    def __init__(self, window_ms: int):
        self.window_ms = window_ms
        self.entities: dict[str, OpenWindows] = {}
        self.registry = WindowRegistry(window_ms)

    def __reduce__(self) -> tuple[type[WindowCountTable], tuple[int], dict[str, Any]]:
        return WindowCountTable, (self.window_ms,), {"entities": self.entities, "registry": self.registry}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.entities, self.registry = state["entities"], state["registry"]

    def __len__(self) -> int:
        return len(self.entities)

    def count(self, key: str, t: int, k: int) -> None:
        """Count an event of type index ``k`` at ``t`` into its window (which must still be open)."""
        ws = t - t % self.window_ms
        e = self.entities.get(key)
        if e is None:
            self.entities[key] = OpenWindows(ws, INC_WINDOW[k])
            self.registry.add(ws, key)
            return
        if ws == e.cur_ws:  # most events
            e.cur_w += INC_WINDOW[k]
            return
        if e.cur_ws != NO_WINDOW:
            e.earlier[e.cur_ws] = e.cur_w
        w = e.earlier.pop(ws, None)
        if w is None:
            w = 0
            self.registry.add(ws, key)
        e.cur_ws, e.cur_w = ws, w + INC_WINDOW[k]

    def close_windows(self, watermark: int) -> Iterator[tuple[str, int, int]]:
        """Yield and forget ``(key, window start, packed counts)`` of every window ending <= watermark."""
        entities = self.entities
        for ws, keys in self.registry.closed(watermark):
            for key in keys:
                e = entities[key]
                if ws == e.cur_ws:
                    w = e.cur_w
                    e.cur_ws, e.cur_w = NO_WINDOW, 0
                else:
                    w = e.earlier.pop(ws)
                if e.cur_ws == NO_WINDOW and not e.earlier:
                    del entities[key]
                yield key, ws, w

    def evict(self, watermark: int) -> int:
        """Nothing to evict: an entity leaves with its last closed window. Returns 0."""
        return 0
