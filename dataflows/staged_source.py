"""The partition stage runs inside the source partition that reads the input partition.

Bytewax routes a keyed stateful step by a hash of its key, not by which worker read the
data: keyed by input partition, the four partition stages of a 2-process run all land
on one worker, and every raw batch crosses processes to get there. Running the
stage where the partition is read needs no routing at all. Bytewax balances source
partitions over the workers, so each worker validates, dedups and counts users for its
own partitions, and only item chunks cross workers.

The source partition's snapshot holds both the input offset and the stage state, taken at
the same epoch boundary, so a restart resumes them together.

    raw source partition (Kafka or JSONL)  --RawBatch-->  PartitionState.process
        --> ToItems | Records | FollowUps  (what the flow's first step emits)
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from features.config import FeaturesConfig
from features.partition_stage import FollowUps, PartitionState, RawBatch, Records, SlateRequests, ToItems

StageOutput = ToItems | Records | FollowUps | SlateRequests
#: (the raw partition's own resume state, pickled partition states or None without recovery)
Snapshot = tuple[Any, bytes | None]


def require_resumable(state: PartitionState, config: FeaturesConfig, needs: EntryNeeds) -> None:
    """Raise (ValueError, naming what differs) when this run cannot continue from ``state``, a snapshot's."""
    try:
        config.require_same(state.config)
    except RuntimeError as e:
        raise ValueError(str(e)) from None
    if needs.history and state.history is None:
        msg = ("the recovery snapshot was taken by a run that kept no user history (no examples, no slates); "
               "start this run without its recovery directory")
        raise ValueError(msg)
    if needs.vectors and not state.vectors:
        msg = ("the recovery snapshot was taken by a run that computed no point-in-time vectors; "
               "start this run without its recovery directory")
        raise ValueError(msg)


@dataclass(frozen=True)
class EntryNeeds:
    """What the flow's outputs read of an accepted event on its way through the stages.

    The rest is left out of the entries and freed in the partition stage (see
    :class:`PartitionState`); the defaults keep everything.
    """

    views_only: bool = False  # vectors for views only (no event-features topic)
    keep_events: bool = True  # the decoded event (the event-features topic and training examples write its fields)
    want_contexts: bool = True  # a view's scoring context (VIEW_CONTEXT)
    vectors: bool = True  # point-in-time vectors at all (scoring, examples, event features); without, only counts
    history: bool = False  # a view's user history: recent items, category counts (training examples)
    slate_k: int = 0  # slates of this many items at every session start (0: no slates)
    slate_max_k: int = 0  # the largest k a slate request may ask for (the catalog's size)
    session_slates: bool = True  # slates at session starts (with slate_k > 0); else for explicit requests only

    @property
    def vectors_for(self) -> str:
        """Which events the item stage completes a vector for (``ItemShardState``'s argument)."""
        return "views" if self.views_only and self.vectors else "all" if self.vectors else "none"


class _StagedPartition(StatefulSourcePartition[StageOutput, Snapshot]):
    def __init__(self, raw: StatefulSourcePartition[RawBatch, Any], config: FeaturesConfig, want_follow_ups: bool,
                 needs: EntryNeeds, states: dict[int, PartitionState] | None, snapshot_states: bool,
                 observe: Callable[[PartitionState], None], follow_wall_clock: bool):
        self.raw, self.config, self.want_follow_ups, self.needs = raw, config, want_follow_ups, needs
        self.states: dict[int, PartitionState] = states or {}
        self.snapshot_states, self.observe, self.follow_wall_clock = snapshot_states, observe, follow_wall_clock

    def next_batch(self) -> list[StageOutput]:
        out: list[StageOutput] = []
        for batch in self.raw.next_batch():  # StopIteration ends this partition
            state = self.states.get(batch.partition)
            if state is None:
                needs = self.needs
                state = self.states[batch.partition] = PartitionState(
                    self.config, batch.partition, self.want_follow_ups, needs.views_only, needs.keep_events,
                    needs.want_contexts, needs.vectors, self.follow_wall_clock, needs.history, needs.slate_k,
                    needs.slate_max_k, needs.session_slates)
            out.extend(state.process(batch))
            self.observe(state)
        return out

    def next_awake(self) -> Any:
        return self.raw.next_awake()

    def snapshot(self) -> Snapshot:
        states = pickle.dumps(self.states, protocol=5) if self.snapshot_states else None
        return self.raw.snapshot(), states

    def close(self) -> None:
        self.raw.close()


class StagedSource(FixedPartitionedSource[StageOutput, Snapshot]):
    """Wraps a source of :class:`RawBatch` so each of its partitions runs the partition stage.

    ``needs``: what the entries carry on (:class:`EntryNeeds`); it is this run's, also for
    states restored from a snapshot.
    ``snapshot_states``: pickle the stage states into every snapshot (only needed, and only
    paid for, when the flow runs with recovery). A finished input partition (end of a
    backfill) arrives as a batch with ``eof`` set, which closes its windows; a live flow
    that is asked to stop ends its partitions without one, so open windows stay open.
    ``follow_wall_clock``: an idle partition's watermark follows the wall clock (live runs;
    a backfill ends with EOF instead, so its outputs do not depend on its speed); also set on
    restored states.
    """

    def __init__(self, raw: FixedPartitionedSource[RawBatch, Any], config: FeaturesConfig,
                 want_follow_ups: bool = False, needs: EntryNeeds = EntryNeeds(), snapshot_states: bool = False,
                 observe: Callable[[PartitionState], None] = lambda state: None, follow_wall_clock: bool = True):
        self.raw, self.config, self.want_follow_ups, self.needs = raw, config, want_follow_ups, needs
        self.snapshot_states, self.observe, self.follow_wall_clock = snapshot_states, observe, follow_wall_clock

    def list_parts(self) -> list[str]:
        return self.raw.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Snapshot | None) -> _StagedPartition:
        raw_resume, states = resume_state if resume_state is not None else (None, None)
        raw = self.raw.build_part(step_id, for_part, raw_resume)
        restored: dict[int, PartitionState] | None = pickle.loads(states) if states is not None else None
        for state in (restored or {}).values():
            require_resumable(state, self.config, self.needs)
            # this run's outputs decide, not the snapshot's (a state that computes vectors keeps doing so)
            state.views_only, state.keep_events, state.want_contexts = (
                self.needs.views_only, self.needs.keep_events, self.needs.want_contexts)
            state.slate_k, state.slate_max_k = self.needs.slate_k, self.needs.slate_max_k
            state.session_slates = self.needs.session_slates
            state.follow_wall_clock = self.follow_wall_clock
        return _StagedPartition(raw, self.config, self.want_follow_ups, self.needs, restored, self.snapshot_states,
                                self.observe, self.follow_wall_clock)
