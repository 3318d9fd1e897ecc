"""``--check``: round-trip a few events through the broker and say OK or FAIL in one line.

The events are real generator output (with their own run tag, so their ids never collide
with a stream's) produced to the configured topic with a ``recstream-check`` header, then
read back by ``assign()`` at the offsets the delivery reports gave, and compared byte for
byte. No consumer group is joined, so the check takes well under a second on Tansu.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from broker.admin import ensure_topics
from broker.config import Topics
from events.schema import decode
from producers.synthetic.config import ProducerConfig
from producers.synthetic.prepare import prepare
from producers.synthetic.sinks import kafka_config

CHECK_HEADER = "recstream-check"


def check_events(cfg: ProducerConfig, n: int) -> list[tuple[bytes, bytes]]:
    """The first ``n`` events of a check stream as ``(key, value)`` pairs."""
    setup = prepare(replace(cfg, mode="backfill"), purpose="check")
    pairs: list[tuple[bytes, bytes]] = []
    for block in setup.simulator.blocks(max(64, n)):
        part = block.take(slice(0, n - len(pairs)))
        pairs += zip(setup.serializer.keys(part), setup.serializer.values(part, part.t_ms), strict=True)
        if len(pairs) >= n:
            return pairs
    return pairs  # pragma: no cover  (blocks() never ends)


def run_check(cfg: ProducerConfig, bootstrap: str, n: int = 5, timeout_s: float = 10.0) -> tuple[bool, str]:
    """Produce ``n`` events, read them back; return ``(ok, one line for the user)``."""
    started = time.monotonic()
    topic = cfg.topic or Topics.from_env().interactions
    ensure_topics(bootstrap, [topic], partitions=cfg.partitions)
    pairs = check_events(cfg, n)
    where = f"topic {topic!r} on {bootstrap}"
    delivered: dict[int, tuple[int, int]] = {}  # index -> (partition, offset)
    errors: list[str] = []

    def on_delivery(index: int) -> Callable[[KafkaError | None, Message], None]:
        def callback(err: KafkaError | None, msg: Message) -> None:
            partition, offset = msg.partition(), msg.offset()
            if err is not None:
                errors.append(err.str())
            elif partition is not None and offset is not None:  # both set on a delivered message
                delivered[index] = (partition, offset)

        return callback

    producer = Producer(kafka_config(bootstrap, int(timeout_s * 1000)))
    for i, (key, value) in enumerate(pairs):
        producer.produce(topic, value, key, headers=[(CHECK_HEADER, b"1")], on_delivery=on_delivery(i))
    producer.flush(timeout_s + 2)
    if errors or len(delivered) < n:
        return False, f"FAIL: {n - len(delivered)} of {n} events not delivered to {where} ({errors[0] if errors else 'no report'})"
    read = _read_back(bootstrap, topic, delivered, started + timeout_s)
    for i, (key, value) in enumerate(pairs):
        got = read.get(delivered[i])
        if got is None:
            return False, f"FAIL: event {i} not read back from {where} at partition {delivered[i][0]} offset {delivered[i][1]}"
        if got != (key, value):
            return False, f"FAIL: event {i} read back from {where} differs from what was sent"
        rejection = decode(got[1])[1]
        if rejection is not None:
            return False, f"FAIL: event {i} read back does not pass the schema ({rejection.reason}: {rejection.detail})"
    partitions = ", ".join(str(p) for p in sorted({p for p, _ in delivered.values()}))
    took = time.monotonic() - started
    return True, f"OK: {n} events round-tripped through {where} in {took:.2f} s (partitions {partitions})"


def _read_back(
    bootstrap: str, topic: str, delivered: dict[int, tuple[int, int]], deadline: float
) -> dict[tuple[int, int], tuple[bytes, bytes]]:
    """Records at the delivered (partition, offset) positions, read by assign()."""
    wanted = set(delivered.values())
    first: dict[int, int] = {}
    for partition, offset in wanted:
        first[partition] = min(offset, first.get(partition, offset))
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "recstream-check", "enable.auto.commit": False, "log_level": 2}
    )
    consumer.assign([TopicPartition(topic, p, o) for p, o in first.items()])
    found: dict[tuple[int, int], tuple[bytes, bytes]] = {}
    try:
        while wanted - found.keys() and time.monotonic() < deadline:
            for m in consumer.consume(100, 0.2):
                p, o = m.partition(), m.offset()
                if m.error() is None and p is not None and o is not None and (p, o) in wanted:
                    found[p, o] = (m.key() or b"", m.value() or b"")
    finally:
        consumer.close()
    return found
