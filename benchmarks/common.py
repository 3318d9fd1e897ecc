"""Helpers shared by the benchmarks: same-run baselines and ratios, conditions, input, flow runs, a model.

Every benchmark starts its own embedded broker and throwaway topics, runs the project's
own commands as subprocesses (the producer, ``python -m dataflows.features``) and prints
markdown tables. The machine's speed varies about 2x from day to day, so every table
leads with ratios against a baseline measured in the same run (:func:`bare_loop` for
Kafka, the bare model forward for scoring) and then gives the absolute figures with
:func:`conditions`: the date, the machine and the load average. Each figure is a median
over several runs with its min-max spread. :func:`headline` hands a benchmark's key
ratios to ``benchmarks.run_all`` for its final table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Literal

import orjson
from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, Consumer, KafkaError, Producer, TopicPartition

from broker.admin import ensure_topics
from broker.config import Topics, producer_settings
from events import native

REPO = Path(__file__).resolve().parents[1]
SUMMARY_LINE = re.compile(r"features: done: ([\d,]+) records in ([\d.]+) s.*?([\d,]+) vectors, ([\d,]+) scores")
MAXRSS_LINE = re.compile(r"maxrss_kb=(\d+)")
#: run_all sets it to a file; :func:`headline` appends one JSON line per headline ratio there
HEADLINES_ENV = "RECSTREAM_BENCH_HEADLINES"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

Log = Callable[[str], None]


def log_stderr(line: str) -> None:
    """Progress goes to stderr; the tables go to stdout."""
    print(line, file=sys.stderr, flush=True)


def load_average() -> str:
    """``load average 0.52 0.61 0.70 (1/5/15 min), hot path compiled``.

    The last part is :func:`events.native.build` (``python`` with ``RECSTREAM_PURE_PYTHON=1``).
    """
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min), hot path {native.build()}"


@cache
def machine() -> str:
    """``AMD EPYC, 2 cores`` (the CPU model from /proc/cpuinfo, where there is one)."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores"


def conditions() -> str:
    """When and where a table was measured: ``2026-12-04 02:40 UTC, AMD EPYC, 2 cores, load average ...``."""
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}, {load_average()}"


def ratio_table(rows: Sequence[tuple[str, float | str, str]], title: str = "Ratios (same run)") -> str:
    """Markdown: ``| what | ratio | against |``, the table every benchmark leads with.

    >>> print(ratio_table([("flow", 0.5, "bare loop")], title="T"))
    T
    <BLANKLINE>
    | what | ratio | against (measured in the same run) |
    | --- | ---: | --- |
    | flow | 0.50 | bare loop |
    """
    lines = [title, "", "| what | ratio | against (measured in the same run) |", "| --- | ---: | --- |"]
    lines += [f"| {what} | {r:.2f} | {vs} |" if isinstance(r, float) else f"| {what} | {r} | {vs} |"
              for what, r, vs in rows]
    return "\n".join(lines)


def headline(benchmark: str, what: str, ratio: float, against: str) -> None:
    """Offer one ratio for ``run_all``'s headline table (nothing happens outside ``run_all``)."""
    path = os.environ.get(HEADLINES_ENV)
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"benchmark": benchmark, "what": what, "ratio": ratio, "against": against}) + "\n")


def bare_loop(bootstrap: str, topic: str, partitions: int, work: Literal["count", "validate"] = "count"
              ) -> tuple[float, float]:
    """(events/s, CPU µs per event of this thread) of the bare loop over a whole topic.

    A plain confluent-kafka consumer with the flow's consumer settings
    (:func:`dataflows.kafka_io.consumer_settings`; assign, ``consume`` of up to 2,000
    records with a 50 ms timeout: the last, partial batch waits out the timeout, and 1 s
    there halved the measured rate of a 200k-event topic, 2026-12-04) that parses
    every value with orjson and then either counts events per user in a dict (``count``:
    the same-run baseline of the Kafka benchmarks) or validates it with the event contract
    (``validate``: the floor under every conforming flow). The rate runs from the first
    record to the end of the topic. The CPU figure is this thread's only:
    the rest of the wall time the loop waits in ``consume()`` for librdkafka's fetcher and
    the broker, which run on the other core and which a flow overlaps with its own work.
    """
    from dataflows.kafka_io import consumer_settings
    from events.schema import check

    consumer = Consumer(consumer_settings(bootstrap, tail=False))
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    counts: dict[str, int] = {}
    rejected = 0
    done, n, started, cpu_started = 0, 0, None, 0.0
    loads = orjson.loads
    while done < partitions:
        for m in consumer.consume(2000, 0.05):
            error = m.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    done += 1
                continue
            if started is None:
                started, cpu_started = time.perf_counter(), time.thread_time()
            event = loads(m.value() or b"")
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


