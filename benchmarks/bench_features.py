"""Benchmark of the features flow, Kafka to Kafka, against a same-run baseline.

``python -m benchmarks.bench_features`` starts its own embedded broker, generates input
with the synthetic producer (backfill at 1,000 events/s of event time, faults off) once
per world size, and times the flow reading the topic to its end and writing its records
(user/item windows, dead letters) back to Kafka:

    python -m dataflows.features --backfill --examples-out none --model none

The rate counts input records from the first one read to the end of the run (process
start-up and imports are not counted); peak RSS is the flow process's maximum resident
set. Rows with 2 flow processes run two cooperating processes (``-i 0/1 -a ...``) on this
machine: their records are summed, the time is the slower one's, the peak RSS is the sum.
Two reference loops run on the same topic in the same run, each a plain confluent-kafka
consumer (assign, batches of 2,000) with the flow's consumer settings
(:func:`dataflows.kafka_io.consumer_settings`):

* ``baseline``: the DESIGN.md anchor, parse every value with orjson and count events per
  user in a dict;
* ``floor``: parse every value with orjson and validate it with the event contract
  (:func:`events.schema.check`), keeping nothing. Every conforming flow does at least this
  per event. The loop also reports the CPU time of its own thread per event: that part is
  the floor of a flow's main thread. The rest of the loop's wall time it spends waiting in
  ``consume()`` for librdkafka's fetcher and the broker, which run on the other core and
  which a flow overlaps with its own work; so the loop's rate is not a bound on a flow's.

Each row runs several times; the table shows the median and the min-max spread. The
machine's load average is printed with it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from typing import Literal

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from benchmarks.common import (
    add_flow_run_arguments,
    load_average,
    produce_input,
    run_flow,
    spread,
    throwaway_topics,
)
from broker.admin import ensure_topics
from broker.embedded import EmbeddedBroker
from dataflows.kafka_io import consumer_settings
from events.schema import check

TARGET = 150_000.0  # events/s, one worker (issue target)


def reference_loop(bootstrap: str, topic: str, partitions: int, work: Literal["count", "validate"]
                   ) -> tuple[float, float]:
    """(events/s, CPU µs per event of this thread) of consume + orjson parse + a per-user count or the contract's check."""
    consumer = Consumer(consumer_settings(bootstrap, tail=False))
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    counts: dict[str, int] = {}
    rejected = 0
    done, n, started = 0, 0, None
    loads = orjson.loads
    while done < partitions:
        for m in consumer.consume(2000, 1.0):
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    done += 1
                continue
            if started is None:
                started, cpu_started = time.perf_counter(), time.thread_time()
            event = loads(m.value())
            if work == "count":
                user = event["user_id"]
                counts[user] = counts.get(user, 0) + 1
            elif check(event) is not None:
                rejected += 1
            n += 1
    elapsed = time.perf_counter() - (started or time.perf_counter())
    cpu = time.thread_time() - cpu_started if started is not None else 0.0
    consumer.close()
    if rejected:
        msg = f"{rejected} of {n} generated events failed validation in the floor loop"
        raise RuntimeError(msg)
    return n / elapsed, 1e6 * cpu / max(n, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_features", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000, help="input events per world (default: 1,000,000)")
    p.add_argument("--users", type=int, nargs="+", default=[10_000, 1_000_000],
                   help="world sizes in users (default: 10000 1000000)")
    p.add_argument("--repeats", type=int, default=3, help="runs per row (default: 3)")
    add_flow_run_arguments(p)
    args = p.parse_args(argv)
    rows = []
    with EmbeddedBroker(port=0) as broker:
        bootstrap = broker.bootstrap
        assert bootstrap is not None
        for users in args.users:
            interactions = f"in-{users}-{uuid.uuid4().hex[:6]}"
            ensure_topics(bootstrap, [interactions, interactions + "-truth"], partitions=args.partitions)
            produce_input(bootstrap, interactions, args.events, users, seed=7)
            base, floor, floor_cpu = [], [], []
            for _ in range(args.repeats):
                base.append(reference_loop(bootstrap, interactions, args.partitions, "count")[0])
                rate, cpu = reference_loop(bootstrap, interactions, args.partitions, "validate")
                floor.append(rate)
                floor_cpu.append(cpu)
            for processes in args.processes:
                flow, rss = [], []
                for _ in range(args.repeats):
                    run = run_flow(bootstrap, throwaway_topics(bootstrap, interactions, args.partitions),
                                   args.flow_args.split(), processes=processes)
                    flow.append(run.events_per_s)
                    rss.append(run.peak_rss_mib)
                    print(f"  {users:,} users, {processes} process(es): {run.events_per_s:,.0f} events/s, "
                          f"peak RSS {run.peak_rss_mib:,.0f} MiB", file=sys.stderr)
                rows.append((users, processes, base, floor, floor_cpu, flow, rss))
    print(f"\nFeatures flow, Kafka to Kafka, {args.events:,} events per world, {args.repeats} runs, "
          f"{load_average()}. Target: >= {TARGET:,.0f} events/s with one worker.\n")
    print("| users | flow processes | baseline consume+parse+count, events/s | spread "
          "| floor consume+parse+validate, events/s | spread | floor, CPU of its thread, µs/event "
          "| features flow, events/s | spread | flow / baseline | peak RSS of the flow (all processes) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for users, processes, base, floor, floor_cpu, flow, rss in rows:
        ratio = statistics.median(flow) / statistics.median(base)
        print(f"| {users:,} | {processes} | {spread(base)} | {spread(floor)} | {statistics.median(floor_cpu):.2f} "
              f"| {spread(flow)} | {ratio:.2f} | {statistics.median(rss):,.0f} MiB |")
    one = [(statistics.median(f), statistics.median(c), statistics.median(fl))
           for _, processes, _, f, c, fl, _ in rows if processes == 1]
    if one:
        rate, cpu, flow_rate = max(one)
        print(f"\nBudget at {TARGET:,.0f} events/s: {1e6 / TARGET:.2f} us per event. The floor loop (parse + "
              f"validate, nothing kept) ran at {rate:,.0f} events/s ({1e6 / rate:.2f} us per event of wall time), "
              f"of which {cpu:.2f} us was CPU on its thread and the rest waiting for fetches (which a flow "
              f"overlaps with its work); the flow took {1e6 / flow_rate:.2f} us per event.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
