"""Helpers for running the features flow against the test broker and reading what it wrote."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from confluent_kafka import Producer

from broker.console import read_topic
from tests.eventlog import user_key

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = ("user_features", "item_features", "dead_letters", "scores", "event_features")


def topic_set(make_topics, partitions: int = 4) -> dict[str, str]:
    """Throwaway topics for one flow run: field name -> topic."""
    names = make_topics("interactions", "truth", "user-features", "item-features", "scores", "dead-letters",
                        "event-features", partitions=partitions)
    keys = ("interactions", "truth", "user_features", "item_features", "scores", "dead_letters", "event_features")
    return dict(zip(keys, names))


def flow_env(kafka_env: dict[str, str], topics: dict[str, str]) -> dict[str, str]:
    env = dict(kafka_env)
    for name, topic in topics.items():
        if name != "event_features":
            env[f"TOPIC_{name.upper()}"] = topic
    env.setdefault("MODEL_PATH", "none")
    return env


def produce_parts(bootstrap: str, topic: str, parts: list[list[bytes]]) -> int:
    """Produce each partition's values to that partition, in order, keyed by user_id."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    n = 0
    for p, values in enumerate(parts):
        for value in values:
            while True:
                try:
                    producer.produce(topic, value, user_key(value), partition=p)
                    break
                except BufferError:
                    producer.poll(0.05)
            n += 1
        producer.poll(0)
    assert producer.flush(30) == 0
    return n


def raw_counts(bootstrap: str, topics: dict[str, str]) -> dict[str, int]:
    """Records per output destination, duplicates included."""
    return {name: len(read_topic(bootstrap, topics[name])) for name in OUTPUTS}


def features_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dataflows.features", "--progress-interval", "1", *args]


def run_features(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the flow to completion (a backfill); fail with its output if it fails."""
    done = subprocess.run(features_cmd(*args), env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert done.returncode == 0, f"flow failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-4000:]}"
    return done


def start_features(env: dict[str, str], *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(features_cmd(*args), env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout: float = 20) -> int:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    return process.returncode


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def count(bootstrap: str, topic: str) -> int:
    return len(read_topic(bootstrap, topic))


def outputs_by_key(bootstrap: str, topics: dict[str, str]) -> dict[str, dict[bytes, set[bytes]]]:
    """For each output destination: key -> the set of distinct values written under it.

    The input topic's name (different for every run) is replaced by ``INPUT`` so that runs
    over copies of the same input compare equal.
    """
    name_in = topics["interactions"].encode()
    result: dict[str, dict[bytes, set[bytes]]] = {}
    for name in OUTPUTS:
        by_key: dict[bytes, set[bytes]] = defaultdict(set)
        for r in read_topic(bootstrap, topics[name]):
            by_key[r.key.replace(name_in, b"INPUT")].add(r.value.replace(name_in, b"INPUT"))
        result[name] = dict(by_key)
    return result
