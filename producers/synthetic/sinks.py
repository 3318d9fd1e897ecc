"""Where messages go: Kafka (asynchronous produce), JSONL, CSV, stdout, or nowhere (benchmarks).

Every sink takes events and truth records as parallel lists of keys and values; values are
the exact Kafka message bytes, so a JSONL file holds byte for byte what the topic would.
Only the Kafka sink reports deliveries (:class:`Delivery`); for file sinks the runner
computes virtual partitions with :func:`events.partitioning.partition_for`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from confluent_kafka import KafkaError, Message, Producer

from broker.config import producer_settings


class SinkClosed(Exception):
    """The reader went away (e.g. ``| head`` closed stdout); stop producing quietly."""


@dataclass
class Delivery:
    """What the broker acknowledged: counts per partition, failures, latency from produce to ack.

    With ``per_message`` False only failures are reported (``partitions`` and the latencies
    stay empty): a backfill does not pay a Python callback per event.
    """

    per_message: bool = True  # a delivery report for every event, not only for failures
    partitions: dict[int, int] = field(default_factory=dict)  # delivered events per partition
    failed: int = 0  # events the broker never acknowledged
    truth_failed: int = 0  # truth records the broker never acknowledged
    first_error: str = ""
    latency_sum_s: float = 0.0  # over every acknowledged event
    latency_max_s: float = 0.0
    window_sum_s: float = 0.0  # since the last progress line
    window_max_s: float = 0.0
    window_n: int = 0

    @property
    def delivered(self) -> int:
        """Events acknowledged so far."""
        return sum(self.partitions.values())

    def take_window(self) -> tuple[float, float] | None:
        """(avg ms, max ms) of the deliveries since the last call, or None if there were none."""
        if not self.window_n:
            return None
        out = (1000.0 * self.window_sum_s / self.window_n, 1000.0 * self.window_max_s)
        self.window_sum_s, self.window_max_s, self.window_n = 0.0, 0.0, 0
        return out


class Sink(Protocol):
    """A destination for events and their truth records."""

    @property
    def delivery(self) -> Delivery | None:
        """Per-message delivery statistics; None when the sink cannot report them."""

    def send(self, keys: list[bytes], values: list[bytes]) -> None:
        """Hand over events (key = user_id)."""

    def send_truth(self, keys: list[bytes], values: list[bytes]) -> None:
        """Hand over truth records (key = event_id)."""

    def send_profiles(self, kind: str, keys: list[bytes], values: list[bytes]) -> int:
        """Publish the catalog (``kind`` "items") or the user profiles ("users"), keyed by id, before the
        first event; return how many were delivered (0 when the sink keeps none)."""

    def poll(self) -> None:
        """Serve pending callbacks without blocking."""

    def close(self) -> None:
        """Flush everything and release resources (called once)."""


def kafka_config(bootstrap: str, delivery_timeout_ms: int) -> dict[str, object]:
    """Producer settings: the project's shared ones (:func:`broker.config.producer_settings`)
    plus a little batching and a large local queue for backfills."""
    return {
        **producer_settings(bootstrap),
        "linger.ms": 10,  # a little batching; live latency stays in the milliseconds
        "queue.buffering.max.messages": 1_000_000,
        "message.timeout.ms": delivery_timeout_ms,
        "socket.connection.setup.timeout.ms": 3000,
    }


class KafkaSink:
    """Asynchronous produce with delivery callbacks; one flush at the end.

    Two producers: events get a delivery report each (partition counts, latency, failures)
    when ``per_message_reports`` is on (live runs); otherwise, and always for truth records,
    only failures are reported: a Python callback per event costs a backfill about 12% of
    its throughput (2026-12-01). The callbacks are set in the producer config, not per
    ``produce()`` call, which saves a keyword argument on every call.
    """

    def __init__(
        self, bootstrap: str, topic: str, truth_topic: str, delivery_timeout_ms: int = 30_000,
        truth_path: Path | None = None, per_message_reports: bool = True,
        profile_targets: dict[str, str | Path] | None = None,
    ) -> None:
        self.topic, self.truth_topic = topic, truth_topic
        self.bootstrap, self.delivery_timeout_ms = bootstrap, delivery_timeout_ms
        # "users"/"items" -> a topic name, or a Path to write that JSONL file instead
        self.profile_targets = profile_targets or {}
        config = {**kafka_config(bootstrap, delivery_timeout_ms), "error_cb": self._on_error}
        self.last_error = ""
        self.producer = Producer({**config, "on_delivery": self._on_event,
                                  "delivery.report.only.error": not per_message_reports})
        # ``truth_path``: truth records go to that JSONL file instead of the truth topic
        # (half the messages: producing is what limits a backfill to Kafka).
        self.truth_file: BinaryIO | None = None
        self.truth_producer: Producer | None = None
        if truth_path is not None:
            truth_path.parent.mkdir(parents=True, exist_ok=True)
            self.truth_file = open(truth_path, "wb")  # noqa: SIM115 - closed in close()
        else:
            self.truth_producer = Producer({**config, "on_delivery": self._on_truth, "delivery.report.only.error": True})
        self.delivery = Delivery(per_message=per_message_reports)
        self.flush_timeout_s = delivery_timeout_ms / 1000.0 + 5.0

    def _on_event(self, err: KafkaError | None, msg: Message) -> None:
        d = self.delivery
        if err is not None:
            d.failed += 1
            d.first_error = d.first_error or f"{msg.topic()}: {err.str()}"
            return
        part = msg.partition()
        if part is not None:  # always set on a delivered message
            d.partitions[part] = d.partitions.get(part, 0) + 1
        latency = msg.latency() or 0.0
        d.latency_sum_s += latency
        d.window_sum_s += latency
        d.window_n += 1
        if latency > d.window_max_s:
            d.window_max_s = latency
            d.latency_max_s = max(d.latency_max_s, latency)

    def _on_error(self, err: KafkaError) -> None:
        """Client-level errors (broker down, ...): one warning line per new error."""
        text = err.str()
        if text != self.last_error:
            self.last_error = text
            print(f"warning: kafka: {text}", file=sys.stderr, flush=True)

    def _on_truth(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.delivery.truth_failed += 1
            self.delivery.first_error = self.delivery.first_error or f"{msg.topic()}: {err.str()}"

    @staticmethod
    def _produce(producer: Producer, topic: str, keys: list[bytes], values: list[bytes]) -> None:
        produce, poll = producer.produce, producer.poll
        for key, value in zip(keys, values, strict=True):
            try:
                produce(topic, value, key)
            except BufferError:  # local queue full: let librdkafka deliver some first
                while True:
                    poll(0.05)
                    try:
                        produce(topic, value, key)
                        break
                    except BufferError:
                        continue
        poll(0)

    def send(self, keys: list[bytes], values: list[bytes]) -> None:
        self._produce(self.producer, self.topic, keys, values)

    def send_truth(self, keys: list[bytes], values: list[bytes]) -> None:
        if self.truth_file is not None:
            self.truth_file.write(jsonl_lines(values))
        else:
            assert self.truth_producer is not None
            self._produce(self.truth_producer, self.truth_topic, keys, values)

    def send_profiles(self, kind: str, keys: list[bytes], values: list[bytes]) -> int:
        """Produce and flush them at once (a few thousand records, once per run); raise if any is lost."""
        target = self.profile_targets.get(kind)
        if target is None:
            return 0
        if isinstance(target, Path):
            return write_records(target, values, jsonl_lines)
        failures: list[str] = []
        producer = Producer({**kafka_config(self.bootstrap, self.delivery_timeout_ms), "delivery.report.only.error": True,
                             "on_delivery": lambda err, msg: failures.append(err.str()) if err is not None else None})
        self._produce(producer, target, keys, values)
        left = producer.flush(self.flush_timeout_s)
        if left or failures:
            msg = (f"could not publish the {kind} to topic {target}: {left} undelivered, first error: "
                   f"{failures[0] if failures else 'timeout'}")
            raise RuntimeError(msg)
        return len(values)

    def poll(self) -> None:
        self.producer.poll(0)
        if self.truth_producer is not None:
            self.truth_producer.poll(0)

    def close(self) -> None:
        left = self.producer.flush(self.flush_timeout_s)
        truth_left = self.truth_producer.flush(self.flush_timeout_s) if self.truth_producer is not None else 0
        if self.truth_file is not None:
            self.truth_file.close()
        d = self.delivery
        if left or truth_left:
            d.failed += left
            d.truth_failed += truth_left
            d.first_error = d.first_error or f"{left + truth_left} messages still queued after flush"


def jsonl_lines(values: list[bytes]) -> bytes:
    """One value per line.

    >>> jsonl_lines([b'{"a":1}', b'{"b":2}'])
    b'{"a":1}\\n{"b":2}\\n'
    """
    return b"\n".join(values) + b"\n" if values else b""


class FileSink:
    """Events to a binary stream (JSONL, CSV or stdout), truth records to a JSONL file."""

    delivery: Delivery | None = None

    def __init__(
        self,
        events: BinaryIO,
        encode: Callable[[list[bytes]], bytes] = jsonl_lines,
        truth_path: Path | None = None,
        header: bytes = b"",
        owns_events: bool = True,
        profile_paths: dict[str, Path] | None = None,
        encode_profiles: Callable[[str, list[bytes]], bytes] | None = None,
    ) -> None:
        self.events, self.encode, self.owns_events = events, encode, owns_events
        self.profile_paths = profile_paths or {}  # "users"/"items" -> file
        self.encode_profiles = encode_profiles or (lambda kind, values: jsonl_lines(values))
        self.truth = open(truth_path, "wb") if truth_path is not None else None  # noqa: SIM115
        self._write(header)

    @classmethod
    def to_path(cls, path: Path, encode: Callable[[list[bytes]], bytes] = jsonl_lines, **kwargs: object) -> FileSink:
        """A sink writing events to ``path`` (folders created as needed)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        truth = kwargs.get("truth_path")
        if isinstance(truth, Path):
            truth.parent.mkdir(parents=True, exist_ok=True)
        return cls(open(path, "wb"), encode, **kwargs)  # type: ignore[arg-type]

    def _write(self, data: bytes) -> None:
        if not data:
            return
        try:
            self.events.write(data)
        except BrokenPipeError as e:
            raise SinkClosed(str(e)) from e

    def send(self, keys: list[bytes], values: list[bytes]) -> None:
        self._write(self.encode(values))

    def send_truth(self, keys: list[bytes], values: list[bytes]) -> None:
        if self.truth is not None:
            self.truth.write(jsonl_lines(values))

    def send_profiles(self, kind: str, keys: list[bytes], values: list[bytes]) -> int:
        path = self.profile_paths.get(kind)
        if path is None:
            return 0
        return write_records(path, values, lambda v: self.encode_profiles(kind, v))

    def poll(self) -> None:
        return None

    def close(self) -> None:
        if self.truth is not None:
            self.truth.close()
        try:
            if self.owns_events:
                self.events.close()
            else:
                self.events.flush()
        except BrokenPipeError:
            pass


