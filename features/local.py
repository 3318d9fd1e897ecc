"""Run the two stages in one thread, without Bytewax: the reference driver for tests.

The dataflow (``dataflows/wiring.py``) wires the same :class:`PartitionState` and
:class:`ItemShardState` into Bytewax; this driver routes their outputs with plain Python,
so the logic can be tested (and compared against a brute-force oracle) in milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from features.config import FeaturesConfig
from features.item_stage import ClosedItemWindows, ItemShardState, Vector, Vectors
from features.partition_stage import FollowUps, PartitionState, RawBatch, Records, SlateRequests, ToItems
from features.records import Record


@dataclass
class LocalOutput:
    """Everything a run produced, in emission order."""

    records: list[Record] = field(default_factory=list)
    vectors: list[Vector] = field(default_factory=list)
    follow_ups: list[tuple[str, int, int]] = field(default_factory=list)
    for_slates: list[SlateRequests | ClosedItemWindows] = field(default_factory=list)  # with slate_k > 0


class LocalPipeline:
    """Partition stages and item shards driven by hand, batch by batch."""

    def __init__(self, config: FeaturesConfig, partitions: int, want_follow_ups: bool = False,
                 vectors_for: str = "all", keep_events: bool = True, want_contexts: bool = True,
                 want_history: bool = False, slate_k: int = 0):
        self.config = config
        self.partitions = [PartitionState(config, p, want_follow_ups, vectors_for != "all", keep_events, want_contexts,
                                          vectors_for != "none", want_history=want_history or slate_k > 0,
                                          slate_k=slate_k)
                           for p in range(partitions)]
        self.shards = [ItemShardState(config, s, partitions, vectors_for, feed_slates=slate_k > 0)
                       for s in range(config.item_shards)]
        self.out = LocalOutput()

    def _route(self, outputs: Iterable[ToItems | Records | FollowUps | Vectors | SlateRequests | ClosedItemWindows],
               ) -> None:
        for o in outputs:
            if isinstance(o, ToItems):
                self._route(self.shards[o.shard].process(o))
            elif isinstance(o, Records):
                self.out.records.extend(o.records)
            elif isinstance(o, Vectors):
                self.out.vectors.extend(o.items)
            elif isinstance(o, (SlateRequests, ClosedItemWindows)):
                self.out.for_slates.append(o)
            else:
                self.out.follow_ups.extend(o.items)

    def feed(self, batch: RawBatch) -> None:
        self._route(self.partitions[batch.partition].process(batch))

    def finish(self) -> LocalOutput:
        """End of input: flush every partition, then every shard."""
        for state in self.partitions:
            self._route(state.flush())
        for shard in self.shards:
            self._route(shard.flush())
        return self.out


def run_local(
    config: FeaturesConfig, batches: Iterable[RawBatch], partitions: int, want_follow_ups: bool = False,
    vectors_for: str = "all", keep_events: bool = True, want_contexts: bool = True, want_history: bool = False,
) -> LocalOutput:
    """Feed batches in the given order, then flush; return all outputs."""
    pipeline = LocalPipeline(config, partitions, want_follow_ups, vectors_for, keep_events, want_contexts,
                             want_history)
    for batch in batches:
        pipeline.feed(batch)
    return pipeline.finish()
