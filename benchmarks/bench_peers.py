"""The features flow against its peers, on one input topic in one run: speed and correctness.

``python -m benchmarks.bench_peers`` starts its own embedded broker, generates ``--events``
interactions (backfill at 1,000 events/s of event time, faults off, ``--partitions``
partitions) and computes the same windowed statistics over that topic, Kafka to Kafka,
with each of:

* ``bare loop``: consume + orjson parse + count per user (:func:`benchmarks.common.bare_loop`),
  the same-run baseline; it writes nothing;
* ``features flow``: the project's flow with no model (``python -m dataflows.features
  --backfill --examples-out none``): user and item windows plus dead letters;
* ``textbook Bytewax``: :mod:`benchmarks.peers.bytewax_textbook`, ``fold_window`` per user
  and per item on Bytewax's own Kafka connectors;
* ``Quix Streams``: :mod:`benchmarks.peers.quix_windows`, tumbling window reduce per user,
  ``group_by`` item then the same, run from ``.venv-peers`` (``make bench-peers`` creates
  it; without it the Quix rows are left out with a note).

What they compute is defined in :mod:`benchmarks.peers.windows`: 1-minute tumbling windows
per user and per item, counts by event type, 5 s of allowed lateness. Each engine runs
``--runs`` times, in turn. Events/s counts input records from the first one read to the
end of the run (process start-up, imports and Quix's consumer-group join are not counted);
peak RSS is the process's maximum resident set.

Correctness: the input topic is read once and every (entity, window) counted exactly (the
oracle); after each run the engine's user and item window records are read back and
compared with it: events counted over all its records against the input's events, events
missing from windows it did write (dropped as late), events of windows it never wrote
(still open when the input ended) and windows written more than once.

The first table gives ratios (the features flow against each peer, every engine against
the bare loop), then the absolute figures with the date, the machine and the load average,
then correctness.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from benchmarks.common import (
    REPO,
    bare_loop,
    conditions,
    headline,
    log_stderr,
    peak_rss_mib,
    produce_input,
    ratio_table,
    run_flow,
    run_timed,
    spread,
    throwaway_topics,
)
from benchmarks.peers.windows import ENTITIES, Correctness, check_windows, expected_windows
from broker.admin import ensure_topics
from broker.console import read_topic
from broker.embedded import EmbeddedBroker

PEER_LINE = re.compile(r"^peer: (\{.*\})$", re.MULTILINE)
QUIX_PYTHON = REPO / ".venv-peers" / "bin" / "python"
PROJECT = "features flow"
BYTEWAX = "textbook Bytewax"
QUIX = "Quix Streams"


@dataclass
class Engine:
    """One way of computing the windows, and what its runs measured."""

    name: str
    run: Callable[[str, str, dict[str, str]], tuple[float, float]]  # (bootstrap, input, out topics) -> (ev/s, MiB)
    writes: bool = True  # False: the bare loop, which writes no windows
    rates: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    checks: list[dict[str, Correctness]] = field(default_factory=list)  # per run: entity -> check


def peer_summary(stderr: str) -> dict:
    """The ``peer: {...}`` line of a peer's run."""
    match = PEER_LINE.search(stderr)
    if match is None:
        msg = f"no 'peer:' summary in the peer's output:\n{stderr[-2000:]}"
        raise RuntimeError(msg)
    return json.loads(match.group(1))


