"""The slate stage's state: every item's closed windows, and the requests waiting for them.

A slate ranks ~100 candidates from the whole catalog with the DLRM, which reads each
candidate's point-in-time item counts: the item's closed windows before the request's cut
``floor((t - item_delay) / window) * window``, exactly as the item stage gives a view (features/
README.md). The item stages are sharded by item, so each sends the windows it closes, with the
time up to which its windows are closed (:class:`features.item_stage.ClosedItemWindows`), to
this stage, which keeps one table of every item (:class:`features.item_table.ClosedWindowTable`).
A request waits until every shard has closed its windows up to the request's cut; then its
candidates' counts are final, and the slate depends only on the input, not on timing.

One instance holds everything (one Bytewax key): the catalog is small (thousands of items),
and the work per request is a share of one batched forward pass.

>>> from features.config import FeaturesConfig
>>> state = SlateStageState(FeaturesConfig(), shards=2, partitions=4)
>>> state.closed_until
-4611686018427387904
"""

from __future__ import annotations

import heapq
from typing import Any

from features.config import FeaturesConfig
from features.item_stage import ClosedItemWindows
from features.item_table import ClosedWindowTable
from features.partition_stage import NEG_INF, POS_INF, SlateRequest, SlateRequests


class SlateStageState:
    """Item windows of every shard, and the requests waiting for their cut; pickled for recovery."""

    def __init__(self, config: FeaturesConfig, shards: int, partitions: int):
        self.config = config
        self.partition_floor = [NEG_INF] * partitions  # per input partition: its later requests are at or after this
        self.items = ClosedWindowTable(config.window_ms, config.horizons, config.allowed_lateness_ms,
                                       config.retention_ms)
        self.shard_closed = [NEG_INF] * shards  # per item shard: its windows ending <= this are here
        self.waiting: list[tuple[int, int, SlateRequest]] = []  # heap of (cut, arrival, request)
        self.arrivals = 0
        self.counters: dict[str, int] = {"requests": 0}

    def __reduce__(self) -> tuple[type[SlateStageState], tuple[FeaturesConfig, int, int], dict[str, Any]]:
        return SlateStageState, (self.config, len(self.shard_closed), len(self.partition_floor)), {
            "items": self.items, "shard_closed": self.shard_closed, "partition_floor": self.partition_floor,
            "waiting": self.waiting, "arrivals": self.arrivals, "counters": self.counters}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    @property
    def closed_until(self) -> int:
        """Every item window ending at or before this is here."""
        return min(self.shard_closed)

    def cut(self, t: int) -> int:
        """The item counts of a request at ``t`` cover the closed windows before this time."""
        d = t - self.config.item_delay_ms
        return d - d % self.config.window_ms

    def add(self, message: SlateRequests | ClosedItemWindows) -> None:
        """File a partition's requests or a shard's closed windows."""
        if isinstance(message, ClosedItemWindows):
            for item_id, ws, counts in message.windows:
                self.items.add_closed(item_id, ws, counts)
            self.shard_closed[message.shard] = max(self.shard_closed[message.shard], message.closed_until)
            self.items.closed_until = self.closed_until
            return
        for request in message.requests:
            self.arrivals += 1
            heapq.heappush(self.waiting, (self.cut(request.ts), self.arrivals, request))
            self.counters["requests"] += 1
        self.partition_floor[message.partition] = max(self.partition_floor[message.partition], message.floor)

    def take_ready(self) -> list[tuple[SlateRequest, int]]:
        """``(request, cut)`` of every waiting request whose cut the closed windows have reached, in cut order.

        Old tiles go once no request can need them: every request to come is at or after the
        floors its partitions sent, and every waiting or ready one is at or after the oldest.
        """
        ready = []
        closed = self.closed_until
        while self.waiting and self.waiting[0][0] <= closed:
            cut, _, request = heapq.heappop(self.waiting)
            ready.append((request, cut))
        floor = min(self.partition_floor)
        if self.waiting:
            floor = min(floor, self.waiting[0][2].ts)
        if ready:  # about to be ranked: their queries read the tiles too
            floor = min(floor, ready[0][0].ts)
        if floor > self.items.t_floor and floor < POS_INF:
            self.items.t_floor = floor
            self.items.evict(floor)
        return ready