def spread(values: Sequence[float], digits: int = 0) -> str:
    """``median | min - max`` (two table cells).

    >>> spread([3.0, 1.0, 2.0])
    '2 | 1 - 3'
    """
    return f"{statistics.median(values):,.{digits}f} | {min(values):,.{digits}f} - {max(values):,.{digits}f}"


def producer_cmd(*args: str) -> list[str]:
    """``python -m producers.synthetic ARGS`` with progress lines once a minute."""
    return [sys.executable, "-m", "producers.synthetic", "--progress-interval", "60", *args]


def produce_input(bootstrap: str, topic: str, events: int, users: int, seed: int,
                  env: dict[str, str] | None = None) -> None:
    """Backfill ``events`` generated interactions into ``topic`` (truth to ``topic-truth``).

    1,000 events/s of event time, faults off: the input of the Kafka-to-Kafka benchmarks.
    ``env`` adds variables (``TOPIC_USERS``: where the world's profiles go).
    """
    cmd = producer_cmd("--backfill", "--rate", "1000", "--count", str(events), "--users", str(users),
                       "--seed", str(seed), "--topic", topic, "--truth-topic", topic + "-truth")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, **(env or {})}
    subprocess.run(cmd, env=env, cwd=REPO, check=True, capture_output=True)


def throwaway_topics(bootstrap: str, interactions: str, partitions: int) -> Topics:
    """Fresh output topics (user/item features, scores, dead letters) around an input topic."""
    tag = uuid.uuid4().hex[:8]
    topics = Topics(interactions=interactions, truth=interactions + "-truth", user_features=f"uf-{tag}",
                    item_features=f"if-{tag}", scores=f"sc-{tag}", dead_letters=f"dl-{tag}")
    ensure_topics(bootstrap, [topics.user_features, topics.item_features, topics.scores, topics.dead_letters],
                  partitions=partitions)
    return topics


def flow_env(bootstrap: str, topics: Topics, model: str | None, retriever: str | None = None) -> dict[str, str]:
    """Environment of a flow process: broker, ``TOPIC_*`` names, ``MODEL_PATH`` (None: no model) and
    ``RETRIEVER_PATH`` (None: no slates, whatever artifacts/ holds)."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "MODEL_PATH": model or "none",
           "RETRIEVER_PATH": retriever or "none"}
    for name, value in vars(topics).items():
        env[f"TOPIC_{name.upper()}"] = value
    return env


@dataclass(frozen=True)
class FlowRun:
    """What one backfill run of the features flow reported."""

    records: int  # input records read
    seconds: float  # from the first record read to the end of the run
    vectors: int  # point-in-time vectors completed
    scores: int  # views scored (0 without a model)
    peak_rss_mib: float  # maximum resident set of the flow process
    stderr: str = field(default="", repr=False)  # the flow's log (progress lines, summary)

    @property
    def events_per_s(self) -> float:
        return self.records / self.seconds


def add_flow_run_arguments(group: argparse._ActionsContainer) -> None:
    """``--partitions``, ``--processes`` and ``--flow-args``: how the Kafka-to-Kafka benchmarks run the flow."""
    group.add_argument("--partitions", type=int, default=4, help="input topic partitions (default: 4)")
    group.add_argument("--processes", type=int, nargs="+", default=[1, 2],
                       help="flow processes per row: 1 is one worker, 2 is two cooperating processes (default: 1 2)")
    group.add_argument("--flow-args", default="", help="extra arguments for the flow, e.g. '--batch-size 5000'")


def _flow_summary(stderr: str) -> tuple[int, float, int, int, float]:
    """(records, seconds, vectors, scores, peak RSS MiB) from one flow process's output."""
    match = SUMMARY_LINE.search(stderr)
    if match is None:
        msg = f"no summary line in the flow's output:\n{stderr[-2000:]}"
        raise RuntimeError(msg)
    records, seconds, vectors, scores = (match.group(i) for i in range(1, 5))
    return (int(records.replace(",", "")), float(seconds), int(vectors.replace(",", "")),
            int(scores.replace(",", "")), peak_rss_mib(stderr))