def write_records(path: Path, values: list[bytes], encode: Callable[[list[bytes]], bytes]) -> int:
    """Write a whole file of records (folders created); return how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(values))
    return len(values)


def stdout_sink(truth_path: Path | None = None, profile_paths: dict[str, Path] | None = None) -> FileSink:
    """Events as JSONL on stdout (truth and profiles only where paths are given)."""
    return FileSink(sys.stdout.buffer, jsonl_lines, truth_path, owns_events=False, profile_paths=profile_paths)


class NullSink:
    """Discards everything: measures generation and serialisation alone."""

    delivery: Delivery | None = None

    def send(self, keys: list[bytes], values: list[bytes]) -> None:
        return None

    def send_truth(self, keys: list[bytes], values: list[bytes]) -> None:
        return None

    def send_profiles(self, kind: str, keys: list[bytes], values: list[bytes]) -> int:
        return 0

    def poll(self) -> None:
        return None

    def close(self) -> None:
        return None


class MemorySink:
    """Keeps every key and value in lists (tests, notebooks)."""

    delivery: Delivery | None = None

    def __init__(self) -> None:
        self.keys: list[bytes] = []
        self.values: list[bytes] = []
        self.truth_keys: list[bytes] = []
        self.truth_values: list[bytes] = []
        self.profiles: dict[str, tuple[list[bytes], list[bytes]]] = {}  # kind -> (keys, values)
        self.closed = False

    def send(self, keys: list[bytes], values: list[bytes]) -> None:
        self.keys += keys
        self.values += values

    def send_truth(self, keys: list[bytes], values: list[bytes]) -> None:
        self.truth_keys += keys
        self.truth_values += values

    def send_profiles(self, kind: str, keys: list[bytes], values: list[bytes]) -> int:
        self.profiles[kind] = (list(keys), list(values))
        return len(values)

    def poll(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True
