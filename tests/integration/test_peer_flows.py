"""The peer flows of the benchmark, Kafka to Kafka on the test broker, count a tiny input exactly.

A fixed input in one partition, in event-time order: every window the flow writes must
hold exactly the oracle's counts. Bytewax flushes every window at the end of the input;
Quix closes a key's window only when a later event of that key arrives, so the input ends
with one event per user and per item two minutes later, whose windows stay open. The Quix
flow runs from ``.venv-peers`` (``make bench-peers``) and is skipped without it.
"""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest
from confluent_kafka import Producer

from benchmarks.bench_peers import QUIX_PYTHON
from benchmarks.peers.windows import ENTITIES, WINDOW_MS, check_windows, expected_windows
from broker.console import read_topic

T0 = 1_732_233_600_000  # a minute boundary
KINDS = ("view", "click", "view", "add_cart", "view", "purchase")


def tiny_input() -> list[dict]:
    """18 events of 3 users and 2 items over 3 windows, then one closing event per user and item."""
    events = [{"ts": T0 + 10_000 * i, "user_id": f"u{i % 3}", "item_id": f"i{i % 2}", "event_type": KINDS[i % 6]}
              for i in range(18)]
    end = T0 + 5 * WINDOW_MS
    events += [{"ts": end, "user_id": f"u{u}", "item_id": f"i{u % 2}", "event_type": "view"} for u in range(3)]
    return events


def produce(bootstrap: str, topic: str, events: list[dict]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for e in events:
        producer.produce(topic, orjson.dumps(e), e["user_id"].encode())
    assert producer.flush(10) == 0


@pytest.mark.parametrize("peer", ["bytewax", "quix"])
def test_peer_flow_counts_a_tiny_input_exactly(peer, kafka_bootstrap, make_topics):
    if peer == "quix" and not QUIX_PYTHON.exists():
        pytest.skip("Quix Streams runs from .venv-peers, which `make bench-peers` creates")
    topic, users, items = make_topics("in", "users", "items", partitions=1)
    events = tiny_input()
    produce(kafka_bootstrap, topic, events)
    if peer == "bytewax":
        cmd = [sys.executable, "-m", "benchmarks.peers.bytewax_textbook"]
    else:
        cmd = [str(QUIX_PYTHON), "-m", "benchmarks.peers.quix_windows", "--expect", str(len(events)),
               "--idle-timeout", "10"]
    cmd += ["--bootstrap", kafka_bootstrap, "--topic", topic, "--user-topic", users, "--item-topic", items]
    run = subprocess.run(cmd, capture_output=True, check=False, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    oracle = expected_windows(events)
    for entity, out in zip(ENTITIES, (users, items), strict=True):
        records = [orjson.loads(r.value) for r in read_topic(kafka_bootstrap, out)]
        check = check_windows(entity, oracle, len(events), records)
        open_at_end = 3 if peer == "quix" else 0  # the closing events' windows stay open in Quix
        assert (check.lost_in_written, check.reemitted, check.wrong) == (0, 0, 0)
        assert (check.in_unwritten, check.counted) == (open_at_end, len(events) - open_at_end)
