"""The main job: windowed user/item statistics, point-in-time vectors and DLRM scores.

Run it with Bytewax's runner (defaults; broker and topics from the environment)::

    python -m bytewax.run dataflows.features
    python -m bytewax.run dataflows.features -r recovery/ -s 10 -b 30   # with recovery
    python -m bytewax.run "dataflows.features:get_flow(window_s=30, event_features_topic='event-features')"

or with its own command line, which also does backfills (``--help`` lists every flag)::

    python -m dataflows.features                      # live, like bytewax.run
    python -m dataflows.features --backfill --examples-out data/examples.jsonl
    python -m dataflows.features --backfill --input data/history.jsonl --output none

Stopping: the first Ctrl-C (SIGINT) or SIGTERM of a live flow stops it in order: the
source ends its partitions, Bytewax takes a final snapshot (with ``-r``) and open windows
stay open for the next run; a second signal aborts at once. A backfill is aborted by the
first signal (its examples file is only written when the input is complete).

The steps (what the stream carries after each):

    read_validate_count_users  ToItems | Records | FollowUps: each source partition reads its
                               input partition and runs the partition stage on it (decode,
                               validate, dedup, watermark, user counts and windows) where it
                               is read, so nothing crosses workers before the item stage
    key_by_item_shard          (shard, ToItems)
    count_items_assemble       (shard, Vectors | Records)
    score_and_format           Records (scores, event features) | ExampleRows
    write_kafka                -> user-features, item-features, dead-letters, scores [, event features]
    write_examples             -> examples JSONL (backfill only)
"""

from __future__ import annotations

import argparse
import os
import pickle
import signal
import sys
import threading
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic

from broker.admin import BrokerUnreachable, ensure_topics
from broker.config import Topics
from broker.embedded import resolve_bootstrap
from dataflows import gc_policy
from dataflows.files import ExamplesSink, JsonlSource
from dataflows.kafka_io import InteractionsSource, KafkaRecordsSink, destination_topics
from dataflows.routing import shard_keys
from dataflows.staged_source import EntryNeeds, StagedSource
from dataflows.observability import FlowMonitor
from events import native
from features.config import FeaturesConfig
from features.item_stage import ItemShardState, Vectors
from features.outputs import VectorOutputs
from features.partition_stage import PartitionState, Records, ToItems

DEFAULT_MODEL_PATH = "artifacts/dlrm.pt"


@dataclass(frozen=True)
class FlowConfig:
    """How the features flow runs (what it computes is in :class:`FeaturesConfig`)."""

    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    input: str = "kafka"  # "kafka" (the interactions topic) or the path of a JSONL file
    backfill: bool = False  # read the input to its end, then stop; write examples
    start: Literal["beginning", "end"] = "beginning"  # where to start without recovery state
    output: Literal["kafka", "none"] = "kafka"  # where records go ("none": examples only)
    examples_out: str | None = None  # JSONL of labelled view examples (backfill)
    event_features_topic: str | None = None  # also write every event's vector here
    model_path: str | None = DEFAULT_MODEL_PATH  # DLRM artifact; None: features only
    virtual_partitions: int = 4  # partitions a JSONL input is split into (as the topic)
    batch_size: int = 2000  # records per source poll
    heartbeat_ms: int = 1000  # idle source partitions report this often
    progress_interval_s: float = 10.0  # seconds between progress lines
    topics: Topics = field(default_factory=Topics.from_env)


def _recovery_requested(argv: list[str]) -> bool:
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


#: Set by the first SIGINT/SIGTERM of a live flow: the Kafka source ends its partitions in
#: order, Bytewax takes a final snapshot, and open windows stay open for the next run.
STOP = threading.Event()


