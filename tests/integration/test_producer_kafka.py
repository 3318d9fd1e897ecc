"""The producer against a real broker: exactly N events with a matching checksum, truth, --check, failures."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import orjson

from broker.admin import admin_client
from broker.config import BOOTSTRAP_ENV
from broker.console import read_topic
from broker.embedded import EmbeddedBroker
from events.partitioning import partition_for

SMALL = ["--users", "500", "--items", "200", "--calibration-views", "5000", "--progress-interval", "0"]


def producer(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "producers.synthetic", *args, *SMALL],
                          env=env, capture_output=True, check=False, text=True, timeout=timeout)  # fmt: skip


def emission_order(values: list[bytes]) -> list[bytes]:
    """Backfill emits in (ts, event counter) order; the counter is the event_id's suffix."""

    def key(raw: bytes) -> tuple[int, int]:
        event = orjson.loads(raw)
        return event["ts"], int(event["event_id"].rsplit("-", 1)[1])

    return sorted(values, key=key)


def test_produce_n_consume_exactly_n_with_the_same_checksum(kafka_bootstrap, make_topics, kafka_env, tmp_path):
    events, truth = make_topics("events", "truth", partitions=4)
    report_path = tmp_path / "report.json"
    n = 20_000
    out = producer(kafka_env, "--backfill", "--rate", "5", "--count", str(n), "--topic", events, "--truth-topic", truth,
                   "--start", "2025-01-01T00:00:00Z", "--report", str(report_path))  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(report_path.read_text())
    records = read_topic(kafka_bootstrap, events)
    assert len(records) == n == report["events"] == report["messages"]
    values = [r.value for r in records]
    assert hashlib.sha256(b"".join(v + b"\n" for v in emission_order(values))).hexdigest() == report["checksum"]
    for r in records:  # keyed by user, placed by murmur2, per-partition counts from delivery reports
        assert r.key == orjson.loads(r.value)["user_id"].encode()
        assert r.partition == partition_for(r.key, 4)
    # A backfill gets delivery reports for failures only: the partition counts are the
    # producer's own murmur2 placement, and they must be where the broker put the records.
    by_partition = {str(p): sum(1 for r in records if r.partition == p) for p in range(4)}
    assert report["partitions"]["source"].startswith("murmur2")
    assert report["partitions"]["counts"] == {p: c for p, c in by_partition.items() if c}
    assert report["delivery_failures"] == 0 and report["delivery_latency"] is None
    truth = read_topic(kafka_bootstrap, truth)
    assert len(truth) == report["counts_by_type"]["view"]
    assert all(r.key == orjson.loads(r.value)["event_id"].encode() for r in truth)


def test_a_live_run_reports_every_delivery_with_its_latency(kafka_bootstrap, make_topics, kafka_env, tmp_path):
    events, truth = make_topics("events", "truth", partitions=4)
    report_path = tmp_path / "report.json"
    out = producer(kafka_env, "--rate", "2000", "--duration", "1.5", "--topic", events, "--truth-topic", truth,
                   "--report", str(report_path))  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(report_path.read_text())
    records = read_topic(kafka_bootstrap, events)
    by_partition = {str(p): sum(1 for r in records if r.partition == p) for p in range(4)}
    assert report["partitions"]["source"] == "delivery reports"
    assert report["partitions"]["counts"] == {p: c for p, c in by_partition.items() if c}
    assert sum(by_partition.values()) == report["messages"] > 2000
    assert 0 < report["delivery_latency"]["avg_ms"] <= report["delivery_latency"]["max_ms"] < 5000


