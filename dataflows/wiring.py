"""The features flow's wiring: its steps, what the stream carries after each, and their state glue.

The logic lives in ``features/`` (plain Python, testable without Bytewax); this module
connects it. The steps (what the stream carries after each):

    read_validate_count_users  ToItems | Records | FollowUps: each source partition reads its
                               input partition and runs the partition stage on it (decode,
                               validate, dedup, watermark, user counts and windows) where it
                               is read, so nothing crosses workers before the item stage
    key_by_item_shard          (shard, ToItems)
    count_items_assemble       (shard, Vectors | Records)
    score_and_format           Records (scores, event features) | ExampleRows
    rank_slates                Records (recommendations): with both artifacts, the partition stage's
                               SlateRequests and the item stage's ClosedItemWindows meet here
    write_kafka                -> user-features, item-features, dead-letters, scores, recommendations
                                  [, event features]
    write_examples             -> examples JSONL (backfill only)
"""

from __future__ import annotations

import os
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic

from dataflows import gc_policy
from dataflows.config import FlowConfig
from dataflows.files import ExamplesSink, JsonlSource
from dataflows.kafka_io import InteractionsSource, KafkaRecordsSink, destination_topics
from dataflows.observability import FlowMonitor
from dataflows.recovery_check import check_recovery
from dataflows.routing import shard_keys
from dataflows.staged_source import EntryNeeds, StagedSource
from dataflows.stopping import STOP
from events import native
from features.item_stage import ClosedItemWindows, ItemShardState, Vectors
from features.outputs import VectorOutputs
from features.partition_stage import PartitionState, Records, SlateRequests, ToItems
from slates.stage import SlateStageState

if TYPE_CHECKING:
    from slates.ranker import SlateRanker


def recovery_requested(argv: list[str]) -> bool:
    """Whether this process runs with Bytewax recovery (state must then be snapshotted)."""
    flags = {"-r", "--recovery-directory"}
    return bool(os.environ.get("BYTEWAX_RECOVERY_DIRECTORY")) or any(
        a in flags or a.startswith("--recovery-directory=") for a in argv
    )


@dataclass
class _Context:
    config: FlowConfig
    partitions: int
    monitor: FlowMonitor
    recovery: bool
    needs: EntryNeeds  # what the entries carry on, for this run's outputs


class _ItemLogic(StatefulBatchLogic):
    """Bytewax glue for one item shard: feed chunks, flush at the end of input, snapshot."""

    def __init__(self, ctx: _Context, resume: bytes | None):
        self.ctx = ctx
        self.state: ItemShardState | None = pickle.loads(resume) if resume is not None else None
        if self.state is not None:
            ctx.config.features.require_same(self.state.config)
            self.state.feed_slates = ctx.needs.slate_k > 0
            # this run's outputs decide, not the snapshot's
            if ctx.needs.vectors and not self.state.any_vectors:
                msg = ("the recovery snapshot was taken by a run that computed no point-in-time vectors; "
                       "start this run without its recovery directory")
                raise ValueError(msg)
            self.state.all_vectors = ctx.needs.vectors_for == "all"
            if ctx.needs.keep_events and any(entry.event is None for waiting in self.state.pending.values() for entry in waiting):
                msg = ("the recovery snapshot was taken by a run that wrote neither event features nor examples, "
                       "so the views it left waiting for item windows carry no event; resume it with the same "
                       "outputs (no --event-features-topic, no --examples-out), or start without its recovery directory")
                raise ValueError(msg)

    def on_batch(self, values: list[ToItems]) -> tuple[list, bool]:
        cfg = self.ctx.config
        out: list = []
        for chunk in values:
            if self.state is None:
                self.state = ItemShardState(cfg.features, chunk.shard, self.ctx.partitions, self.ctx.needs.vectors_for,
                                            feed_slates=self.ctx.needs.slate_k > 0)
            out.extend(self.state.process(chunk))
        if self.state is not None:
            self.ctx.monitor.observe_shard(self.state)
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list, bool]:
        # The input ended (backfill): close everything. A live flow that was asked to stop
        # keeps its windows open: the next run continues them.
        if self.state is None or not self.ctx.config.backfill:
            return [], StatefulBatchLogic.RETAIN
        out = self.state.flush()
        self.ctx.monitor.observe_shard(self.state)
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes | None:
        return pickle.dumps(self.state, protocol=5) if self.ctx.recovery else None


class ModelLoadError(RuntimeError):
    """The model artifact exists but cannot be used (corrupt, or made for other features)."""


def load_scorer(config: FlowConfig) -> Any | None:
    """The model scorer, or None (features only). A bad artifact fails here, at start."""
    path = config.model
    if not path:
        return None
    if not Path(path).exists():
        print(
            f"features: no model at {path}: running features-only (no scores). Train one with "
            f"`python -m models.train --examples data/examples.jsonl --out {path}`",
            file=sys.stderr,
        )
        return None
    from models.artifact import ArtifactError  # torch is imported only when a model is used
    from models.scorer import Scorer

    try:
        scorer = Scorer.load(path, config.features.spec)
    except ArtifactError as e:
        raise ModelLoadError(str(e)) from None
    print(f"features: scoring views with model {path} (version {scorer.version})", file=sys.stderr)
    return scorer


