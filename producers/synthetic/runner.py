"""One producer run: batches in, paced (live) or as fast as possible (backfill) into a sink, report out.

Generation and sending are separate: :func:`~producers.synthetic.batches.iter_batches` (in
this process, or in a worker process for big backfills) yields ready-to-send batches;
:class:`Emitter` hands each to a :class:`~producers.synthetic.sinks.Sink`, all at once in
backfill mode or in chunks as their deadlines come in live mode, and keeps the statistics.

>>> from datetime import UTC, datetime
>>> from producers.synthetic.config import ModelParams
>>> cfg = ProducerConfig(mode="backfill", rate=50, count=200, sink="stdout", progress_interval_s=0,
...                      start=datetime(2025, 1, 1, tzinfo=UTC),
...                      model=ModelParams(users=200, items=100, calibration_views=2000))
>>> report = run(cfg, NullSink(), log=None)
>>> report["events"], report["messages"], report["delivery_failures"]
(200, 200, 0)
"""

from __future__ import annotations

import sys
import time
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from broker.admin import ensure_topics
from broker.config import Topics
from broker.embedded import resolve_bootstrap
from events.partitioning import partition_for
from events.profiles import ITEM_FIELDS, USER_FIELDS
from producers.synthetic.batches import Batch, iter_batches
from producers.synthetic.catalog import csv_lines, profile_records
from producers.synthetic.config import ProducerConfig
from producers.synthetic.pacing import Clock, Pacer, Sleep
from producers.synthetic.prepare import Setup, Wall, backfill_span_s, block_events, from_ms, prepare, resolve_start
from producers.synthetic.report import RunStats, progress_line
from producers.synthetic.serialize import csv_header, csv_rows
from producers.synthetic.sinks import FileSink, KafkaSink, NullSink, Sink, SinkClosed, stdout_sink

PARALLEL_MIN_EVENTS = 300_000  # --parallel auto: a worker process pays off from about here (backfill)
PARALLEL_MIN_LIVE_RATE = 20_000.0  # --parallel auto: and from this rate in events/s (live)


def open_sink(cfg: ProducerConfig) -> Sink:
    """The configured sink; for Kafka, find the broker and create the topics if missing.

    Raises :class:`broker.admin.BrokerUnreachable` within seconds when no broker answers.
    """
    profile_paths = {kind: path for kind in PROFILE_KINDS if cfg.profiles and (path := cfg.profile_path(kind))}
    if cfg.sink == "kafka":
        topics = Topics.from_env()
        topic, truth_topic = cfg.topic or topics.interactions, cfg.truth_topic or topics.truth
        bootstrap = resolve_bootstrap()
        truth_file = cfg.truth_out if cfg.truth else None  # --truth-out: the truth goes to a file instead
        targets: dict[str, str | Path] = {}
        if cfg.profiles:
            targets = {"users": topics.users, "items": topics.items}
            targets.update(profile_paths)  # --users-out / --items-out: a file instead of the topic
        needed = [topic] + ([] if truth_file else [truth_topic]) + [t for t in targets.values() if isinstance(t, str)]
        ensure_topics(bootstrap, needed, partitions=cfg.partitions)
        # A backfill gets delivery reports for failures only (a callback per event is slow, see KafkaSink);
        # its partition counts come from the partitioner, its latency is queueing anyway.
        return KafkaSink(bootstrap, topic, truth_topic, cfg.delivery_timeout_ms, truth_path=truth_file,
                         per_message_reports=cfg.mode == "live", profile_targets=targets)
    if cfg.sink == "stdout":
        return stdout_sink(cfg.truth_out if cfg.truth else None, profile_paths)
    if cfg.out is None:  # ProducerConfig already refuses this; kept for type narrowing
        msg = f"--out PATH is required with --sink {cfg.sink}"
        raise ValueError(msg)
    truth = cfg.truth_path if cfg.truth else None
    if cfg.sink == "csv":
        return FileSink.to_path(cfg.out, csv_rows, truth_path=truth, header=csv_header(), profile_paths=profile_paths,
                                encode_profiles=profile_csv)
    return FileSink.to_path(cfg.out, truth_path=truth, profile_paths=profile_paths)


