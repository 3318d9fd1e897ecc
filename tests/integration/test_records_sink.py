"""The flow's Kafka sink on a real broker: records land keyed in their topics; failures stop the epoch."""

from __future__ import annotations

import pytest

from broker.admin import ensure_topics
from broker.console import read_topic
from broker.embedded import EmbeddedBroker
from dataflows.kafka_io import _KafkaRecordsPartition


def test_records_go_to_their_destination_topics(kafka_bootstrap, make_topics):
    scores, dead = make_topics("scores", "dead", partitions=2)
    part = _KafkaRecordsPartition(kafka_bootstrap, {"scores": scores, "dead_letters": dead})
    part.write_batch([[("scores", b"e1", b'{"s":1}'), ("dead_letters", b"k", b"{}"), ("switched_off", b"x", b"y")],
                      [("scores", b"e2", b'{"s":2}')]])
    part.snapshot()  # flushes; raises on any failure
    assert sorted((r.key, r.value) for r in read_topic(kafka_bootstrap, scores)) == [(b"e1", b'{"s":1}'),
                                                                                     (b"e2", b'{"s":2}')]
    assert [(r.key, r.value) for r in read_topic(kafka_bootstrap, dead)] == [(b"k", b"{}")]


def test_undelivered_records_fail_the_snapshot_with_the_error(tmp_path):
    # Reports come for failed records only (no Python callback per delivered record): check
    # that a failure still reaches the sink and stops the epoch instead of being lost.
    broker = EmbeddedBroker(port=0, log_path=tmp_path / "tansu.log")
    bootstrap = broker.start()
    try:
        ensure_topics(bootstrap, ["doomed-scores"], partitions=1)
        part = _KafkaRecordsPartition(bootstrap, {"scores": "doomed-scores"}, message_timeout_ms=1000)
        part.write_batch([[("scores", b"e0", b"{}")]])
        part.snapshot()  # the broker is up: delivered
        assert broker.process is not None
        broker.process.kill()
        broker.process.wait()
        part.write_batch([[("scores", f"e{i}".encode(), b"{}") for i in range(1, 6)]])
        with pytest.raises(RuntimeError, match=r"could not deliver output records \(0 undelivered, 5 failed"):
            part.snapshot()
    finally:
        broker.stop()