class _SlateLogic(StatefulBatchLogic):
    """Bytewax glue for the slate stage (one key): file requests and item windows, rank what is ready."""

    def __init__(self, ctx: _Context, ranker: SlateRanker, resume: bytes | None):
        self.ctx, self.ranker = ctx, ranker
        self.state: SlateStageState = (pickle.loads(resume) if resume is not None
                                       else SlateStageState(ctx.config.features, ctx.config.features.item_shards,
                                                            ctx.partitions))

    def on_batch(self, values: list) -> tuple[list, bool]:
        for message in values:
            self.state.add(message)
        ready = self.state.take_ready()
        if not ready:
            return [], StatefulBatchLogic.RETAIN
        records = self.ranker.rank(ready, self.state.items)
        self.ctx.monitor.observe_slates(self.ranker.counters)
        return [Records(records)], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes | None:
        return pickle.dumps(self.state, protocol=5) if self.ctx.recovery else None


def load_slates(config: FlowConfig, scorer: Any | None, bootstrap: str | None) -> SlateRanker | None:
    """The slate ranker when both artifacts are there and records go to Kafka, else None (said once)."""
    path = config.retriever
    if not path or scorer is None or config.output != "kafka":
        return None
    if not Path(path).exists():
        print(f"features: no retriever at {path}: no slates. Train one with `python -m models.train_retrieval "
              f"--out {path}`", file=sys.stderr)
        return None
    from models.artifact import ArtifactError  # torch is imported only when a model is used
    from models.retrieval_artifact import load_retrieval_artifact
    from models.retrieval_data import load_table
    from slates.ranker import SlateRanker, SlateSettings

    try:
        retriever = load_retrieval_artifact(path)
    except ArtifactError as e:
        raise ModelLoadError(str(e)) from None
    assert bootstrap is not None  # output is kafka
    users = load_table(f"topic:{config.topics.users}", "users", bootstrap)
    ranker = SlateRanker(retriever, scorer.score, scorer.version, users,
                         SlateSettings(config.slate_candidates, len(config.features.horizons),
                                       config.features.item_delay_ms))
    triggers = {"both": f"every session start and request ({config.topics.requests})",
                "session-starts": "every session start", "requests": f"every request ({config.topics.requests})"}
    print(f"features: slates of {config.slate_k} for {triggers[config.slates_for]} to {config.topics.recommendations}, "
          f"retriever {path} (version {retriever.version}), {len(users):,} user profiles", file=sys.stderr)
    return ranker


def entry_needs(config: FlowConfig, scoring: bool, recovery: bool, slates: bool = False,
                catalog_size: int = 0) -> EntryNeeds:
    """What the entries must carry for this run's outputs (the rest is freed in the partition stage).

    Without a model, examples and event features, no output reads a point-in-time vector: the
    flow then counts windows only. With recovery, views always carry their context and get
    their vectors: a later run with a model can then score the views that a snapshot left
    waiting for item windows.

    >>> entry_needs(FlowConfig(model=None), scoring=False, recovery=False)
    EntryNeeds(views_only=True, keep_events=False, want_contexts=False, vectors=False, history=False, slate_k=0, slate_max_k=0, session_slates=True)
    >>> entry_needs(FlowConfig(model=None), scoring=True, recovery=False).vectors_for
    'views'
    """
    event_features = bool(config.event_features_topic) and config.output == "kafka"
    examples = config.examples_out is not None
    return EntryNeeds(views_only=not event_features, keep_events=event_features or examples,
                      want_contexts=scoring or examples or recovery,
                      vectors=scoring or examples or event_features or recovery,
                      history=examples or event_features or slates, slate_k=config.slate_k if slates else 0,
                      slate_max_k=catalog_size if slates else 0, session_slates=config.slates_for != "requests")


def _is_item_chunk(o: object) -> TypeGuard[ToItems]:
    """The partition stage's chunks for the item stage (its other outputs go on to the sinks or the slates)."""
    return isinstance(o, ToItems)