def use_worker(cfg: ProducerConfig) -> bool:
    """Whether batches are built in a worker process (``--parallel``; auto: big file backfills, fast live).

    A backfill to Kafka stays in one process: producing is the bottleneck there, and
    librdkafka's threads need the second core (with the worker it ran ~4% slower,
    2026-12-01). To JSONL the worker pays off.

    >>> from pathlib import Path
    >>> use_worker(ProducerConfig(mode="backfill", rate=20, days=1, sink="jsonl", out=Path("x"))), use_worker(ProducerConfig(count=10**7))
    (True, False)
    >>> use_worker(ProducerConfig(mode="backfill", rate=20, days=1)), use_worker(ProducerConfig(rate=50_000))
    (False, True)
    """
    if cfg.parallel != "auto":
        return cfg.parallel == "on"
    if cfg.experiment is not None:  # the policies (models, a Kafka consumer) stay in this process
        return False
    if cfg.mode == "live":  # generating a block pauses sending; at high rates that costs accuracy
        return cfg.rate >= PARALLEL_MIN_LIVE_RATE
    if cfg.sink == "kafka":
        return False
    expected = cfg.rate * backfill_span_s(cfg)
    return min(expected, cfg.count or expected) >= PARALLEL_MIN_EVENTS


class Progress:
    """Prints a progress line every ``interval_s`` seconds of wall time."""

    def __init__(self, clock: Clock, interval_s: float, log: TextIO | None, sink: Sink) -> None:
        self.clock, self.interval_s, self.log, self.sink = clock, interval_s, log, sink
        self.last_t, self.last_events, self.last_bytes = clock(), 0, 0

    def tick(self, events: int, nbytes: int) -> None:
        """Print a line if the interval has passed since the last one."""
        now = self.clock()
        if self.log is None or self.interval_s <= 0 or now - self.last_t < self.interval_s:
            return
        dt = now - self.last_t
        latency = self.sink.delivery.take_window() if self.sink.delivery is not None else None
        rate, mbps = (events - self.last_events) / dt, (nbytes - self.last_bytes) / dt / 1e6
        print(progress_line(events, rate, mbps, latency), file=self.log, flush=True)
        self.last_t, self.last_events, self.last_bytes = now, events, nbytes


class StopRequest:
    """A signal handler for SIGINT/SIGTERM that asks the run to stop at the next chunk.

    Raising KeyboardInterrupt in the middle of a send could leave a batch written but not
    counted; the flag is checked between chunks, so the report and checksum cover exactly
    what was sent. A second signal raises KeyboardInterrupt at once.
    """

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


class Emitter:
    """Sends batches (messages, truth and fault records), paced in live mode; keeps statistics."""

    def __init__(
        self, cfg: ProducerConfig, setup: Setup, sink: Sink, pacer: Pacer | None, progress: Progress, stop: StopRequest
    ) -> None:
        self.sink, self.pacer, self.progress, self.stop = sink, pacer, progress, stop
        self.duration_s = cfg.duration_s if pacer is not None else None  # live: wall seconds of sending
        self.stop_at: float | None = None  # clock time the live --duration ends
        self.stats = RunStats(len(setup.world.users.age), len(setup.world.items.price), cfg.partitions)
        self.user_keys = setup.serializer.user_keys
        self.user_partition = np.array([partition_for(k, cfg.partitions) for k in self.user_keys], dtype=np.int64)
        self.sent = 0  # events sent so far
        self.sent_bytes = 0
        self.stopped = False  # live --duration ran out

    def emit(self, batch: Batch) -> None:
        """Send a batch: at once, or in live mode chunk by chunk as events come due."""
        cursor = _Cursor(batch, [self.user_keys[u] for u in batch.message_user.tolist()], self.sink)
        try:
            if self.pacer is None:
                self._send(cursor, len(batch))
            else:
                self._paced(cursor)
        finally:
            done_e, done_m = cursor.events, cursor.messages
            sent_part = batch.block.take(slice(0, done_e))
            partitions = self.user_partition[batch.message_user[:done_m]]
            self.stats.add(sent_part, batch.ts_ms[:done_e], partitions, batch.payload(done_m))
            self.stats.add_faults([k for r, k in zip(batch.fault_rows.tolist(), batch.fault_kinds, strict=True) if r < done_e])
        self.progress.tick(self.sent, self.sent_bytes)

    def _send(self, cursor: _Cursor, e1: int) -> None:
        events, nbytes = cursor.send_until(e1)
        self.sent += events
        self.sent_bytes += nbytes

    def _paced(self, cursor: _Cursor) -> None:
        pacer, n = self.pacer, len(cursor.batch)
        assert pacer is not None
        if self.sent == 0 and cursor.events == 0:  # the schedule starts with the first send
            pacer.start()
            if self.duration_s is not None:
                self.stop_at = pacer.t0 + self.duration_s
        while cursor.events < n and not self.stop.requested:
            if self.stop_at is not None and pacer.clock() >= self.stop_at:
                self.stopped = True
                return
            due = pacer.due() - self.sent
            if due < min(pacer.chunk, n - cursor.events):  # not even a chunk due: sleep until one is
                pacer.wait_next(self.sent)
                due = pacer.due() - self.sent
                if due <= 0:
                    continue
            self._send(cursor, min(n, cursor.events + due))
            self.progress.tick(self.sent, self.sent_bytes)


