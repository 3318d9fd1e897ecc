"""Where partitions really end (broker/offsets.py): the offsets command, the console's default
"only new records", and the flow's ``--start end`` on the embedded broker, whose reported ends
under-count a partition written in several producer batches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import orjson
from confluent_kafka import Producer

from broker.console import read_topic
from broker.offsets import partition_spans
from tests.eventlog import make_log
from tests.integration.flowtools import (
    REPO_ROOT,
    count,
    flow_env,
    produce_parts,
    start_features,
    stop,
    topic_set,
    wait_for,
)


def produce_in_batches(bootstrap: str, topic: str, partitions: int, batches: int, per_batch: int, tag: bytes) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for b in range(batches):
        for p in range(partitions):
            for i in range(per_batch):
                producer.produce(topic, tag + b"-%d-%d-%d" % (b, p, i), partition=p)
        assert producer.flush(10) == 0  # one request per batch: several stored batches per partition
    return batches * partitions * per_batch


def test_partition_spans_agree_with_a_full_count_by_consuming(kafka_bootstrap, make_topics):
    (topic,) = make_topics("spans", partitions=3)
    n = produce_in_batches(kafka_bootstrap, topic, 3, batches=5, per_batch=7, tag=b"old")
    by_partition: dict[int, list[int]] = {}
    for r in read_topic(kafka_bootstrap, topic):
        by_partition.setdefault(r.partition, []).append(r.offset)
    spans = partition_spans(kafka_bootstrap, topic)
    assert sum(s.records for s in spans.values()) == n == 105
    for p, offsets in by_partition.items():
        assert (spans[p].first, spans[p].last, spans[p].records) == (min(offsets), max(offsets), len(offsets))
    done = subprocess.run([sys.executable, "-m", "broker.offsets", topic, "--json"], capture_output=True, text=True,
                          env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
                          cwd=REPO_ROOT, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["partition"], r["records"], r["last"]) for r in rows] == [
        (p, len(by_partition[p]), max(by_partition[p])) for p in range(3)]


def test_the_offsets_command_names_a_missing_topic(kafka_env):
    done = subprocess.run([sys.executable, "-m", "broker.offsets", "no-such-topic"], capture_output=True, text=True,
                          env=kafka_env, cwd=REPO_ROOT, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == "python -m broker.offsets: error: topic 'no-such-topic' does not exist on the broker"


def test_the_console_prints_only_records_produced_after_it_started(kafka_bootstrap, kafka_env, make_topics):
    (topic,) = make_topics("console", partitions=2)
    produce_in_batches(kafka_bootstrap, topic, 2, batches=4, per_batch=5, tag=b"old")
    console = subprocess.Popen([sys.executable, "-m", "broker.console", topic, "--max-messages", "6"], env=kafka_env,
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        positioned = console.stderr.readline()
        assert "new records only" in positioned, positioned
        produce_in_batches(kafka_bootstrap, topic, 2, batches=3, per_batch=1, tag=b"new")
        out, _ = console.communicate(timeout=60)
    finally:
        console.kill()
    lines = out.splitlines()
    assert len(lines) == 6 and all(line.startswith("new-") for line in lines), lines


def test_the_flow_started_at_the_end_processes_only_new_events(kafka_bootstrap, kafka_env, make_topics, tmp_path):
    topics = topic_set(make_topics, partitions=2)
    now = time.time_ns() // 1_000_000
    # ~1.5 h of events each, all in the past (none beyond the flow's max_future_ms)
    old = make_log(31, n=1200, partitions=2, t0=now - 6 * 3_600_000, faults=False, shared_clock=True)
    new = make_log(32, n=400, partitions=2, t0=now - 3 * 3_600_000, faults=False, shared_clock=True,
                   sync_end=True)
    for half in (0, 1):  # the old events in several producer batches per partition
        produce_parts(kafka_bootstrap, topics["interactions"], [p[half * len(p) // 2:(half + 1) * len(p) // 2]
                                                               for p in old])
    log = tmp_path / "flow.log"
    flow = start_features(flow_env(kafka_env, topics), "--start", "end", "--event-features-topic",
                          topics["event_features"], "--idle-timeout-s", "1", log=log)
    try:
        wait_for(lambda: "features:" in log.read_text(), 60, "the flow's first progress line (its source is positioned)")
        n_new = produce_parts(kafka_bootstrap, topics["interactions"], new)
        wait_for(lambda: count(kafka_bootstrap, topics["event_features"]) >= n_new, 60, "the new events' features")
    finally:
        assert stop(flow, signal.SIGINT) == 0, log.read_text()[-2000:]
    ids = {orjson.loads(r.value)["event_id"] for r in read_topic(kafka_bootstrap, topics["event_features"])}
    assert ids == {orjson.loads(v)["event_id"] for p in new for v in p}  # every new event, no old one
    assert count(kafka_bootstrap, topics["dead_letters"]) == 0