def _install_stop_handlers(live: bool) -> None:
    """Ctrl-C and SIGTERM: an orderly stop for a live flow, an abort for a finite one.

    Bytewax alone stops abruptly on SIGINT (no final snapshot) and dies at once on SIGTERM.
    A second signal during an orderly stop aborts at once.
    """

    def orderly(signum: int, frame: object) -> None:
        if STOP.is_set():
            raise KeyboardInterrupt
        STOP.set()
        print(f"features: {signal.Signals(signum).name}: stopping after the current batch "
              "(again to abort)", file=sys.stderr, flush=True)

    handler = orderly if live else signal.default_int_handler
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


class _ItemLogic(StatefulBatchLogic):
    """Bytewax glue for one item shard: feed chunks, flush at the end of input, snapshot."""

    def __init__(self, ctx: _Context, resume: bytes | None):
        self.ctx = ctx
        self.state: ItemShardState | None = pickle.loads(resume) if resume is not None else None
        if self.state is not None:
            ctx.config.features.require_same(self.state.config)
            # this run's outputs decide, not the snapshot's
            self.state.all_vectors, self.state.any_vectors = ctx.needs.vectors_for == "all", ctx.needs.vectors
            if ctx.needs.keep_events and any(entry[0] is None for waiting in self.state.pending.values() for entry in waiting):
                msg = ("the recovery snapshot was taken by a run that wrote neither event features nor examples, "
                       "so the views it left waiting for item windows carry no event; resume it with the same "
                       "outputs (no --event-features-topic, no --examples-out), or start without its recovery directory")
                raise ValueError(msg)

    def on_batch(self, values: list[ToItems]) -> tuple[list, bool]:
        cfg = self.ctx.config
        out: list = []
        for chunk in values:
            if self.state is None:
                self.state = ItemShardState(cfg.features, chunk.shard, self.ctx.partitions, self.ctx.needs.vectors_for)
            out.extend(self.state.process(chunk))
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
    path = config.model_path
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


def entry_needs(config: FlowConfig, scoring: bool, recovery: bool) -> EntryNeeds:
    """What the entries must carry for this run's outputs (the rest is freed in the partition stage).

    Without a model, examples and event features, no output reads a point-in-time vector: the
    flow then counts windows only. With recovery, views always carry their context and get
    their vectors: a later run with a model can then score the views that a snapshot left
    waiting for item windows.

    >>> entry_needs(FlowConfig(model_path=None), scoring=False, recovery=False)
    EntryNeeds(views_only=True, keep_events=False, want_contexts=False, vectors=False)
    >>> entry_needs(FlowConfig(model_path=None), scoring=True, recovery=False).vectors_for
    'views'
    """
    event_features = bool(config.event_features_topic) and config.output == "kafka"
    examples = config.examples_out is not None
    return EntryNeeds(views_only=not event_features, keep_events=event_features or examples,
                      want_contexts=scoring or examples or recovery,
                      vectors=scoring or examples or event_features or recovery)


