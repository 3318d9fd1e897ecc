"""Benchmark of the live latency from produce to score record, at ``--rate 1000``.

``python -m benchmarks.bench_latency`` trains a model on generated history (about 20 s,
:func:`benchmarks.common.train_model`) unless ``--model PATH`` is given. Every run then
gets its own fresh embedded broker (the broker's cost grows with what it stores, see
below, so runs must not inherit each other's data) and throwaway topics (4 partitions, ``--partitions``):

1. it starts the live flow, ``python -m dataflows.features`` in tail mode with
   ``MODEL_PATH`` and ``TOPIC_*`` pointing at the throwaway topics (``--recovery-runs``:
   also ``-r DIR -s 10 -b 30``, a snapshot every 10 s), and waits for its first progress
   line;
2. it starts the live producer, ``python -m producers.synthetic --rate 1000 --duration N``;
3. it waits until the producer has ended and the flow's progress lines show no new score
   for 3 s, sampling the CPU time of the broker, flow and producer processes every second
   (from ``/proc``); then it stops the flow with SIGINT and reads both topics.

Latency of a view = the Kafka timestamp of its score record minus the Kafka timestamp of
its interaction record, joined on ``event_id`` (the score record's key). Both are
CreateTime, stamped by librdkafka when ``produce()`` is called: the interaction's in the
producer process, the score's in the flow process. So the figure covers the producer's
batching (``linger.ms`` 10) and send, the broker, the flow's fetch, its stages, the
forward pass and the hand-over to the flow's producer; not the score's own trip to the
broker. Both timestamps come from the same machine's wall clock, in whole milliseconds
(each latency is exact to about 1 ms). The benchmark checks that both topics carry
CreateTime timestamps. Nothing reads the topics while the traffic runs: the embedded
broker's cost per request grows with what it stores, so a live measuring consumer would
slow down what it measures. CPU columns: CPU time of each process over the measured
window, 100% = one of the two cores.

The same-run baseline is the **bare relay** (``--relay-runs``), run the same way in place
of the flow: one process with the flow's consumer settings and the flow's sink producer
settings that polls the interactions, parses each with orjson and writes one record keyed
by ``event_id`` for every view to the scores topic (``python -m benchmarks.bench_latency
--relay``). It has the same producer, broker, fetches and hand-over, and none of the
flow's work, so flow / relay says what the flow adds, on the same machine under the same load.

The first ``--warmup`` seconds of traffic (by interaction timestamp) are discarded; the
rest gives count, p50, p90, p99 and max (numpy percentiles, linear interpolation) and the
share of produced views that got a score. Each run is a row, and each mode gets a row of
medians over its runs. A second table cuts the measured window into 10 s slices (p50,
p99 and broker CPU per slice, medians over runs): the embedded broker's CPU grows with
the number of record batches it stores, and the latency with it. Target: p99 at most
25 ms. The producer, the broker and the flow share the machine's 2 cores. The first table
gives the ratios of the flow's median p50 and p99 to the bare relay's (the machine's speed
varies about 2x from day to day, these ratios much less), the next ones the absolute
figures with the date, the machine and the load average.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from benchmarks.common import (
    REPO,
    Log,
    check_create_time,
    conditions,
    cpu_seconds,
    describe_model,
    flow_env,
    headline,
    log_stderr,
    producer_cmd,
    ratio_table,
    sink_producer,
    stop_group,
    train_model,
    wait_for_line,
)
from broker.admin import ensure_topics
from broker.config import Topics
from broker.console import read_topic
from broker.embedded import EmbeddedBroker

TARGET_P99_MS = 25.0
PROGRESS_LINE = re.compile(rb"(?:features|relay): [\d,]+ in\b")  # the flow's or the relay's progress line
SCORES_IN_LOG = re.compile(rb"([\d,]+) scores\b")
RELAY_FLAG = "--relay"
RELAY = "bare relay"
PARTITIONS = 4
LIVE, RECOVERY = "live", "live + recovery (-s 10)"  # the flow's modes
SLICE_MS = 10_000  # width of the time slices of the second table
CPU_SAMPLE_S = 1.0  # how often the processes' CPU time is sampled
PROCESSES = ("broker", "flow", "producer")  # whose CPU time is sampled


@dataclass
class Observed:
    """Both topics as read after a run, and the CPU time of the processes during it."""

    interactions: dict[str, tuple[int, bool]] = field(default_factory=dict)  # event_id -> (CreateTime ms, is a view)
    scores: dict[str, int] = field(default_factory=dict)  # event_id -> CreateTime ms of its first score record
    cpu: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # (wall ms, CPU s so far per process)

    def sample_cpu(self, pids: dict[str, int]) -> None:
        self.cpu.append((time.time_ns() // 1_000_000, {name: cpu_seconds(pid) for name, pid in pids.items()}))

    def read(self, bootstrap: str, topics: Topics) -> None:
        """Read the interactions and scores topics to their ends (after the run)."""
        for r in read_topic(bootstrap, topics.interactions, timeout_s=120):
            event = orjson.loads(r.value)  # type: ignore[arg-type]
            self.interactions.setdefault(event["event_id"], (r.timestamp_ms, event["event_type"] == "view"))
        for r in read_topic(bootstrap, topics.scores, timeout_s=120):
            self.scores.setdefault(r.key.decode(), r.timestamp_ms)  # type: ignore[union-attr]


@dataclass(frozen=True)
class LatencyRun:
    """Latencies (ms) of one run after the warm-up."""

    mode: str
    at: np.ndarray  # interaction CreateTime of each scored view (epoch ms)
    to_score: np.ndarray  # score CreateTime - interaction CreateTime
    views: int  # views produced after the warm-up
    start_ms: int  # start of the measured window (end of the warm-up)
    end_ms: int  # last interaction's CreateTime
    cpu: list[tuple[int, dict[str, float]]]
    load: float  # 1-minute load average at the end of the run

    def cpu_share(self, name: str, t0: float, t1: float) -> float:
        """Percent of one core that process ``name`` used between wall times t0 and t1 (ms), from the samples."""
        inside = [(t, c[name]) for t, c in self.cpu if t0 <= t <= t1 and c[name] == c[name]]
        if len(inside) < 2 or inside[-1][0] == inside[0][0]:
            return float("nan")
        return 100.0 * (inside[-1][1] - inside[0][1]) / ((inside[-1][0] - inside[0][0]) / 1000)

    def figures(self) -> dict[str, float]:
        a = self.to_score
        return {
            "count": float(len(a)), "scored %": 100.0 * len(a) / max(self.views, 1),
            "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max()),
            **{f"{name} CPU": self.cpu_share(name, self.start_ms, self.end_ms) for name in PROCESSES},
            "load": self.load,
        }

    def slices(self) -> list[dict[str, float]]:
        """p50, p99 and broker CPU per whole SLICE_MS of the measured window (a last partial
        slice, often a few ms with a handful of views, is left out)."""
        out = []
        for t0 in range(self.start_ms, self.end_ms - SLICE_MS + 1, SLICE_MS):
            a = self.to_score[(self.at >= t0) & (self.at < t0 + SLICE_MS)]
            if len(a):
                out.append({"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
                            "broker CPU": self.cpu_share("broker", t0, t0 + SLICE_MS)})
        return out


def latencies(seen: Observed, warmup_s: float, mode: str) -> LatencyRun:
    """Join scores to interactions on event_id; drop the warm-up; latencies in ms."""
    if not seen.interactions:
        msg = "no interaction was read: did the producer run?"
        raise RuntimeError(msg)
    first = min(ts for ts, _ in seen.interactions.values())
    last = max(ts for ts, _ in seen.interactions.values())
    start = first + round(warmup_s * 1000)
    views = {eid: ts for eid, (ts, is_view) in seen.interactions.items() if is_view and ts >= start}
    rows = [(views[eid], score_ts - views[eid]) for eid, score_ts in seen.scores.items() if eid in views]
    if not rows:
        msg = f"no view after the {warmup_s:g} s warm-up was scored"
        raise RuntimeError(msg)
    arr = np.array(rows, dtype=np.int64)
    return LatencyRun(mode=mode, at=arr[:, 0], to_score=arr[:, 1].astype(np.float64), views=len(views),
                      start_ms=start, end_ms=last, cpu=seen.cpu, load=os.getloadavg()[0])


def fresh_topics(bootstrap: str, partitions: int = PARTITIONS) -> Topics:
    """A full set of throwaway topics for one run."""
    tag = uuid.uuid4().hex[:8]
    topics = Topics(interactions=f"lat-in-{tag}", truth=f"lat-truth-{tag}", user_features=f"lat-uf-{tag}",
                    item_features=f"lat-if-{tag}", scores=f"lat-sc-{tag}", dead_letters=f"lat-dl-{tag}")
    ensure_topics(bootstrap, topics.all(), partitions=partitions)
    return topics


def scores_so_far(log_path: Path) -> int:
    """Views scored, from the flow's last progress line (0 before the first)."""
    found = SCORES_IN_LOG.findall(log_path.read_bytes()[-4000:])
    return int(found[-1].replace(b",", b"")) if found else 0