def test_kafka_events_with_the_truth_in_a_file(kafka_bootstrap, make_topics, kafka_env, tmp_path):
    (events,) = make_topics("events", partitions=2)
    truth_file, report_path = tmp_path / "truth.jsonl", tmp_path / "report.json"
    out = producer(kafka_env, "--backfill", "--rate", "5", "--count", "3000", "--topic", events,
                   "--truth-topic", events + "-never", "--truth-out", str(truth_file), "--faults", "duplicate=0.01",
                   "--report", str(report_path))  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(report_path.read_text())
    values = [r.value for r in read_topic(kafka_bootstrap, events)]
    assert len(values) == report["messages"] == 3000 + report["faults"]["duplicate"]
    truth = [orjson.loads(line) for line in truth_file.read_bytes().splitlines()]
    views = {e["event_id"] for e in map(orjson.loads, values) if e["event_type"] == "view"}
    assert {t["event_id"] for t in truth if t["kind"] != "fault"} == views
    assert sum(1 for t in truth if t["kind"] == "fault") == report["faults"]["duplicate"] > 0
    assert events + "-never" not in admin_client(kafka_bootstrap).list_topics(timeout=10).topics  # never created


def test_check_round_trips_through_the_broker(make_topics, kafka_env):
    (events,) = make_topics("check")
    out = producer(kafka_env, "--check", "--topic", events)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK: 5 events round-tripped through topic") and out.stdout.count("\n") == 1


def test_faults_are_recorded_in_the_truth_topic(kafka_bootstrap, make_topics, kafka_env, tmp_path):
    events, truth = make_topics("events", "truth", partitions=2)
    report_path = tmp_path / "report.json"
    out = producer(kafka_env, "--backfill", "--rate", "5", "--count", "5000", "--topic", events, "--truth-topic", truth,
                   "--faults", "malformed=0.01,missing=0.01,invalid=0.01,duplicate=0.01,late=0.01",
                   "--report", str(report_path))  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(report_path.read_text())
    faults = [orjson.loads(r.value) for r in read_topic(kafka_bootstrap, truth)]
    faults = [f for f in faults if f["kind"] == "fault"]
    counted = {k: sum(1 for f in faults if f["fault"] == k) for k in report["faults"]}
    assert counted == report["faults"] and all(counted.values()), counted
    assert len(read_topic(kafka_bootstrap, events)) == 5000 + counted["duplicate"]


def test_delivery_failures_are_counted_and_exit_1(tmp_path):
    broker = EmbeddedBroker(port=0, log_path=tmp_path / "tansu.log")
    env = {**os.environ, BOOTSTRAP_ENV: broker.start()}
    args = ["--rate", "500", "--duration", "4", "--delivery-timeout-ms", "1000", "--topic", "doomed",
            "--truth-topic", "doomed-truth", *SMALL, "--progress-interval", "0.5"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "producers.synthetic", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        first = proc.stderr.readline()  # the first progress line: events are flowing
        assert broker.process is not None
        broker.process.kill()  # SIGKILL: on SIGTERM Tansu keeps serving open connections for a while
        broker.process.wait()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        broker.stop()
    assert "events sent" in first, first + stderr
    assert proc.returncode == 1, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("python -m producers.synthetic: error: ") and "were not delivered" in last
    assert "Delivery failures: " in stdout and "Delivery failures: 0" not in stdout


def test_the_catalog_and_user_profiles_go_to_their_topics_keyed_by_id(kafka_bootstrap, make_topics, kafka_env):
    from events.profiles import check_item, check_user

    events, users, items = make_topics("events", "users", "items", partitions=2)
    env = {**kafka_env, "TOPIC_USERS": users, "TOPIC_ITEMS": items}
    out = producer(env, "--backfill", "--rate", "5", "--count", "500", "--topic", events, "--no-truth",
                   "--start", "2025-01-01T00:00:00Z")
    assert out.returncode == 0, out.stderr
    for topic, n, check, key in ((users, 500, check_user, "user_id"), (items, 200, check_item, "item_id")):
        records = read_topic(kafka_bootstrap, topic)
        assert len(records) == n  # SMALL: 500 users, 200 items, each once
        values = [orjson.loads(r.value) for r in records]
        assert all(check(v) is None for v in values)
        assert all(r.key == v[key].encode() for r, v in zip(records, values))
        assert {v["updated_ms"] for v in values} == {1_735_689_600_000}  # the run's start
