"""Kafka source and sink for the features flow.

Why not Bytewax's own ``KafkaSource``/``KafkaSink``:

* the source here hands over one :class:`RawBatch` per poll (not one object per message),
  sends heartbeats while a partition is idle (the watermark follows the wall clock) and an
  end marker per partition in backfill mode (item windows close when *every* partition
  is done); consumer errors travel inside the batch and become dead letters;
* the sink produces asynchronously and flushes once per epoch, in ``snapshot()``, which
  Bytewax calls before it commits the epoch's recovery snapshot: every record of an epoch
  is delivered before the input offsets that produced it are committed (at-least-once),
  without a synchronous round trip per batch.

Offsets live in Bytewax's recovery store (``-r``), not in consumer groups; without
recovery every start reads from ``start_offset``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from broker.admin import partition_count
from broker.config import Topics, producer_settings
from broker.offsets import topic_ends
from dataflows.kafka_batches import file_messages
from features.partition_stage import RawBatch
from features.records import DESTINATIONS, Record


def wall_ms() -> int:
    """Wall clock in epoch ms (the default clock; tests inject their own)."""
    return time.time_ns() // 1_000_000


def consumer_settings(bootstrap: str, tail: bool) -> dict[str, object]:
    """The flow's consumer configuration (assign only; offsets live in Bytewax snapshots)."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": "recstream-features",  # required by the client; never joined (assign only)
        "enable.auto.commit": False,
        "enable.partition.eof": not tail,
        "fetch.wait.max.ms": 10,  # a live stream should not wait for full fetches
        # When the prefetch queue holds queued.min.messages (100k), librdkafka postpones the
        # next fetch by this much; its default, 1,000 ms, stalls a reader that keeps up (a
        # bare consume + parse loop ran about 3x faster with 10 ms, 2026-12-01). Shortening
        # the backoff also beats raising queued.min.messages: the prefetch queue stays small.
        "fetch.queue.backoff.ms": 10,
        "log_level": 2,
    }


class _TopicReader:
    """One consumer for every partition of a topic that one worker thread reads.

    Bytewax builds one source partition per Kafka partition; with a consumer each, every
    partition would send its own fetch request every ``fetch.wait.max.ms``, and the embedded
    broker spends its CPU per request (a quarter less broker CPU with one consumer than with
    four at 1,000 events/s, 2026-12-01). A worker thread's partitions therefore share this
    reader: a poll by any of them fetches for all and files each message under its
    partition (:func:`file_messages`, compiled).
    """

    def __init__(self, bootstrap: str, topic: str, tail: bool, batch_size: int):
        self.topic, self.batch_size = topic, batch_size
        self.consumer = Consumer(consumer_settings(bootstrap, tail))
        self.pending: dict[int, RawBatch | None] = {}  # per open partition: what was read for it

    def add(self, partition: int, start: int) -> None:
        self.pending[partition] = None
        self.consumer.incremental_assign([TopicPartition(self.topic, partition, start)])

    def remove(self, partition: int) -> bool:
        """Stop reading ``partition``; True when no partition is left (the reader is closed)."""
        self.pending.pop(partition, None)
        if self.pending:
            self.consumer.incremental_unassign([TopicPartition(self.topic, partition)])
            return False
        self.consumer.close()
        return True

    def take(self, partition: int) -> RawBatch | None:
        """What was read for ``partition`` (fetching for every partition when nothing is pending)."""
        batch = self.pending[partition]
        if batch is None:
            # No timeout: a poll must not block. Bytewax polls every source partition of the
            # worker in turn before the downstream steps run, and each step of a record's way
            # waits for such a round, so any wait per empty partition adds to the latency of
            # every record. An idle worker still sleeps: Bytewax cools an empty partition
            # down for 1 ms, so a zero timeout does not spin.
            file_messages(self.consumer.consume(self.batch_size, 0), self.pending, self.topic,
                          KafkaError._PARTITION_EOF)
            batch = self.pending[partition]
        self.pending[partition] = None
        return batch


_READERS: dict[tuple[int, str, str, bool], _TopicReader] = {}
_READERS_LOCK = threading.Lock()


