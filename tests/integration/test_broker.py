"""The embedded broker, topic management and the console consumer, on a real broker."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from confluent_kafka import Producer

from broker.admin import BrokerUnreachable, check_reachable, ensure_topics, partition_count
from broker.console import read_topic
from broker.embedded import free_port
from events.partitioning import partition_for


def test_ensure_topics_is_idempotent(kafka_bootstrap, make_topics):
    (name,) = make_topics("idem", partitions=3)
    assert ensure_topics(kafka_bootstrap, [name], partitions=5) == []
    assert partition_count(kafka_bootstrap, name) == 3


def test_unreachable_broker_is_reported_within_seconds():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(BrokerUnreachable, match=f"127.0.0.1:{port}"):
        check_reachable(f"127.0.0.1:{port}")
    assert time.monotonic() - started < 10


def test_murmur2_partitioner_matches_the_broker(kafka_bootstrap, make_topics):
    (topic,) = make_topics("m2", partitions=4)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    keys = [f"u{i}" for i in range(200)]
    for k in keys:
        producer.produce(topic, key=k, value=b"x")
    assert producer.flush(10) == 0
    placed = {r.key.decode(): r.partition for r in read_topic(kafka_bootstrap, topic)}
    assert placed == {k: partition_for(k.encode(), 4) for k in keys}


def test_console_consumer_prints_keys_and_stops_after_max(kafka_bootstrap, make_topics, kafka_env):
    (topic,) = make_topics("console", partitions=2)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(10):
        producer.produce(topic, key=f"k{i}", value=f'{{"n":{i}}}')
    producer.flush(10)
    out = subprocess.run(
        [sys.executable, "-m", "broker.console", topic, "--from-beginning", "--max-messages", "4", "--print-key"],
        env=kafka_env, capture_output=True, text=True, timeout=60, check=True,
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 4
    for line in lines:
        key, value = line.split("\t")
        assert value == f'{{"n":{key[1:]}}}'
    assert "Processed a total of 4 messages" in out.stderr


def test_console_consumer_reports_missing_broker(kafka_env):
    env = {**kafka_env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    out = subprocess.run([sys.executable, "-m", "broker.console", "scores", "--from-beginning"], env=env,
                         capture_output=True, check=False, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.startswith("error: cannot reach the Kafka broker")


def test_background_broker_start_status_stop(tmp_path, kafka_env):
    env = {k: v for k, v in kafka_env.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    port = free_port()
    state = ["--state-dir", str(tmp_path)]
    run = lambda *a: subprocess.run([sys.executable, "-m", "broker", *state, *a], env=env,  # noqa: E731
                                    capture_output=True, check=False, text=True, timeout=60)
    started = run("start", "--background", "--port", str(port))
    assert started.returncode == 0, started.stderr
    assert f"127.0.0.1:{port}" in started.stdout and "created interactions" in started.stdout
    pid = int((tmp_path / "broker.pid").read_text().split()[0])
    try:
        check_reachable(f"127.0.0.1:{port}")
        again = run("start", "--background", "--port", str(port))
        assert "already running" in again.stdout
    finally:
        stopped = run("stop")
    assert stopped.returncode == 0 and str(pid) in stopped.stdout
    with pytest.raises(BrokerUnreachable):
        check_reachable(f"127.0.0.1:{port}", timeout_s=2)