def run_timed(commands: Sequence[Sequence[str]], env: dict[str, str], what: str = "the flow") -> list[str]:
    """Run cooperating processes under ``/usr/bin/time -f maxrss_kb=%M``; return each one's stderr.

    Each stderr goes to a temporary file (no pipe to fill up) and ends with the process's
    ``maxrss_kb=`` line (:func:`peak_rss_mib`). One process failing leaves its peers waiting
    for it forever, so the others are killed then; any failure raises with its log's tail.
    """
    commands = [["/usr/bin/time", "-f", "maxrss_kb=%M", *c] for c in commands]
    with contextlib.ExitStack() as files:
        logs = [files.enter_context(tempfile.TemporaryFile("w+")) for _ in commands]
        running = [subprocess.Popen(c, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log, text=True)
                   for c, log in zip(commands, logs, strict=True)]
        while any(p.poll() is None for p in running) and not any(p.poll() for p in running):
            time.sleep(0.2)
        for p in running:
            if p.poll() is None:
                p.kill()
            p.wait()
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(log.read())
    for p, err in zip(running, outputs, strict=True):
        if p.returncode != 0:
            msg = f"{what} failed (exit {p.returncode}):\n{err[-3000:]}"
            raise RuntimeError(msg)
    return outputs


def peak_rss_mib(stderr: str) -> float:
    """The peak resident set (MiB) in the ``maxrss_kb=`` line that :func:`run_timed` adds."""
    rss = MAXRSS_LINE.search(stderr)
    if rss is None:
        msg = f"no maxrss_kb line in the output:\n{stderr[-2000:]}"
        raise RuntimeError(msg)
    return int(rss.group(1)) / 1024


def run_flow(bootstrap: str, topics: Topics, extra: Sequence[str] = (), model: str | None = None,
             launcher: Sequence[str] = ("-m", "dataflows.features"), processes: int = 1,
             retriever: str | None = None) -> FlowRun:
    """One backfill run of the flow over the whole input topic, writing records to Kafka.

    ``python -m dataflows.features --backfill --examples-out none`` under ``/usr/bin/time``;
    the rate is the flow's own ``features: done: ...`` line (process start-up and imports
    are not counted), the peak RSS is the flow process's. ``launcher`` replaces
    ``-m dataflows.features`` by another entry point that runs the same flow (a probe).
    ``retriever``: the Two-Tower artifact (with ``model``, the flow writes slates too).
    ``processes`` > 1 runs that many cooperating processes (``-i K -a ADDRESSES``) on this
    machine: records, vectors, scores and peak RSS are summed, the time is the slowest
    process's.
    """
    from broker.embedded import free_port

    cmd = [sys.executable, *launcher, "--backfill", "--examples-out", "none", "--progress-interval", "60", *extra]
    if processes == 1:
        commands = [cmd]
    else:
        addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
        commands = [[*cmd, "-i", str(i), "-a", addresses] for i in range(processes)]
    outputs = run_timed(commands, flow_env(bootstrap, topics, model, retriever))
    parts = [_flow_summary(err) for err in outputs]
    return FlowRun(records=sum(x[0] for x in parts), seconds=max(x[1] for x in parts),
                   vectors=sum(x[2] for x in parts), scores=sum(x[3] for x in parts),
                   peak_rss_mib=sum(x[4] for x in parts), stderr="\n".join(outputs))


def generate_jsonl(path: Path, *args: str) -> None:
    """Generated interactions to a JSONL file (truth beside it): ``producers.synthetic --sink jsonl ARGS``."""
    cmd = producer_cmd("--sink", "jsonl", "--out", str(path), "--truth-out", str(path.with_suffix(".truth.jsonl")),
                       *args)
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)


@dataclass(frozen=True)
class TrainedModel:
    """A model artifact trained by :func:`train_model`, with how it was made."""

    path: Path
    version: str
    val_auc: float
    examples: int
    seconds: float  # history generation + features backfill + training
    retriever: Path | None = None  # the Two-Tower trained on the same examples (train_model's retriever_out)


