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
Two reference loops (:func:`benchmarks.common.bare_loop`) run on the same topic in the
same run:

* ``bare loop``: consume + orjson parse + count events per user in a dict, the same-run
  baseline;
* ``floor``: consume + parse + validate with the event contract (:func:`events.schema.check`),
  keeping nothing: every conforming flow does at least this per event. The loop also
  reports the CPU time of its own thread per event, the floor of a flow's main thread; the
  rest of its wall time it waits for fetches, which a flow overlaps with its own work, so
  its rate is not a bound on a flow's.

The first table gives the ratios against the bare loop of the same run (the machine's
speed varies about 2x from day to day; these ratios much less), the second the absolute
figures with the date, the machine and the load average: each row runs several times
and shows the median and the min-max spread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid

from benchmarks.common import (
    add_flow_run_arguments,
    bare_loop,
    conditions,
    headline,
    produce_input,
    ratio_table,
    run_flow,
    spread,
    throwaway_topics,
)
from broker.admin import ensure_topics
from broker.embedded import EmbeddedBroker

TARGET = 150_000.0  # events/s, one worker (the project's target)


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
                base.append(bare_loop(bootstrap, interactions, args.partitions, "count")[0])
                rate, cpu = bare_loop(bootstrap, interactions, args.partitions, "validate")
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
    ratios = []
    for users, processes, base, _, _, flow, _ in rows:
        ratio = statistics.median(flow) / statistics.median(base)
        ratios.append((f"features flow, {users:,} users, {processes} process(es)", ratio, "bare loop"))
        if processes == 1 and users == args.users[0]:
            headline("bench_features", f"features flow / bare loop ({users:,} users, 1 worker)", ratio, "bare loop")
    ratios += [(f"floor (parse + validate), {users:,} users", statistics.median(floor) / statistics.median(base),
                "bare loop") for users, processes, base, floor, *_ in rows if processes == args.processes[0]]
    print("\n" + ratio_table(ratios, title=f"Features flow, Kafka to Kafka, {args.events:,} events per world: ratios "
                            "to the bare consume+parse+count loop over the same topic in the same run"))
    print(f"\nAbsolute figures, {args.repeats} runs each; {conditions()}. Target: >= {TARGET:,.0f} events/s with "
          "one worker.\n")
    print("| users | flow processes | features flow, events/s | spread | bare loop, events/s | spread "
          "| floor consume+parse+validate, events/s | spread | floor, CPU of its thread, µs/event "
          "| peak RSS of the flow (all processes) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for users, processes, base, floor, floor_cpu, flow, rss in rows:
        print(f"| {users:,} | {processes} | {spread(flow)} | {spread(base)} | {spread(floor)} "
              f"| {statistics.median(floor_cpu):.2f} | {statistics.median(rss):,.0f} MiB |")
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
