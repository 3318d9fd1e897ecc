"""Benchmark of the synthetic producer: backfill throughput per sink, live pacing accuracy.

``python -m benchmarks.bench_producer`` starts its own embedded broker on a free port and
prints a markdown table. Backfill rows generate the default world (10k users, 5k items)
at --rate 20 (a 1-day backfill is ~1.7M events) and report the run's achieved rate: events
from the start of ``run()`` to the flushed sink. World building and calibration (~0.5 s)
before it and the final report after it (its oracle AUC sorts every view) are not timed,
as in the producer's own ``Rate: ... achieved`` line. Each row is run
several times and reports the median with the min-max spread. Live rows pace to the
Kafka sink for a few seconds and report the achieved rate.

The same-run baseline is the bare consume+parse+count loop (:func:`benchmarks.common.bare_loop`)
over a topic of ``--events`` generated events on the same broker, run ``--runs`` times
before the rows: the first table gives each backfill row's rate / the loop's (the
machine's speed varies about 2x from day to day, these ratios much less), the second the
absolute figures with the date, the machine and the load average before and after.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import bare_loop, conditions, headline, load_average, log_stderr, produce_input, ratio_table
from broker.admin import delete_topics, ensure_topics
from broker.embedded import EmbeddedBroker
from producers.synthetic.config import ProducerConfig
from producers.synthetic.prepare import prepare
from producers.synthetic.runner import run
from producers.synthetic.sinks import FileSink, KafkaSink, NullSink, Sink

START = datetime(2025, 1, 1, tzinfo=UTC)
KAFKA_TARGET = 300_000.0  # events/s to Kafka, backfill (the project's target)


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
    log_stderr(f"{what}: {value} ({notes})")
    return what, value, notes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_producer", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000, help="events per backfill run (default: %(default)s)")
    p.add_argument("--runs", type=int, default=3, help="runs per backfill row (default: %(default)s)")
    p.add_argument("--live-seconds", type=float, default=3.0, help="seconds per live row (default: %(default)s)")
    p.add_argument("--partitions", type=int, default=4, help="partitions of the Kafka topics (default: %(default)s)")
    args = p.parse_args(argv)
    base = ProducerConfig(mode="backfill", rate=20.0, days=1.0, count=args.events, start=START, progress_interval_s=0)
    before = conditions()
    rows: list[tuple[str, str, str]] = []
    ratios: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(port=0) as broker:
        assert broker.bootstrap is not None
        loop_topic = f"bench-loop-{uuid.uuid4().hex[:8]}"
        ensure_topics(broker.bootstrap, [loop_topic, loop_topic + "-truth"], partitions=args.partitions)
        produce_input(broker.bootstrap, loop_topic, args.events, 10_000, seed=7)
        loop = statistics.median(bare_loop(broker.bootstrap, loop_topic, args.partitions)[0] for _ in range(args.runs))
        log_stderr(f"bare loop: {loop:,.0f} events/s")
        delete_topics(broker.bootstrap, [loop_topic, loop_topic + "-truth"])
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
            ratios.append((f"backfill to {name}", statistics.median(rates) / loop, "bare loop"))
        for rate in (1_000.0, 10_000.0, 50_000.0):
            cfg = replace(base, mode="live", rate=rate, count=None, duration_s=args.live_seconds)
            achieved, n = live(cfg, kafka_sink(broker.bootstrap, args.partitions, live=True)())
            error = f"{100.0 * (achieved - rate) / rate:+.2f}% of the target, {n:,} events in {args.live_seconds:g} s"
            rows.append(row(f"live to Kafka at {rate:,.0f}/s", f"{achieved:,.1f}", error))
        delete_topics(broker.bootstrap, [t for t in broker_topics(broker.bootstrap) if t.startswith("bench-")])
    kafka = next(r for what, r, _ in ratios if what == "backfill to Kafka (events + truth topics), 1 process")
    headline("bench_producer", "producer backfill to Kafka (events + truth), 1 process / bare loop", kafka,
             "bare loop")
    print("\n" + ratio_table(ratios, title=f"Synthetic producer, backfill, {args.events:,} events per run: rate / the "
                            "bare consume+parse+count loop's over as many generated events on the same broker"))
    print(f"\nAbsolute figures; started {before}; ended with {load_average()}. Bare loop: {loop:,.0f} events/s "
          f"(median of {args.runs}). Target: >= {KAFKA_TARGET:,.0f} events/s to Kafka in backfill mode "
          "(events + truth).\n")
    print("| what | events/s: median (backfill) or achieved (live) | spread / accuracy |")
    print("| --- | ---: | --- |")
    for what, value, notes in rows:
        print(f"| {what} | {value} | {notes} |")
    return 0


def broker_topics(bootstrap: str) -> list[str]:
    from broker.admin import admin_client

    return list(admin_client(bootstrap).list_topics(timeout=10).topics)


if __name__ == "__main__":
    raise SystemExit(main())