def run_peer(cmd: list[str], bootstrap: str, topic: str, out: dict[str, str], what: str) -> tuple[float, float]:
    """Run one peer over the whole input topic: (events/s, peak RSS MiB)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}  # a dependency's deprecation notice is not the peer's output
    cmd = [*cmd, "--bootstrap", bootstrap, "--topic", topic, "--user-topic", out["user"], "--item-topic", out["item"]]
    (stderr,) = run_timed([cmd], env, what=what)
    summary = peer_summary(stderr)
    return summary["records"] / summary["seconds"], peak_rss_mib(stderr)


def engines(partitions: int, events: int, quix_python: Path | None) -> list[Engine]:
    """The engines to compare, in the order each round runs them."""

    def loop(bootstrap: str, topic: str, out: dict[str, str]) -> tuple[float, float]:
        return bare_loop(bootstrap, topic, partitions, "count")[0], float("nan")

    def project(bootstrap: str, topic: str, out: dict[str, str]) -> tuple[float, float]:
        topics = throwaway_topics(bootstrap, topic, partitions)
        out["user"], out["item"] = topics.user_features, topics.item_features
        run = run_flow(bootstrap, topics)
        return run.events_per_s, run.peak_rss_mib

    def textbook(bootstrap: str, topic: str, out: dict[str, str]) -> tuple[float, float]:
        return run_peer([sys.executable, "-m", "benchmarks.peers.bytewax_textbook"], bootstrap, topic, out, BYTEWAX)

    def quix(bootstrap: str, topic: str, out: dict[str, str]) -> tuple[float, float]:
        assert quix_python is not None
        cmd = [str(quix_python), "-m", "benchmarks.peers.quix_windows", "--expect", str(events)]
        return run_peer(cmd, bootstrap, topic, out, QUIX)

    chosen = [Engine("bare loop", loop, writes=False), Engine(PROJECT, project), Engine(BYTEWAX, textbook)]
    if quix_python is not None:
        chosen.append(Engine(QUIX, quix))
    return chosen


def window_records(bootstrap: str, topic: str) -> list[dict]:
    return [orjson.loads(r.value) for r in read_topic(bootstrap, topic, timeout_s=300) if r.value is not None]


def measure(args: argparse.Namespace, quix_python: Path | None, log: Callable[[str], None] = log_stderr
            ) -> tuple[list[Engine], int]:
    """Every engine ``args.runs`` times over one generated topic; returns the engines and the input's events."""
    chosen = engines(args.partitions, args.events, quix_python)
    with EmbeddedBroker(port=0) as broker:
        bootstrap = broker.bootstrap
        assert bootstrap is not None
        topic = f"in-peers-{uuid.uuid4().hex[:6]}"
        ensure_topics(bootstrap, [topic, topic + "-truth"], partitions=args.partitions)
        log(f"peers: producing {args.events:,} events ({args.users:,} users, {args.partitions} partitions)")
        produce_input(bootstrap, topic, args.events, args.users, seed=7)
        events = [orjson.loads(r.value or b"") for r in read_topic(bootstrap, topic, timeout_s=300)]
        oracle = expected_windows(events)
        log(f"peers: oracle: {len(events):,} events in {len(oracle):,} (entity, window) pairs")
        for i in range(args.runs):
            for engine in chosen:
                tag = uuid.uuid4().hex[:6]
                out = {entity: f"peer-{entity}-{tag}" for entity in ENTITIES}
                if engine.name in (BYTEWAX, QUIX):  # the features flow makes its own (throwaway_topics)
                    ensure_topics(bootstrap, list(out.values()), partitions=args.partitions)
                rate, rss = engine.run(bootstrap, topic, out)
                engine.rates.append(rate)
                engine.rss.append(rss)
                note = ""
                if engine.writes:
                    checks = {entity: check_windows(entity, oracle, len(events), window_records(bootstrap, out[entity]))
                              for entity in ENTITIES}
                    engine.checks.append(checks)
                    note = ", counted " + ", ".join(f"{c.entity} {100 * c.share:.1f}%" for c in checks.values())
                log(f"peers: run {i + 1}/{args.runs} {engine.name}: {rate:,.0f} events/s{note}")
    return chosen, len(events)


def cell(values: list[int], fmt: Callable[[int], str] = "{:,}".format) -> str:
    """One value, or every run's value when the runs differ."""
    return fmt(values[0]) if len(set(values)) == 1 else " / ".join(fmt(v) for v in values)