def wait_for_traffic(producer: subprocess.Popen[bytes], log_path: Path, pids: dict[str, int],
                     drain_s: float = 3.0, max_drain_s: float = 60.0) -> Observed:
    """Sample CPU until the producer ended and the flow reported no new score for ``drain_s``."""
    seen = Observed()
    ended: float | None = None
    last_count, last_change = -1, time.monotonic()
    while True:
        seen.sample_cpu(pids)
        time.sleep(CPU_SAMPLE_S)
        now = time.monotonic()
        if ended is None and producer.poll() is not None:
            ended = now
        count = scores_so_far(log_path)
        if count != last_count:
            last_count, last_change = count, now
        if ended is not None and (now - last_change > drain_s or now - ended > max_drain_s):
            return seen


def bare_relay() -> int:
    """The bare relay (``python -m benchmarks.bench_latency --relay``): interactions in, a record per view out.

    Broker and topics from the environment, as the flow's. It runs until SIGINT and prints
    a progress line a second (``relay: N in, M scores``).
    """
    from dataflows.kafka_io import consumer_settings

    bootstrap, topics = os.environ["KAFKA_BOOTSTRAP_SERVERS"], Topics.from_env()
    consumer = Consumer(consumer_settings(bootstrap, tail=True))
    partitions = consumer.list_topics(topics.interactions, timeout=10).topics[topics.interactions].partitions
    consumer.assign([TopicPartition(topics.interactions, p, OFFSET_BEGINNING) for p in partitions])
    producer = sink_producer(bootstrap)
    n = scored = 0
    next_log = time.monotonic()
    try:
        while True:
            first = consumer.poll(0.1)  # returns as soon as one record is there
            batch = [first, *consumer.consume(1000, 0)] if first is not None else []
            for m in batch:
                if m.error() is not None:
                    continue
                n += 1
                event = orjson.loads(m.value() or b"")
                if event["event_type"] == "view":
                    eid = event["event_id"].encode()
                    producer.produce(topics.scores, orjson.dumps({"event_id": event["event_id"]}), eid)
                    scored += 1
            producer.poll(0)
            if time.monotonic() >= next_log:
                print(f"relay: {n:,} in, {scored:,} scores", file=sys.stderr, flush=True)
                next_log += 1.0
    except KeyboardInterrupt:
        pass
    finally:
        producer.flush(10)
        consumer.close()
        print(f"relay: {n:,} in, {scored:,} scores", file=sys.stderr, flush=True)
    return 0