def train_model(out: Path, history_s: int = 2400, rate: float = 100.0, seed: int = 3,
                log: Log = log_stderr, retriever_out: Path | None = None) -> TrainedModel:
    """Train a DLRM on real generated history, as the scoring test does.

    The producer writes ``history_s`` seconds of event time at ``rate`` events/s to JSONL
    (the default world: 10,000 users, 5,000 items, from ``seed``), the features flow
    backfills it into point-in-time examples, and ``models.train`` trains 2 epochs
    (patience 1). The default (40 minutes of history, ~235k events, ~118k examples) takes
    about 20 s here and validates at AUC ~0.81. With ``retriever_out`` a Two-Tower is also
    trained on the same examples and the history's profiles (1 epoch; for slates: how
    fast, not how good).
    """
    from models.train import TrainConfig, train

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        history, examples = Path(tmp) / "history.jsonl", Path(tmp) / "examples.jsonl"
        log(f"model: generating {history_s:,} s of history at {rate:g} events/s")
        generate_jsonl(history, "--backfill", "--rate", str(rate), "--duration", str(history_s),
                       "--start", "2026-01-01T00:00:00Z", "--seed", str(seed))
        log("model: features backfill -> examples")
        cmd = [sys.executable, "-m", "dataflows.features", "--backfill", "--input", str(history), "--output", "none",
               "--examples-out", str(examples), "--model", "none", "--progress-interval", "60"]
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
        log("model: training")
        artifact = train(TrainConfig(examples=str(examples), out=str(out), epochs=2, patience=1, seed=seed),
                         log=lambda *a, **k: None)
        if retriever_out is not None:
            from models.train_retrieval import RetrievalTrainConfig, train_retrieval

            log("model: training the Two-Tower retriever")
            train_retrieval(RetrievalTrainConfig(examples=str(examples), users=str(history.with_suffix(".users.jsonl")),
                                                 items=str(history.with_suffix(".items.jsonl")), out=str(retriever_out),
                                                 epochs=1, seed=seed), log=lambda line: None)
    seconds = time.perf_counter() - started
    model = TrainedModel(path=out, version=artifact.version, val_auc=float(artifact.metrics["val_auc"]),
                         examples=int(artifact.metrics["n_train"] + artifact.metrics["n_val"]), seconds=seconds,
                         retriever=retriever_out)
    log(f"model: {out} version {model.version}, val AUC {model.val_auc:.3f} on {model.examples:,} examples, "
        f"{seconds:.0f} s in all")
    return model


def describe_model(path: str | Path) -> str:
    """``path (version V, DLRM D=16 bottom 64-16 top 64-1)`` for a table's caption."""
    from features.config import FeaturesConfig
    from models.artifact import load_artifact

    artifact = load_artifact(path, FeaturesConfig().spec)
    c = artifact.config
    return (f"{path} (version {artifact.version}, DLRM D={c.embedding_dim} bottom "
            f"{'-'.join(map(str, c.bottom_mlp))} top {'-'.join(map(str, c.top_mlp))})")


# Live runs (bench_latency, bench_slates): processes started, watched and stopped; Kafka timestamps.


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (NaN once it is gone, or without /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields_after_name = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields_after_name[11]) + int(fields_after_name[12])) / CLOCK_TICKS


def check_create_time(bootstrap: str, topics: list[str]) -> None:
    """Raise unless the first record of each topic's partition 0 carries a CreateTime timestamp."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-latency", "log_level": 2})
    try:
        for topic in topics:
            consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            message = consumer.poll(10.0)
            if message is None or message.error() is not None:
                msg = f"could not read a record of {topic} to check its timestamp type"
                raise RuntimeError(msg)
            if message.timestamp()[0] != TIMESTAMP_CREATE_TIME:
                msg = f"{topic} records carry timestamp type {message.timestamp()[0]}, not CreateTime"
                raise RuntimeError(msg)
    finally:
        consumer.close()


def wait_for_line(process: subprocess.Popen[bytes], log_path: Path, pattern: re.Pattern[bytes],
                  timeout_s: float, what: str = "progress line") -> None:
    """Wait until ``process`` wrote a line matching ``pattern`` to its log (e.g. it is reading its input)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"the process exited with {process.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}"
            raise RuntimeError(msg)
        if pattern.search(log_path.read_bytes()):
            return
        time.sleep(0.2)
    msg = f"no {what} within {timeout_s:g} s:\n{log_path.read_text(errors='replace')[-3000:]}"
    raise RuntimeError(msg)


def stop_group(process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """SIGINT to the process group (an orderly stop), SIGKILL if it does not end."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def sink_producer(bootstrap: str) -> Producer:
    """A producer with the features flow's sink settings (``dataflows.kafka_io``: linger 2 ms,
    reports for failed records only): what a baseline that writes records uses."""
    return Producer({**producer_settings(bootstrap), "linger.ms": 2, "delivery.report.only.error": True})