class _Cursor:
    """How far a batch has been sent; sends the messages, truth and fault records of the next events."""

    def __init__(self, batch: Batch, keys: list[bytes], sink: Sink) -> None:
        self.batch, self.keys, self.sink = batch, keys, sink
        # plain lists: bisect on them is ~10x cheaper than np.searchsorted per chunk
        self.position = batch.position.tolist()
        self.views = batch.views.tolist()
        self.fault_rows = batch.fault_rows.tolist()
        self.events = 0  # events of the batch sent so far
        self.messages = 0

    def send_until(self, e1: int) -> tuple[int, int]:
        """Send everything that goes with events ``[events, e1)``; return (events, bytes) sent."""
        b, e0, m0 = self.batch, self.events, self.messages
        m1 = bisect_left(self.position, e1)
        self.sink.send(self.keys[m0:m1], b.values[m0:m1])
        v0, v1 = bisect_left(self.views, e0), bisect_left(self.views, e1)
        self.sink.send_truth(b.truth_keys[v0:v1], b.truth_values[v0:v1])
        f0, f1 = bisect_left(self.fault_rows, e0), bisect_left(self.fault_rows, e1)
        if f1 > f0:
            self.sink.send_truth(b.fault_keys[f0:f1], b.fault_values[f0:f1])
        whole = m0 == 0 and m1 == len(b.values)
        nbytes = len(b.payload()) - m1 if whole else sum(map(len, b.values[m0:m1]))
        self.events, self.messages = e1, m1
        return e1 - e0, nbytes


def run(
    cfg: ProducerConfig,
    sink: Sink,
    setup: Setup | None = None,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    wall: Wall = time.time,
    log: TextIO | None = sys.stderr,
    stop: StopRequest | None = None,
) -> dict[str, Any]:
    """Produce the configured stream into ``sink`` and return the report (the sink is closed).

    ``stop`` (installed as the SIGINT/SIGTERM handler by the CLI) or a KeyboardInterrupt
    ends the run early; what was sent is flushed and reported, ``interrupted`` set.
    """
    stop = stop or StopRequest()
    if setup is None:
        cfg = resolve_start(cfg, wall)
        setup = prepare(cfg, wall)
    else:  # the report and bounds must see the start the setup was built with
        cfg = replace(cfg, start=from_ms(setup.start_ms))
    live = cfg.mode == "live"
    pacer = Pacer(cfg.rate, clock, sleep) if live else None
    t0 = clock()
    published = publish_profiles(cfg, setup, sink)
    emitter = Emitter(cfg, setup, sink, pacer, Progress(clock, cfg.progress_interval_s, log, sink), stop)
    interrupted = False
    batches: Iterator[Batch]
    if use_worker(cfg):
        from producers.synthetic.parallel import worker_batches

        batches = worker_batches(cfg, setup, block_events(cfg), lambda: stop.requested)
    else:
        batches = iter_batches(cfg, setup, block_events(cfg))
    paced_end = None  # live: when the paced window ended
    try:
        for batch in batches:
            if stop.requested:
                break
            emitter.emit(batch)
            if emitter.stopped or stop.requested:
                break
        if stop.requested:
            interrupted = True
        elif pacer is not None and emitter.sent:
            if emitter.stop_at is None:  # --count: the last event's slot ends 1/rate after its deadline
                pacer.wait_for(emitter.sent)
                paced_end = clock()
            else:  # --duration: the window is the duration, whatever was sent in it
                sleep(max(0.0, emitter.stop_at - clock()))
                paced_end = emitter.stop_at
    except (KeyboardInterrupt, SinkClosed):
        interrupted = True
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()  # stops a worker process
    paced_s = (paced_end or clock()) - (pacer.t0 if pacer is not None and emitter.sent else t0)
    sink.close()
    elapsed_s = clock() - t0
    report = build_report(cfg, setup, emitter.stats, sink, paced_s if live else elapsed_s, elapsed_s, interrupted)
    report["profiles"] = published
    if setup.simulator.serving is not None:
        report["experiment"] = setup.simulator.serving.summary(setup.serializer.served_sessions)
    return report