def build_flow(config: FlowConfig, bootstrap: str | None = None, recovery: bool | None = None,
               monitor: FlowMonitor | None = None) -> Dataflow:
    """Wire the features flow. ``bootstrap`` is needed when input or output is Kafka."""
    # Long-lived state leaves the cyclic collector's generations (see dataflows/gc_policy.py).
    gc_policy.configure()
    freezer = gc_policy.SurvivorFreezer()
    reason = native.why_python()
    if reason is not None:
        print(f"features: the hot path runs as plain Python, ~1.4x slower: {reason}", file=sys.stderr)
    if config.backfill and config.examples_out is None and config.output == "none":
        msg = "a backfill with --output none needs --examples-out, or it would write nothing"
        raise ValueError(msg)
    topics = config.topics
    if config.input == "kafka":
        if bootstrap is None:
            msg = "the kafka input needs a broker address"
            raise ValueError(msg)
        raw: Any = InteractionsSource(bootstrap, topics.interactions, tail=not config.backfill,
                                      start=config.start, batch_size=config.batch_size,
                                      heartbeat_ms=config.heartbeat_ms, stop=STOP)
        partitions = raw.partitions
    else:
        raw = JsonlSource(config.input, config.virtual_partitions, config.batch_size)
        partitions = config.virtual_partitions
    if recovery is None:
        recovery = _recovery_requested(sys.argv)
    scorer = load_scorer(config)
    needs = entry_needs(config, scoring=scorer is not None, recovery=recovery)
    ctx = _Context(config, partitions, monitor or FlowMonitor(config.progress_interval_s), recovery, needs)

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
    # ToItems | Records | FollowUps
    split1 = op.branch("split_item_chunks", stage1, lambda o: isinstance(o, ToItems))
    keys = shard_keys(config.features.item_shards)  # spread evenly over the workers
    by_shard = op.key_on("key_by_item_shard", split1.trues, lambda c: keys[c.shard])
    # (shard, ToItems)
    stage2 = op.stateful_batch("count_items_assemble", by_shard, lambda resume: _ItemLogic(ctx, resume))
    # (shard, Vectors | Records)
    split2 = op.branch("split_vectors", op.map("drop_shard", stage2, lambda kv: kv[1]),
                       lambda o: isinstance(o, Vectors))
    formatted = op.flat_map_batch("score_and_format", split2.trues, score_and_format)
    # Records | ExampleRows
    everything = op.merge("all_outputs", split1.falses, split2.falses, formatted)
    # Records | FollowUps | ExampleRows
    split3 = op.branch("split_records", everything, lambda o: isinstance(o, Records))
    if config.output == "kafka":
        if bootstrap is None:
            msg = "the kafka output needs a broker address"
            raise ValueError(msg)
        sink_topics = destination_topics(topics, config.event_features_topic)
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


def _env_config(**overrides: Any) -> FlowConfig:
    feature_keys = {
        "window_s": "window_ms", "lateness_s": "allowed_lateness_ms", "idle_timeout_s": "idle_timeout_ms",
        "item_delay_s": "item_delay_ms", "dedup_horizon_s": "dedup_horizon_ms", "label_horizon_s": "label_horizon_ms",
    }
    features: dict[str, Any] = {}
    flow: dict[str, Any] = {"model_path": os.environ.get("MODEL_PATH", DEFAULT_MODEL_PATH) or None}
    for name, value in overrides.items():
        if name in feature_keys:
            features[feature_keys[name]] = int(float(value) * 1000)
        elif name == "item_shards":
            features[name] = int(value)
        elif name in {f.name for f in fields(FlowConfig)}:
            flow[name] = value
        else:
            msg = f"unknown setting {name!r} for dataflows.features:get_flow"
            raise TypeError(msg)
    return FlowConfig(features=replace(FeaturesConfig(), **features), **flow)


def get_flow(**overrides: Any) -> Dataflow:
    """Flow factory for ``python -m bytewax.run "dataflows.features:get_flow(...)"``.

    Keyword arguments are FlowConfig fields, plus window_s, lateness_s, idle_timeout_s,
    item_delay_s, dedup_horizon_s, label_horizon_s and item_shards for the features.
    """
    config = _env_config(**overrides)
    _install_stop_handlers(live=config.input == "kafka" and not config.backfill)
    bootstrap = None
    if config.input == "kafka" or config.output == "kafka":
        bootstrap = resolve_bootstrap()
        ensure_topics(bootstrap, config.topics.all() + ([config.event_features_topic] if config.event_features_topic else []))
    return build_flow(config, bootstrap)


