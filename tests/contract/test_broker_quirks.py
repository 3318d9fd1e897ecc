"""The embedded broker's known quirks, pinned: when a Tansu release fixes one, a test here fails
and says which workaround can go (docs/inspecting-topics.md describes the quirks and the tools).
"""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from broker.console import read_topic

pytestmark = pytest.mark.integration  # needs the broker


def test_tansu_reports_a_wrong_high_watermark_for_a_partition_written_in_several_batches(kafka_bootstrap, make_topics):
    (topic,) = make_topics("quirk", partitions=1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 0})
    for _batch in range(4):
        for _ in range(10):
            producer.produce(topic, b"x", partition=0)
        producer.flush(10)
    held = len(read_topic(kafka_bootstrap, topic))
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "quirk", "log_level": 2})
    try:
        _, reported = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        consumer.close()
    assert held == 40
    assert reported < held, (
        f"the broker now reports the right high watermark ({reported} for {held} records): the fetch probe in "
        "broker/offsets.py (partition_spans) and the notes in DESIGN.md and docs/inspecting-topics.md can go")