PROFILE_KINDS = ("users", "items")


def publish_profiles(cfg: ProducerConfig, setup: Setup, sink: Sink) -> dict[str, int]:
    """Send the user profiles and the catalog before the first event (``--no-profiles``: none).

    Returns how many of each the sink kept (0 where it keeps none, e.g. stdout).
    """
    if not cfg.profiles:
        return dict.fromkeys(PROFILE_KINDS, 0)
    users, items = profile_records(setup.world, setup.start_ms)
    return {kind: sink.send_profiles(kind, records.keys, records.values)
            for kind, records in (("users", users), ("items", items))}


def profile_csv(kind: str, values: list[bytes]) -> bytes:
    """The CSV form of profile records (the CSV sink's)."""
    fields = USER_FIELDS if kind == "users" else ITEM_FIELDS
    return csv_lines(values, tuple(f.name for f in fields))


def build_report(
    cfg: ProducerConfig, setup: Setup, stats: RunStats, sink: Sink, rate_s: float, elapsed_s: float, interrupted: bool
) -> dict[str, Any]:
    """The JSON report of a finished run.

    ``rate_achieved`` is events per second of ``rate_s``: in live mode the paced wall time
    (from the first send to the end of the last event's 1/rate slot), in backfill mode the
    whole run until the sink was flushed.
    """
    delivery, m = sink.delivery, cfg.model
    failures, truth_failures, latency = 0, 0, None
    if delivery is not None and delivery.per_message:
        partitions = {"source": "delivery reports", "counts": {str(k): v for k, v in sorted(delivery.partitions.items())}}
        latency = {
            "avg_ms": round(1000 * delivery.latency_sum_s / max(delivery.delivered, 1), 3),
            "max_ms": round(1000 * delivery.latency_max_s, 3),
        }
    else:
        counts = {str(p): int(c) for p, c in enumerate(stats.virtual_partitions) if c}
        partitions = {"source": f"murmur2 of the key over {cfg.partitions} partitions", "counts": counts}
    if delivery is not None:
        failures, truth_failures = delivery.failed, delivery.truth_failed
    summary = stats.summary(m.user_top, m.item_top)
    summary["funnel"]["targets"] = {
        "click_per_view": m.click_rate, "cart_per_click": m.cart_rate, "purchase_per_cart": round(m.purchase_rate, 4)
    }  # fmt: skip
    summary["skew"].update(
        user_target=m.user_share, item_target=m.item_share,
        user_exponent=round(setup.world.user_exponent, 4), item_exponent=round(setup.world.item_exponent, 4),
    )  # fmt: skip
    return {
        "mode": cfg.mode,
        "sink": "null" if isinstance(sink, NullSink) else cfg.sink,
        "seed": cfg.seed,
        "run_tag": setup.tag,
        "start": from_ms(setup.start_ms).isoformat(),
        "first_ts": stats.first_ts,
        "last_ts": stats.last_ts,
        "rate_requested": cfg.rate,
        "rate_achieved": round(stats.events / rate_s, 3) if rate_s > 0 else None,
        "elapsed_s": round(elapsed_s, 4),
        "generator_process": use_worker(cfg),
        "events": stats.events,
        "messages": stats.messages,
        "bytes": stats.bytes,
        **summary,
        "partitions": partitions,
        "delivery_failures": failures,
        "truth_delivery_failures": truth_failures,
        "first_delivery_error": delivery.first_error if delivery is not None else "",
        "delivery_latency": latency,
        "checksum": stats.checksum(),
        "oracle": stats.oracle(),
        "faults": stats.faults,
        "fault_rates": asdict(cfg.faults),
        "intercepts": {k: round(getattr(setup.funnel, k), 6) for k in ("click", "cart", "purchase")},
        "interrupted": interrupted,
    }