def __getattr__(name: str) -> Any:
    # `python -m bytewax.run dataflows.features` looks up `flow`; build it only then, so
    # importing this module (tests, tools) has no side effects.
    if name == "flow":
        return get_flow()
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def _parser() -> argparse.ArgumentParser:
    d, f = FlowConfig(), FeaturesConfig()
    p = argparse.ArgumentParser(
        prog="python -m dataflows.features",
        description="Windowed user/item statistics, point-in-time feature vectors and DLRM scores from the "
        "interactions topic (live) or a backfill over history. Broker: KAFKA_BOOTSTRAP_SERVERS, else the "
        "embedded broker. Topic names: TOPIC_* variables. Model: MODEL_PATH (default artifacts/dlrm.pt).",
    )
    g = p.add_argument_group("input and output")
    g.add_argument("--backfill", action="store_true", help="read the input to its end, write examples, stop")
    g.add_argument("--input", default=d.input, help="'kafka' or a JSONL file of interactions (default: kafka)")
    g.add_argument("--start", choices=["beginning", "end"], default=d.start,
                   help="where to start reading without recovery state (default: beginning)")
    g.add_argument("--output", choices=["kafka", "none"], default=d.output,
                   help="write records to Kafka, or nothing but examples (default: kafka)")
    g.add_argument("--examples-out", default=None, metavar="PATH",
                   help="labelled view examples, JSONL (default with --backfill: data/examples.jsonl; 'none': off)")
    g.add_argument("--event-features-topic", default=None, metavar="TOPIC",
                   help="also write every event's point-in-time vector to this topic (default: off)")
    g.add_argument("--model", default=None, metavar="PATH",
                   help=f"DLRM artifact, or 'none' (default: $MODEL_PATH or {DEFAULT_MODEL_PATH})")
    g.add_argument("--virtual-partitions", type=int, default=d.virtual_partitions,
                   help=f"partitions a JSONL input is split into, as the topic would be (default: {d.virtual_partitions})")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help=f"records per poll (default: {d.batch_size})")
    g.add_argument("--progress-interval", type=float, default=d.progress_interval_s,
                   help=f"seconds between progress lines (default: {d.progress_interval_s:g})")
    w = p.add_argument_group("windows and watermarks (seconds)")
    w.add_argument("--window-s", type=float, default=f.window_ms / 1000, help="tumbling window (default: 60)")
    w.add_argument("--lateness-s", type=float, default=f.allowed_lateness_ms / 1000, help="allowed lateness (default: 5)")
    w.add_argument("--idle-timeout-s", type=float, default=f.idle_timeout_ms / 1000,
                   help="idle time before the watermark follows the wall clock (default: 10)")
    w.add_argument("--item-delay-s", type=float, default=f.item_delay_ms / 1000,
                   help="item features cover windows closed this long before the event (default: 6)")
    w.add_argument("--dedup-horizon-s", type=float, default=f.dedup_horizon_ms / 1000,
                   help="remember event ids this long (default: 300)")
    w.add_argument("--label-horizon-s", type=float, default=f.label_horizon_ms / 1000,
                   help="follow-ups within this of their view are labels (default: 1800)")
    w.add_argument("--item-shards", type=int, default=f.item_shards, help=f"item stage shards (default: {f.item_shards})")
    r = p.add_argument_group("bytewax execution")
    r.add_argument("-w", "--workers-per-process", type=int, default=1, help="worker threads (default: 1)")
    r.add_argument("-i", "--process-id", type=int, default=None, help="this process's index (with -a)")
    r.add_argument("-a", "--addresses", default=None, help="all processes' host:port, ';'-separated")
    r.add_argument("-r", "--recovery-directory", default=None, help="recovery directory (init: python -m bytewax.recovery DIR 1)")
    r.add_argument("-s", "--snapshot-interval", type=float, default=None, help="seconds between snapshots (epoch length)")
    r.add_argument("-b", "--backup-interval", type=float, default=None, help="seconds of old snapshots to keep")
    return p