def _reader_for(bootstrap: str, topic: str, tail: bool, batch_size: int) -> tuple[tuple[int, str, str, bool], _TopicReader]:
    """The calling worker thread's reader of ``topic`` (Bytewax builds and polls a partition on its worker's thread)."""
    key = (threading.get_ident(), bootstrap, topic, tail)
    with _READERS_LOCK:
        reader = _READERS.get(key)
        if reader is None:
            reader = _READERS[key] = _TopicReader(bootstrap, topic, tail, batch_size)
    return key, reader


class _KafkaPartition(StatefulSourcePartition[RawBatch, Any]):
    """One partition of the interactions topic, and with slates the same partition of the requests topic."""

    def __init__(self, bootstrap: str, topic: str, partition: int, start: int, tail: bool, batch_size: int,
                 heartbeat_ms: int, clock: Callable[[], int], stop: threading.Event | None,
                 requests_topic: str | None = None, requests_start: int = OFFSET_BEGINNING):
        self.topic, self.partition, self.stop = topic, partition, stop
        self.heartbeat_ms, self.clock = heartbeat_ms, clock
        self.reader_key, self.reader = _reader_for(bootstrap, topic, tail, batch_size)
        self.reader.add(partition, start)
        self.next_offset = start
        self.requests_topic = requests_topic
        self.requests: _TopicReader | None = None
        self.next_request = requests_start
        if requests_topic is not None:
            self.requests_key, self.requests = _reader_for(bootstrap, requests_topic, True, batch_size)
            self.requests.add(partition, requests_start)
        self.last_emit = clock()
        self.done = False

    def next_batch(self) -> list[RawBatch]:
        if self.done or (self.stop is not None and self.stop.is_set()):
            raise StopIteration  # end of a finite input, or a requested stop: an orderly end
        batch = self.reader.take(self.partition)
        now = self.clock()
        requests = self.requests.take(self.partition) if self.requests is not None else None
        if requests is not None and (requests.offsets or requests.errors):
            if batch is None:
                batch = RawBatch(self.topic, self.partition)
            batch.requests_source = self.requests_topic or ""
            batch.requests = list(zip(requests.offsets, requests.values, strict=True))
            batch.requests += [(offset, None) for offset, _ in requests.errors]  # a consumer error: refused as empty
            if requests.offsets:
                self.next_request = requests.offsets[-1] + 1
        if batch is None:
            if now - self.last_emit >= self.heartbeat_ms:
                self.last_emit = now
                return [RawBatch(self.topic, self.partition, wall_ms=now, behind=self._behind())]
            return []
        batch.wall_ms = now
        if batch.eof:
            self.done = True
        if batch.offsets:
            self.next_offset = batch.offsets[-1] + 1
        self.last_emit = now
        return [batch]

    def _behind(self) -> bool:
        """Records past what was read are known to be there (the end offset of the last fetch; no broker call).

        A worker's partitions share one consumer, whose fetches can serve some partitions for a
        while and none of this one: that is a backlog, not an idle partition. Unknown (no fetch
        answered yet for it): not behind, so a partition that stays empty still goes idle.
        """
        low, high = self.reader.consumer.get_watermark_offsets(TopicPartition(self.topic, self.partition), cached=True)
        position = low if self.next_offset == OFFSET_BEGINNING else self.next_offset  # OFFSET_END: nothing known
        return high >= 0 and position >= 0 and high > position

    def snapshot(self) -> Any:
        return self.next_offset if self.requests is None else (self.next_offset, self.next_request)

    def close(self) -> None:
        with _READERS_LOCK:
            if self.reader.remove(self.partition):
                _READERS.pop(self.reader_key, None)
            if self.requests is not None and self.requests.remove(self.partition):
                _READERS.pop(self.requests_key, None)


