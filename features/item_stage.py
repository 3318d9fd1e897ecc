"""Stage 2, one instance per item shard: item windows, item counts, the complete vector.

An item's events come from every input partition, read in an order no one controls
(partitions are consumed concurrently, by one or many workers). To stay deterministic the
item stage works on *closed* windows only:

* the stage watermark G is the minimum of the partitions' watermarks (sent with every
  chunk); an item window closes, is emitted and enters the item's totals once G passes its
  end; no accepted event can fall into a closed window (each partition refuses events
  behind its own watermark, which is >= G);
* the item part of an event's vector counts the item's closed windows in
  ``[horizon start(t), cut(t))`` where ``cut(t) = floor((t - item_delay_ms) / window) * window``;
  if G has not reached the cut yet, the event waits here until it has (in a live stream
  every partition is within milliseconds, so it rarely waits).

Each completed event leaves as :class:`Vectors` with its user, item and user x category
packed vectors.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, ClassVar

from mypy_extensions import mypyc_attr

from features.config import FeaturesConfig
from features.item_table import ClosedWindowTable
from features.partition_stage import NEG_INF, POS_INF, SNAPSHOT_FORMAT, Entry, History, Records, ToItems, require_format
from features.records import Record, window_record
from features.window_table import WindowCountTable


class Vector:
    """An event with its complete point-in-time vector (packed counts, features/tiles.py layout)."""

    __slots__ = ("event", "user_vec", "item_vec", "cat_vec", "item_as_of", "context", "history")

    def __init__(self, event: dict[str, Any] | None, user_vec: int, item_vec: int, cat_vec: int, item_as_of: int,
                 context: tuple[Any, ...] | None, history: History | None = None):
        self.event = event  # the decoded event, or None (PartitionState.keep_events)
        self.user_vec = user_vec  # the user's horizon counts before the event
        self.item_vec = item_vec  # the item's closed-window counts before ``item_as_of``
        self.cat_vec = cat_vec  # the user x category horizon counts before the event
        self.item_as_of = item_as_of  # the item counts' cut: windows before this time, epoch ms
        self.context = context  # a view's VIEW_CONTEXT, or None
        self.history = history  # a view's user history (partition_stage.History), or None

    def fields(self) -> tuple[dict[str, Any] | None, int, int, int, int, tuple[Any, ...] | None, History | None]:
        """The attributes in declaration order (comparisons in tests, pickling)."""
        return self.event, self.user_vec, self.item_vec, self.cat_vec, self.item_as_of, self.context, self.history

    def __reduce__(self) -> tuple[type[Vector], tuple[Any, ...]]:
        return Vector, self.fields()

    def __repr__(self) -> str:
        return f"Vector{self.fields()!r}"



@mypyc_attr(native_class=False)  # a plain Python class when compiled: picklable, rarely touched
@dataclass
class Vectors:
    """Events with their complete point-in-time vectors."""

    items: list[Vector]


@mypyc_attr(native_class=False)  # a plain Python class when compiled: picklable, rarely touched
@dataclass
class ClosedItemWindows:
    """One shard's item windows closed by a watermark, for the slate stage's copy of every item's counts.

    ``closed_until``: every window of this shard's items that ends at or before it is closed
    (and in ``windows`` or an earlier message).
    """

    shard: int
    closed_until: int
    windows: list[tuple[str, int, int]]  # (item_id, window start ms, packed counts)


class ItemShardState:
    """State and logic of one item shard; pickled for Bytewax recovery."""

    def __init__(self, config: FeaturesConfig, shard: int, partitions: int, vectors_for: str = "all",
                 feed_slates: bool = False):
        if partitions < 1:
            msg = f"the item stage needs the number of input partitions (>= 1), got {partitions}"
            raise ValueError(msg)
        if vectors_for not in ("all", "views", "none"):
            msg = f"vectors_for must be 'all', 'views' or 'none', got {vectors_for!r}"
            raise ValueError(msg)
        self.config = config
        self.shard = shard
        # Which events leave with a vector: every event, only views (all that scoring and
        # training examples read), or none (no output reads one: the stage only counts). Every
        # event is counted either way.
        self.all_vectors = vectors_for == "all"
        # With vectors, items are counted in tiles over closed windows; without, only their
        # open windows are counted (fixed for the life of the state, like the partition stage's).
        self.items: ClosedWindowTable | None = None
        self.item_windows: WindowCountTable | None = None
        if vectors_for != "none":
            self.items = ClosedWindowTable(config.window_ms, config.horizons, config.allowed_lateness_ms,
                                           config.retention_ms)
        else:
            self.item_windows = WindowCountTable(config.window_ms)
        self.marks = [NEG_INF] * partitions
        self.watermark = NEG_INF
        # events waiting for the stage watermark to pass their cut, by cut (released in cut order)
        self.pending: dict[int, list[Entry]] = {}
        self._pending_cuts: list[int] = []  # heap of the keys of ``pending``
        self.counters: dict[str, int] = {"vectors": 0, "windows": 0}
        # Slates: closed windows also go to the slate stage (ClosedItemWindows)
        self.feed_slates = feed_slates
        self.for_slates: list[tuple[str, int, int]] = []

    #: What a snapshot keeps besides the constructor's arguments.
    SNAPSHOT_FIELDS: ClassVar[tuple[str, ...]] = ("items", "item_windows", "marks", "watermark", "pending", "_pending_cuts", "counters")

    def __reduce__(self) -> tuple[type[ItemShardState], tuple[FeaturesConfig, int, int, str, bool], dict[str, Any]]:
        # Explicit: compiled (events/native.py), the class has no __dict__ and is built through __init__.
        args = (self.config, self.shard, len(self.marks), self.vectors_for, self.feed_slates)
        return ItemShardState, args, {"format": SNAPSHOT_FORMAT,
                                      **{name: getattr(self, name) for name in self.SNAPSHOT_FIELDS}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        require_format(state.get("format"), "item")
        for name in self.SNAPSHOT_FIELDS:
            setattr(self, name, state[name])

    def __len__(self) -> int:
        """Items held in state."""
        table = self.items if self.items is not None else self.item_windows
        return len(table) if table is not None else 0

    @property
    def any_vectors(self) -> bool:
        """Whether this shard completes vectors at all (else it counts windows only)."""
        return self.items is not None

    @property
    def vectors_for(self) -> str:
        """Which events leave with a vector: "all", "views" or "none"."""
        return "all" if self.all_vectors else "views" if self.any_vectors else "none"

    def cut(self, t: int) -> int:
        """Item features of an event at ``t`` cover closed windows before this time."""
        w = self.config.window_ms
        d = t - self.config.item_delay_ms
        return d - d % w

    def process(self, chunk: ToItems) -> list[Vectors | Records | ClosedItemWindows]:
        """Count a chunk's events, then apply its partition watermark."""
        items = self.items
        done: list[Vector] = []
        pending = self.pending
        w = self.config.window_ms
        delay = self.config.item_delay_ms
        all_vectors = self.all_vectors
        if items is None:
            item_windows = self.item_windows
            assert item_windows is not None  # one of the two tables exists
            for entry in chunk.events:
                item_windows.count(entry.item_id, entry.ts, entry.type_index)
        else:
            closed_until = items.closed_until
            for entry in chunk.events:
                t, item_id = entry.ts, entry.item_id
                items.add(item_id, t, entry.type_index)
                if entry.type_index and not all_vectors:
                    continue  # a follow-up event: counted, no vector needed
                d = t - delay
                cut = d - d % w
                if cut <= closed_until:
                    done.append(Vector(entry.event, entry.user_vec, items.query(item_id, t, cut), entry.cat_vec, cut,
                                       entry.context, entry.history))
                else:
                    waiting = pending.get(cut)
                    if waiting is None:
                        waiting = pending[cut] = []
                        heapq.heappush(self._pending_cuts, cut)
                    waiting.append(entry)
        records: list[Record] = []
        if chunk.partition >= len(self.marks):
            msg = f"chunk from partition {chunk.partition}, but the item stage was built for {len(self.marks)}"
            raise ValueError(msg)
        if chunk.watermark > self.marks[chunk.partition]:
            self.marks[chunk.partition] = chunk.watermark
            new_watermark = min(self.marks)
            if new_watermark > self.watermark:
                self.watermark = new_watermark
                self._advance(records, done)
                return self._outputs(done, records, advanced=True)
        return self._outputs(done, records)

    def _outputs(self, done: list[Vector], records: list[Record], advanced: bool = False,
                 ) -> list[Vectors | Records | ClosedItemWindows]:
        self.counters["vectors"] += len(done)
        out: list[Vectors | Records | ClosedItemWindows] = []
        if done:
            out.append(Vectors(done))
        if records:
            out.append(Records(records))
        if self.feed_slates and advanced:
            assert self.items is not None  # slates need vectors
            out.append(ClosedItemWindows(self.shard, self.items.closed_until, self.for_slates))
            self.for_slates = []
        return out

    def _advance(self, records: list[Record], done: list[Vector]) -> None:
        cfg = self.config
        items = self.items
        table = items if items is not None else self.item_windows
        assert table is not None
        n = 0
        for_slates = self.for_slates if self.feed_slates else None
        for item_id, ws, counts in table.close_windows(self.watermark):
            key, value = window_record("item", item_id, ws, cfg.window_ms, counts, cfg.priors)
            records.append(("item_features", key, value))
            if for_slates is not None:
                for_slates.append((item_id, ws, counts))
            n += 1
        self.counters["windows"] += n
        if items is None:
            return
        cuts = self._pending_cuts
        while cuts and cuts[0] <= items.closed_until:
            cut = heapq.heappop(cuts)
            for e in self.pending.pop(cut):
                done.append(Vector(e.event, e.user_vec, items.query(e.item_id, e.ts, cut), e.cat_vec, cut, e.context,
                                   e.history))
        # Every later query comes from an event at or after the watermark (partitions refuse
        # anything older), so tiles below it may go.
        if self.watermark < POS_INF:
            items.t_floor = self.watermark
            items.evict(self.watermark)

    def flush(self) -> list[Vectors | Records | ClosedItemWindows]:
        """End of a finite input: every partition is done; close and release everything."""
        records: list[Record] = []
        done: list[Vector] = []
        self.marks = [POS_INF] * len(self.marks)
        self.watermark = POS_INF
        self._advance(records, done)
        return self._outputs(done, records, advanced=True)