def config_from_args(args: argparse.Namespace) -> FlowConfig:
    """Map the command line onto FlowConfig (raises ValueError naming a bad value)."""
    for name in ("window_s", "idle_timeout_s", "item_delay_s", "dedup_horizon_s", "label_horizon_s", "progress_interval"):
        if getattr(args, name) <= 0:
            msg = f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name):g}"
            raise ValueError(msg)
    for name in ("batch_size", "virtual_partitions", "item_shards", "workers_per_process"):
        if getattr(args, name) < 1:
            msg = f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}"
            raise ValueError(msg)
    if args.input != "kafka" and not Path(args.input).is_file():
        msg = f"--input {args.input!r}: no such file (use 'kafka' to read the interactions topic)"
        raise ValueError(msg)
    if args.output == "none" and args.examples_out == "none":
        msg = "--output none with --examples-out none would write nothing"
        raise ValueError(msg)
    if args.output == "none" and not args.backfill:
        msg = "--output none only makes sense with --backfill"
        raise ValueError(msg)
    if args.input != "kafka" and not args.backfill:
        msg = f"--input {args.input!r} is a file: add --backfill (a file is read to its end)"
        raise ValueError(msg)
    model = args.model if args.model is not None else os.environ.get("MODEL_PATH", DEFAULT_MODEL_PATH)
    features = replace(
        FeaturesConfig(),
        window_ms=round(args.window_s * 1000),
        allowed_lateness_ms=round(args.lateness_s * 1000),
        idle_timeout_ms=round(args.idle_timeout_s * 1000),
        item_delay_ms=round(args.item_delay_s * 1000),
        dedup_horizon_ms=round(args.dedup_horizon_s * 1000),
        label_horizon_ms=round(args.label_horizon_s * 1000),
        item_shards=args.item_shards,
    )
    examples = args.examples_out or ("data/examples.jsonl" if args.backfill else None)
    if examples == "none":
        examples = None
    return FlowConfig(
        features=features,
        input=args.input,
        backfill=args.backfill,
        start=args.start,
        output=args.output,
        examples_out=examples,
        event_features_topic=args.event_features_topic,
        model_path=None if model in ("", "none") else model,
        virtual_partitions=args.virtual_partitions,
        batch_size=args.batch_size,
        progress_interval_s=args.progress_interval,
    )


def main(argv: list[str] | None = None) -> int:
    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main

    args = _parser().parse_args(argv)
    try:
        config = config_from_args(args)
        if args.recovery_directory and (args.snapshot_interval is None or args.backup_interval is None):
            msg = "-r needs -s (snapshot interval) and -b (backup interval), as in bytewax.run"
            raise ValueError(msg)
        bootstrap = None
        if config.input == "kafka" or config.output == "kafka":
            bootstrap = resolve_bootstrap()
            extra = [config.event_features_topic] if config.event_features_topic else []
            ensure_topics(bootstrap, config.topics.all() + extra)
        monitor = FlowMonitor(config.progress_interval_s)
        flow = build_flow(config, bootstrap, recovery=bool(args.recovery_directory), monitor=monitor)
    except (ValueError, BrokerUnreachable, FileNotFoundError, LookupError, ModelLoadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _install_stop_handlers(live=config.input == "kafka" and not config.backfill)
    recovery = None
    if args.recovery_directory:
        recovery = RecoveryConfig(args.recovery_directory, backup_interval=timedelta(seconds=args.backup_interval))
    epoch = timedelta(seconds=args.snapshot_interval) if args.snapshot_interval else None
    addresses = args.addresses.split(";") if args.addresses else None
    from bytewax.errors import BytewaxRuntimeError

    try:
        cli_main(flow, workers_per_process=args.workers_per_process, process_id=args.process_id,
                 addresses=addresses, epoch_interval=epoch, recovery_config=recovery)
    except (KeyboardInterrupt, BytewaxRuntimeError) as e:
        if not isinstance(e, KeyboardInterrupt) and not isinstance(e.__cause__, KeyboardInterrupt):
            raise
        print(f"{monitor.summary()}\nfeatures: aborted (no final snapshot; with -r a restart resumes from the "
              "last one)", file=sys.stderr)
        return 130
    monitor.maybe_log(force=True)
    print(monitor.summary(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