def build_flow(config: FlowConfig, bootstrap: str | None = None, recovery: bool | None = None,
               monitor: FlowMonitor | None = None, resume_from: str | None = None) -> Dataflow:
    """Wire the features flow. ``bootstrap`` is needed when input or output is Kafka."""
    # Long-lived state leaves the cyclic collector's generations (see dataflows/gc_policy.py).
    gc_policy.configure()
    freezer = gc_policy.SurvivorFreezer()
    reason = native.why_python()
    if reason is not None:
        print(f"features: the hot path runs as plain Python, ~1.4x slower: {reason}", file=sys.stderr)
    topics = config.topics
    if recovery is None:
        recovery = recovery_requested(sys.argv)
    scorer = load_scorer(config)
    ranker = load_slates(config, scorer, bootstrap)
    needs = entry_needs(config, scoring=scorer is not None, recovery=recovery, slates=ranker is not None,
                        catalog_size=ranker.catalog_size() if ranker is not None else 0)
    if resume_from:
        check_recovery(resume_from, config.features, needs)  # one line now, not a panic in a worker
    if config.input == "kafka":
        if bootstrap is None:
            msg = "the kafka input needs a broker address"
            raise ValueError(msg)
        raw: Any = InteractionsSource(bootstrap, topics.interactions, tail=not config.backfill,
                                      start=config.start, batch_size=config.batch_size,
                                      heartbeat_ms=config.heartbeat_ms, stop=STOP,
                                      requests_topic=topics.requests if ranker is not None
                                      and config.slates_for != "session-starts" else None)
        partitions = raw.partitions
    else:
        raw = JsonlSource(config.input, config.virtual_partitions, config.batch_size)
        partitions = config.virtual_partitions
    ctx = _Context(config, partitions, monitor or FlowMonitor(config.progress_interval), recovery, needs)
    if ranker is not None:
        ctx.monitor.observe_slates(ranker.counters)  # the progress line shows slates from the start

    def observe_partition(state: PartitionState) -> None:
        ctx.monitor.observe_partition(state)
        freezer.tick()

    # A backfill ends with EOF; an idle partition follows the wall clock only in a live run.
    source = StagedSource(raw, config.features, want_follow_ups=config.examples_out is not None, needs=needs,
                          snapshot_states=recovery, observe=observe_partition, follow_wall_clock=not config.backfill)
    formatter = VectorOutputs(
        n_groups=len(config.features.horizons),
        score=scorer.score if scorer is not None else None,
        model_version=scorer.version if scorer is not None else "",
        event_features=not needs.views_only,
        examples=config.examples_out is not None,
    )

    def score_and_format(batches: list[Vectors]) -> list:
        before = formatter.scored
        out = formatter(batches)
        ctx.monitor.observe_scores(formatter.scored - before)
        return out

    flow = Dataflow("features")
    stage1 = op.input("read_validate_count_users", flow, source)
    # ToItems | Records | FollowUps | SlateRequests
    split1 = op.branch("split_item_chunks", stage1, _is_item_chunk)
    keys = shard_keys(config.features.item_shards)  # spread evenly over the workers
    by_shard = op.key_on("key_by_item_shard", split1.trues, lambda c: keys[c.shard])
    # (shard, ToItems)
    stage2 = op.stateful_batch("count_items_assemble", by_shard, lambda resume: _ItemLogic(ctx, resume))
    # (shard, Vectors | Records | ClosedItemWindows)
    split2 = op.branch("split_vectors", op.map("drop_shard", stage2, lambda kv: kv[1]),
                       lambda o: isinstance(o, Vectors))
    formatted = op.flat_map_batch("score_and_format", split2.trues, score_and_format)
    # Records | ExampleRows
    from_items, from_partitions = split2.falses, split1.falses
    outputs = [formatted]
    if ranker is not None:
        for_slates = op.merge("slate_inputs", from_partitions, from_items)
        # SlateRequests | ClosedItemWindows | Records | FollowUps
        to_slates = op.branch("split_slate_inputs", for_slates,
                              lambda o: isinstance(o, (SlateRequests, ClosedItemWindows)))
        keyed = op.key_on("key_for_slates", to_slates.trues, lambda _: "slates")
        slates = op.stateful_batch("rank_slates", keyed, lambda resume: _SlateLogic(ctx, ranker, resume))
        outputs += [op.map("drop_slate_key", slates, lambda kv: kv[1]), to_slates.falses]
        # Records (recommendations)
    else:
        outputs += [from_partitions, from_items]
    everything = op.merge("all_outputs", *outputs)
    # Records | FollowUps | ExampleRows
    split3 = op.branch("split_records", everything, lambda o: isinstance(o, Records))
    if config.output == "kafka":
        if bootstrap is None:
            msg = "the kafka output needs a broker address"
            raise ValueError(msg)
        sink_topics = destination_topics(topics, config.event_features_topic, slates=ranker is not None)
        records = op.map("records_for_sink", split3.trues, lambda r: ("records", r.records))
        op.output("write_kafka", records, KafkaRecordsSink(bootstrap, sink_topics))
    else:
        op.inspect("drop_records", split3.trues, lambda step, r: None)
    if config.examples_out is not None:
        rows = op.map("rows_for_examples", split3.falses, lambda x: ("examples", x))
        op.output("write_examples", rows, ExamplesSink(config.examples_out, config.features.label_horizon_ms))
    else:
        op.inspect("drop_follow_ups", split3.falses, lambda step, x: None)
    return flow
