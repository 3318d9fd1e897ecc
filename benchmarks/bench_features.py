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
The baseline row is the DESIGN.md anchor measured on the same topic in the same run:
a plain confluent-kafka consumer (assign, batches of 2,000) that parses every value with
orjson and counts events per user in a dict. Each row runs several times; the table shows
the median and the min-max spread. The machine's load average is printed with it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid

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

TARGET = 150_000.0  # events/s, one worker (issue target)


def baseline(bootstrap: str, topic: str, partitions: int) -> float:
    """Events/s of consume + orjson parse + per-user dict count (the DESIGN.md anchor)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.partition.eof": True,
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    counts: dict[str, int] = {}
    done, n, started = 0, 0, None
    while done < partitions:
        for m in consumer.consume(2000, 1.0):
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    done += 1
                continue
            if started is None:
                started = time.perf_counter()
            user = orjson.loads(m.value())["user_id"]
            counts[user] = counts.get(user, 0) + 1
            n += 1
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return n / elapsed


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
            base = [baseline(bootstrap, interactions, args.partitions) for _ in range(args.repeats)]
            for processes in args.processes:
                flow, rss = [], []
                for _ in range(args.repeats):
                    run = run_flow(bootstrap, throwaway_topics(bootstrap, interactions, args.partitions),
                                   args.flow_args.split(), processes=processes)
                    flow.append(run.events_per_s)
                    rss.append(run.peak_rss_mib)
                    print(f"  {users:,} users, {processes} process(es): {run.events_per_s:,.0f} events/s, "
                          f"peak RSS {run.peak_rss_mib:,.0f} MiB", file=sys.stderr)
                rows.append((users, processes, base, flow, rss))
    print(f"\nFeatures flow, Kafka to Kafka, {args.events:,} events per world, {args.repeats} runs, "
          f"{load_average()}. Target: >= {TARGET:,.0f} events/s with one worker.\n")
    print("| users | flow processes | baseline consume+parse+count, events/s | spread | features flow, events/s "
          "| spread | flow / baseline | peak RSS of the flow (all processes) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for users, processes, base, flow, rss in rows:
        ratio = statistics.median(flow) / statistics.median(base)
        print(f"| {users:,} | {processes} | {spread(base)} | {spread(flow)} | {ratio:.2f} "
              f"| {statistics.median(rss):,.0f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