def start_flow(bootstrap: str, topics: Topics, model: Path, mode: str,
               work: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """The live flow on ``topics`` (``mode`` with recovery: a fresh recovery directory; :data:`RELAY`: the
    bare relay instead of the flow) once it reads, and its log."""
    extra: list[str] = []
    if mode == RECOVERY:
        directory = work / f"recovery-{uuid.uuid4().hex[:6]}"
        directory.mkdir()
        subprocess.run([sys.executable, "-m", "bytewax.recovery", str(directory), "1"], cwd=REPO, check=True,
                       capture_output=True)
        extra = ["-r", str(directory), "-s", "10", "-b", "30"]
    cmd = [sys.executable, "-m", "dataflows.features", "--progress-interval", "1", *extra]
    if mode == RELAY:
        cmd = [sys.executable, "-m", "benchmarks.bench_latency", RELAY_FLAG]
    log_path = work / f"flow-{topics.scores}.log"
    with open(log_path, "wb") as out:
        flow = subprocess.Popen(cmd, env=flow_env(bootstrap, topics, str(model)), cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_line(flow, log_path, PROGRESS_LINE, timeout_s=60)
    except BaseException:
        stop_group(flow)
        raise
    return flow, log_path


def run_once(model: Path, rate: float, seconds: float, warmup_s: float, mode: str, work: Path,
             log: Log = log_stderr, partitions: int = PARTITIONS) -> LatencyRun:
    """One live run on a fresh broker: flow up, producer paced for ``seconds``, latencies joined."""
    with EmbeddedBroker(port=0) as broker:
        bootstrap, process = broker.bootstrap, broker.process
        assert bootstrap is not None and process is not None
        topics = fresh_topics(bootstrap, partitions)
        flow, log_path = start_flow(bootstrap, topics, model, mode, work)
        try:
            cmd = producer_cmd("--rate", f"{rate:g}", "--duration", f"{seconds:g}", "--topic", topics.interactions,
                               "--truth-topic", topics.truth, "--seed", "5")
            producer = subprocess.Popen(cmd, env=flow_env(bootstrap, topics, None), cwd=REPO,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            seen = wait_for_traffic(producer, log_path, {"broker": process.pid, "flow": flow.pid,
                                                         "producer": producer.pid})
            if producer.wait() != 0:
                assert producer.stderr is not None
                msg = f"the producer failed: {producer.stderr.read().decode(errors='replace')[-2000:]}"
                raise RuntimeError(msg)
        finally:
            stop_group(flow)
        check_create_time(bootstrap, [topics.interactions, topics.scores])
        seen.read(bootstrap, topics)
    result = latencies(seen, warmup_s, mode)
    f = result.figures()
    log(f"latency: {mode}: {f['count']:,.0f} views, p50 {f['p50']:.0f} ms, p99 {f['p99']:.0f} ms, "
        f"max {f['max']:.0f} ms, broker CPU {f['broker CPU']:.0f}%, flow CPU {f['flow CPU']:.0f}%")
    return result


def write_series(runs: list[LatencyRun], path: Path) -> None:
    """Every scored view of every run as CSV: mode, run, interaction CreateTime, latency (ms)."""
    with open(path, "w") as out:
        out.write("mode,run,interaction_ms,to_score_ms\n")
        for i, r in enumerate(runs):
            out.writelines(f"{r.mode},{i + 1},{at},{a:.0f}\n" for at, a in zip(r.at.tolist(), r.to_score.tolist()))


def tables(runs: list[LatencyRun], args: argparse.Namespace, model: str) -> str:
    """Markdown: ratios to the bare relay; a row per run and a median row per mode; then the same by time slice."""
    medians = {mode: {k: statistics.median(r.figures()[k] for r in runs if r.mode == mode) for k in ("p50", "p99")}
               for mode in dict.fromkeys(r.mode for r in runs)}
    ratios: list[tuple[str, float | str, str]] = []
    if RELAY in medians:
        for mode in medians:
            if mode != RELAY:
                ratios += [(f"{mode}: {k}", medians[mode][k] / medians[RELAY][k], f"{RELAY} {k}")
                           for k in ("p50", "p99")]
        if LIVE in medians:
            headline("bench_latency", f"latency p99, live flow / {RELAY} (produce -> score record)",
                     medians[LIVE]["p99"] / medians[RELAY]["p99"], RELAY)
    lines = [ratio_table(ratios, title=f"Latency produce -> score record at --rate {args.rate:g}: the flow's median "
                         f"p50 and p99 / the {RELAY}'s (same run; 1.00 = the flow adds nothing, higher = slower)"), ""]
    lines += [(f"Latency produce -> score record (CreateTime to CreateTime, ms) at --rate {args.rate:g}, "
              f"{args.duration:g} s of traffic per run, first {args.warmup:g} s discarded, a fresh broker per run, "
              f"{args.partitions} partitions per topic; "
              f"model {model}; {conditions()}"), "",
             ("| mode | run | views scored | of produced | p50 | p90 | p99 | max | CPU broker | CPU flow "
              "| CPU producer | load (1 min) | p99 <= 25 ms |"),
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]

    def row(mode: str, run: str, f: dict[str, float]) -> str:
        verdict = "met" if f["p99"] <= TARGET_P99_MS else f"missed by {100 * (f['p99'] / TARGET_P99_MS - 1):.0f}%"
        return (f"| {mode} | {run} | {f['count']:,.0f} | {f['scored %']:.1f}% | {f['p50']:.1f} | {f['p90']:.1f} "
                f"| {f['p99']:.1f} | {f['max']:.0f} | {f['broker CPU']:.0f}% | {f['flow CPU']:.0f}% "
                f"| {f['producer CPU']:.0f}% | {f['load']:.2f} "
                f"| {verdict} |")

    modes = list(dict.fromkeys(r.mode for r in runs))
    for mode in modes:
        figures = [r.figures() for r in runs if r.mode == mode]
        lines += [row(mode, str(i + 1), f) for i, f in enumerate(figures)]
        median = {k: statistics.median(f[k] for f in figures) for k in figures[0]}
        lines.append(row(f"**{mode}**", f"**median of {len(figures)}**", median))
    lines += ["", (f"By {SLICE_MS // 1000} s slice of the measured window (medians over the runs of a mode): "
               "p50 / p99 ms, broker CPU"), "", "| mode | " + " | ".join(
                  f"{args.warmup + i * SLICE_MS / 1000:g}-{args.warmup + (i + 1) * SLICE_MS / 1000:g} s"
                  for i in range(max(len(r.slices()) for r in runs))) + " |"]
    lines.append("| --- |" + " ---: |" * (lines[-1].count("|") - 2))
    for mode in modes:
        per_run = [r.slices() for r in runs if r.mode == mode]
        cells = []
        for i in range(max(map(len, per_run))):
            here = [s[i] for s in per_run if i < len(s)]
            med = {k: statistics.median(s[k] for s in here) for k in here[0]}
            cells.append(f"{med['p50']:.0f} / {med['p99']:.0f} ms, {med['broker CPU']:.0f}%")
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [RELAY_FLAG]:
        return bare_relay()
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_latency",
                                description=__doc__.split("\n\n")[0].replace("``", ""),
                                epilog="The module docstring says exactly what is measured and how.")
    p.add_argument("--model", type=Path, default=None,
                   help="DLRM artifact (default: train one on 40 min of generated history, ~20 s)")
    p.add_argument("--rate", type=float, default=1000.0, help="live producer rate, events/s (default: 1000)")
    p.add_argument("--duration", type=float, default=40.0, help="seconds of traffic per run (default: 40)")
    p.add_argument("--warmup", type=float, default=10.0, help="first seconds of traffic discarded (default: 10)")
    p.add_argument("--runs", type=int, default=3, help="live runs without recovery (default: 3)")
    p.add_argument("--relay-runs", type=int, default=2,
                   help="runs of the bare relay, the same-run baseline (default: 2; 0: none, and no ratios)")
    p.add_argument("--recovery-runs", type=int, default=2,
                   help="live runs with -r recovery, snapshots every 10 s (default: 2; 0: none)")
    p.add_argument("--partitions", type=int, default=PARTITIONS,
                   help=f"partitions of every topic (default: {PARTITIONS}, the project's default)")
    p.add_argument("--series", type=Path, default=None, metavar="CSV",
                   help="also write every scored view's latencies here, for plots (default: none)")
    args = p.parse_args(argv)
    if args.warmup >= args.duration:
        p.error(f"--warmup ({args.warmup:g}) must be shorter than --duration ({args.duration:g})")
    if args.partitions < 1:
        p.error(f"--partitions must be >= 1, got {args.partitions}")
    if args.runs + args.recovery_runs + args.relay_runs < 1:
        p.error("nothing to run: --runs, --relay-runs and --recovery-runs are all 0")
    runs: list[LatencyRun] = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        work = Path(tmp)
        model = args.model or train_model(work / "dlrm.pt").path
        caption = describe_model(model)
        # the relay and the live flow alternate, then the runs with recovery
        order = [mode for i in range(max(args.relay_runs, args.runs))
                 for mode, count in ((RELAY, args.relay_runs), (LIVE, args.runs)) if i < count]
        runs.extend(run_once(model, args.rate, args.duration, args.warmup, mode, work, partitions=args.partitions)
                    for mode in order + [RECOVERY] * args.recovery_runs)
    if args.series is not None:
        write_series(runs, args.series)
    print()
    print(tables(runs, args, caption))
    return 0


if __name__ == "__main__":
    sys.exit(main())