class InteractionsSource(FixedPartitionedSource[RawBatch, Any]):
    """Every partition of one topic, as :class:`RawBatch` items.

    ``tail=False`` stops at the end of each partition (backfill); ``tail=True`` follows
    the topic until ``stop`` is set (live). ``start`` applies when there is no recovery state.
    """

    def __init__(self, bootstrap: str, topic: str, tail: bool = True,
                 start: Literal["beginning", "end"] = "beginning", batch_size: int = 2000,
                 heartbeat_ms: int = 1000, clock: Callable[[], int] = wall_ms, stop: threading.Event | None = None,
                 requests_topic: str | None = None):
        self.bootstrap, self.topic, self.tail, self.start = bootstrap, topic, tail, start
        self.requests_topic = requests_topic  # slates: its partition p is read with the events' partition p
        self.batch_size, self.heartbeat_ms, self.clock, self.stop = batch_size, heartbeat_ms, clock, stop
        self.partitions = partition_count(bootstrap, topic)

    def list_parts(self) -> list[str]:
        return [str(p) for p in range(self.partitions)]

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _KafkaPartition:
        p = int(for_part)
        requests_start = OFFSET_BEGINNING
        if isinstance(resume_state, tuple):
            start, requests_start = resume_state
        else:
            start = resume_state
        if start is None:
            # "end": where the partition really ends now (the embedded broker reports less; broker/offsets.py)
            start = OFFSET_BEGINNING if self.start == "beginning" else topic_ends(self.bootstrap, self.topic, [p])[p]
            if self.requests_topic is not None and self.start == "end":
                requests_start = topic_ends(self.bootstrap, self.requests_topic, [p])[p]
        return _KafkaPartition(self.bootstrap, self.topic, p, start, self.tail, self.batch_size,
                               self.heartbeat_ms, self.clock, self.stop, self.requests_topic, requests_start)


class _KafkaRecordsPartition(StatefulSinkPartition[list[Record], None]):
    def __init__(self, bootstrap: str, topics: dict[str, str], message_timeout_ms: int = 300_000):
        self.topics = topics
        self.failures: list[str] = []
        self.producer = Producer(
            {
                **producer_settings(bootstrap),  # per-key order, at-least-once: records are keyed upserts
                "linger.ms": 2,
                # Reports for failed records only: a Python callback per delivered record
                # costs about a third of producing it (2026-12-01).
                "on_delivery": self._on_delivery,
                "delivery.report.only.error": True,
                "message.timeout.ms": message_timeout_ms,  # a record undelivered after this fails
            }
        )

    def _on_delivery(self, err: KafkaError | None, msg: object) -> None:
        if err is not None:
            self.failures.append(f"{err.name()}: {err.str()}")

    def write_batch(self, values: list[list[Record]]) -> None:
        produce, topics = self.producer.produce, self.topics
        for records in values:
            for destination, key, value in records:
                topic = topics.get(destination)
                if topic is None:
                    continue  # a destination switched off (e.g. no event-features topic)
                while True:
                    try:
                        produce(topic, value, key)
                        break
                    except BufferError:
                        self.producer.poll(0.05)  # local queue full: let librdkafka drain it
        self.producer.poll(0)

    def snapshot(self) -> None:
        remaining = self.producer.flush(60)
        if remaining or self.failures:
            msg = (
                f"could not deliver output records ({remaining} undelivered, {len(self.failures)} failed, "
                f"first error: {self.failures[0] if self.failures else 'timeout'}); stopping before the epoch commits"
            )
            raise RuntimeError(msg)

    def close(self) -> None:
        self.snapshot()


class KafkaRecordsSink(FixedPartitionedSink[list[Record], None]):
    """Writes ``(destination, key, value)`` records to the topic of each destination.

    One sink partition: every record goes through one producer, which keeps output per key
    in order. Destinations missing from ``topics`` are dropped (switched off).
    """

    def __init__(self, bootstrap: str, topics: dict[str, str]):
        unknown = set(topics) - set(DESTINATIONS)
        if unknown:
            msg = f"unknown destination(s) {sorted(unknown)}; expected some of {', '.join(DESTINATIONS)}"
            raise ValueError(msg)
        self.bootstrap, self.topics = bootstrap, topics

    def list_parts(self) -> list[str]:
        return ["records"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _KafkaRecordsPartition:
        return _KafkaRecordsPartition(self.bootstrap, self.topics)


def destination_topics(topics: Topics, event_features_topic: str | None, slates: bool = False) -> dict[str, str]:
    """The destination -> topic map of the features flow."""
    mapping = {
        "user_features": topics.user_features,
        "item_features": topics.item_features,
        "dead_letters": topics.dead_letters,
        "scores": topics.scores,
    }
    if event_features_topic:
        mapping["event_features"] = event_features_topic
    if slates:
        mapping["recommendations"] = topics.recommendations
    return mapping
