"""Benchmark of the synthetic producer: backfill throughput per sink, live pacing accuracy.

``python -m benchmarks.bench_producer`` starts its own embedded broker on a free port and
prints a markdown table. Backfill rows generate the default world (10k users, 5k items)
at --rate 20 (a 1-day backfill is ~1.7M events) and report the run's achieved rate: events
from the start of ``run()`` to the flushed sink. World building and calibration (~0.5 s)
before it and the final report after it (its oracle AUC sorts every view) are not timed,
as in the producer's own ``Rate: ... achieved`` line. Each row is run
several times and reports the median with the min-max spread. Live rows pace to the
Kafka sink for a few seconds and report the achieved rate.

The machine's load average is printed with the table: on 2 shared cores other processes
change the figures a lot.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from broker.admin import delete_topics, ensure_topics
from broker.embedded import EmbeddedBroker
from producers.synthetic.config import ProducerConfig
from producers.synthetic.prepare import prepare
from producers.synthetic.runner import run
from producers.synthetic.sinks import FileSink, KafkaSink, NullSink, Sink

START = datetime(2025, 1, 1, tzinfo=UTC)
KAFKA_TARGET = 300_000.0  # events/s to Kafka, backfill (issue target)


def backfill(cfg: ProducerConfig, make_sink: Callable[[], Sink]) -> float:
    """Events per second of one backfill run: the report's achieved rate, from the start of
    ``run()`` to the flushed sink (world building before it and the report after it, with its
    oracle AUC over every view, are not timed)."""
    setup = prepare(cfg)
    sink = make_sink()
    report = run(cfg, sink, setup, log=None)
    failures = report["delivery_failures"] + report["truth_delivery_failures"]
    if failures:
        msg = f"{failures} messages failed during the benchmark ({report['first_delivery_error']})"
        raise RuntimeError(msg)
    return float(report["rate_achieved"])


def live(cfg: ProducerConfig, sink: Sink) -> tuple[float, int]:
    """Achieved rate and events of one live run."""
    report = run(cfg, sink, prepare(cfg), log=None)
    return report["rate_achieved"], report["events"]


def kafka_sink(bootstrap: str, partitions: int, truth_path: Path | None = None,
               live: bool = False) -> Callable[[], Sink]:
    """Fresh topics per run; delivery reports per event only live, as the CLI's sink has them."""
    def make() -> Sink:
        events, truth = f"bench-{uuid.uuid4().hex[:8]}", f"bench-truth-{uuid.uuid4().hex[:8]}"
        ensure_topics(bootstrap, [events] if truth_path else [events, truth], partitions=partitions)
        return KafkaSink(bootstrap, events, truth, truth_path=truth_path, per_message_reports=live)

    return make


def row(what: str, value: str, notes: str) -> tuple[str, str, str]:
    print(f"{what}: {value} ({notes})", flush=True)
    return what, value, notes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_producer", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000, help="events per backfill run (default: %(default)s)")
    p.add_argument("--runs", type=int, default=3, help="runs per backfill row (default: %(default)s)")
    p.add_argument("--live-seconds", type=float, default=3.0, help="seconds per live row (default: %(default)s)")
    p.add_argument("--partitions", type=int, default=4, help="partitions of the Kafka topics (default: %(default)s)")
    args = p.parse_args(argv)
    base = ProducerConfig(mode="backfill", rate=20.0, days=1.0, count=args.events, start=START, progress_interval_s=0)
    load_before = os.getloadavg()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(port=0) as broker:
        assert broker.bootstrap is not None
        out = Path(tmp) / "events.jsonl"
        to_kafka = kafka_sink(broker.bootstrap, args.partitions)
        backfill_rows: list[tuple[str, ProducerConfig, Callable[[], Sink]]] = [
            ("null sink, 1 process", replace(base, parallel="off"), NullSink),
            ("null sink, generator process", replace(base, parallel="on"), NullSink),
            ("jsonl + truth files, 1 process", replace(base, parallel="off"),
             lambda: FileSink.to_path(out, truth_path=out.with_suffix(".truth"))),
            ("jsonl + truth files, generator process", replace(base, parallel="on"),
             lambda: FileSink.to_path(out, truth_path=out.with_suffix(".truth"))),
            ("Kafka (events + truth topics), 1 process", replace(base, parallel="off"), to_kafka),
            ("Kafka (events + truth topics), generator process", replace(base, parallel="on"), to_kafka),
            ("Kafka, truth to a file (--truth-out), 1 process", replace(base, parallel="off"),
             kafka_sink(broker.bootstrap, args.partitions, truth_path=out.with_suffix(".truth"))),
            ("Kafka, events only (--no-truth), 1 process", replace(base, parallel="off", truth=False), to_kafka),
        ]  # fmt: skip
        for name, cfg, make_sink in backfill_rows:
            rates = [backfill(cfg, make_sink) for _ in range(args.runs)]
            spread = f"{min(rates):,.0f} - {max(rates):,.0f} over {args.runs} runs of {args.events:,} events"
            rows.append(row(f"backfill to {name}", f"{statistics.median(rates):,.0f}", spread))
        for rate in (1_000.0, 10_000.0, 50_000.0):
            cfg = replace(base, mode="live", rate=rate, count=None, duration_s=args.live_seconds)
            achieved, n = live(cfg, kafka_sink(broker.bootstrap, args.partitions, live=True)())
            error = f"{100.0 * (achieved - rate) / rate:+.2f}% of the target, {n:,} events in {args.live_seconds:g} s"
            rows.append(row(f"live to Kafka at {rate:,.0f}/s", f"{achieved:,.1f}", error))
        delete_topics(broker.bootstrap, [t for t in broker_topics(broker.bootstrap) if t.startswith("bench-")])
    load_after = os.getloadavg()
    print("\n| what | events/s: median (backfill) or achieved (live) | spread / accuracy |")
    print("| --- | ---: | --- |")
    for what, value, notes in rows:
        print(f"| {what} | {value} | {notes} |")
    print(f"\nload average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}; {os.cpu_count()} cores. "
          f"Target: >= {KAFKA_TARGET:,.0f} events/s to Kafka in backfill mode (events + truth).")
    return 0


def broker_topics(bootstrap: str) -> list[str]:
    from broker.admin import admin_client

    return list(admin_client(bootstrap).list_topics(timeout=10).topics)


if __name__ == "__main__":
    raise SystemExit(main())