def tables(chosen: list[Engine], events: int, args: argparse.Namespace, quix_note: str) -> str:
    by_name = {e.name: e for e in chosen}
    median = {e.name: statistics.median(e.rates) for e in chosen}
    ratios: list[tuple[str, float | str, str]] = []
    for peer in (BYTEWAX, QUIX):
        if peer in median:
            ratio = median[PROJECT] / median[peer]
            ratios.append((f"{PROJECT} / {peer}", ratio, f"{peer}, same topic"))
            headline("bench_peers", f"{PROJECT} / {peer} (windows per user and item, Kafka to Kafka)", ratio, peer)
        else:
            ratios.append((f"{PROJECT} / {peer}", "-", quix_note))
    ratios += [(f"{e.name} / bare loop", median[e.name] / median["bare loop"], "bare loop") for e in chosen if e.writes]
    lines = [ratio_table(ratios, title=f"Peers: 1-minute windows per user and per item by event type, Kafka to Kafka, "
                         f"{events:,} events, {args.users:,} users, {args.partitions} partitions: ratios of events/s "
                         "(medians) in the same run"), "",
             f"Absolute figures, {args.runs} runs each, in turn; {conditions()}", "",
             "| engine | events/s | spread | peak RSS |", "| --- | ---: | ---: | ---: |"]
    for e in chosen:
        rss = "-" if not e.writes else f"{statistics.median(e.rss):,.0f} MiB"
        lines.append(f"| {e.name} | {spread(e.rates)} | {rss} |")
    if QUIX not in by_name:
        lines.append(f"| {QUIX} | - | - | - ({quix_note}) |")
    lines += ["", (f"Correctness: what each engine's window records counted against the input's {events:,} events "
               "(every event is in one user window and one item window; one value, or each run's when they differ)"),
              "",
              ("| engine | windows of | records | events counted | of the input | lost in written windows (late) "
               "| in windows never written (open at the end) | windows written twice or more | wrong windows |"),
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for e in chosen:
        for entity in ENTITIES if e.writes else ():
            runs = [c[entity] for c in e.checks]
            lines.append(
                f"| {e.name} | {entity}s | {cell([c.records for c in runs])} | {cell([c.counted for c in runs])} "
                f"| {cell([round(1000 * c.share) for c in runs], lambda v: f'{v / 10:.1f}%')} "
                f"| {cell([c.lost_in_written for c in runs])} | {cell([c.in_unwritten for c in runs])} "
                f"| {cell([c.reemitted for c in runs])} | {cell([c.wrong for c in runs])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_peers", description=__doc__.split("\n\n")[0],
                                epilog="The module docstring says exactly what each row measures.")
    p.add_argument("--events", type=int, default=300_000, help="input events (default: 300,000)")
    p.add_argument("--users", type=int, default=10_000, help="users in the generated world (default: 10000)")
    p.add_argument("--partitions", type=int, default=4, help="input topic partitions (default: 4)")
    p.add_argument("--runs", type=int, default=2, help="runs of each engine (default: 2)")
    p.add_argument("--quix-python", type=Path, default=QUIX_PYTHON,
                   help="Python of the virtual environment with Quix Streams (default: .venv-peers/bin/python, "
                   "created by make bench-peers)")
    args = p.parse_args(argv)
    if args.events < 1 or args.runs < 1 or args.partitions < 1:
        p.error(f"--events, --runs and --partitions must be >= 1, got {args.events}, {args.runs}, {args.partitions}")
    quix_python: Path | None = args.quix_python if args.quix_python.exists() else None
    quix_note = f"{args.quix_python} not found: make bench-peers creates it"
    if quix_python is None:
        log_stderr(f"peers: {quix_note}; Quix Streams is left out")
    chosen, events = measure(args, quix_python)
    print()
    print(tables(chosen, events, args, quix_note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
