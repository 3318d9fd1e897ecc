"""A console consumer that works against the embedded broker (Debian's kcat is too old for it).

``python -m broker.console TOPIC`` prints new records as they arrive, like
``kafka-console-consumer``: records produced after it started, from where each partition
really ends (:func:`broker.offsets.topic_ends`; the embedded broker's reported ends are
wrong). It assigns every partition itself instead of joining a consumer group, so it starts
at once (Tansu's group join waits for a rebalance timeout).

Examples::

    python -m broker.console scores --from-beginning --max-messages 5 --print-key
    python -m broker.console dead-letters --from-beginning --timeout-ms 2000

:func:`read_topic` is the same reader as a function; tests use it to count what a topic
holds by consuming it (Tansu's watermark offsets have been seen to under-count).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from broker.admin import BrokerUnreachable, partition_count
from broker.offsets import topic_ends


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes | None], ...] = ()


def _consumer(bootstrap: str, eof: bool) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "recstream-console",  # required by the client; never joined (assign only)
            "enable.auto.commit": False,
            "enable.partition.eof": eof,
            "log_level": 2,
        }
    )


def _place(m: Message) -> tuple[str, int, int]:
    """A consumed message's topic, partition and offset (set on every record and end-of-partition event)."""
    topic, partition, offset = m.topic(), m.partition(), m.offset()
    assert topic is not None and partition is not None and offset is not None, m
    return topic, partition, offset


def _headers(m: Message) -> tuple[tuple[str, bytes | None], ...]:
    """A consumed record's headers, in order (the client gives a list of (name, value) pairs, or None)."""
    headers = m.headers()
    if not isinstance(headers, list):
        return ()
    return tuple((k, v.encode() if isinstance(v, str) else v) for k, v in headers)


def iter_topic(
    bootstrap: str,
    topic: str,
    from_beginning: bool = True,
    to_end: bool = True,
    idle_timeout_s: float | None = None,
    partitions: list[int] | None = None,
    on_positioned: Callable[[], None] | None = None,
) -> Iterator[Record]:
    """Yield a topic's records, from the beginning or only those produced from now on.

    ``to_end`` stops when every partition has reported its end; otherwise the iterator
    follows the topic until ``idle_timeout_s`` passes without a record (forever if None).
    ``on_positioned`` is called once every partition's start is known.
    """
    count = partition_count(bootstrap, topic)
    parts = list(range(count)) if partitions is None else partitions
    starts = dict.fromkeys(parts, OFFSET_BEGINNING) if from_beginning else topic_ends(bootstrap, topic, parts)
    consumer = _consumer(bootstrap, eof=to_end)
    consumer.assign([TopicPartition(topic, p, starts[p]) for p in parts])
    if on_positioned is not None:
        on_positioned()
    at_end: set[int] = set()
    last = time.monotonic()
    try:
        while True:
            messages = consumer.consume(1000, 0.2)
            for m in messages:
                error = m.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(_place(m)[1])
                        continue
                    msg = f"error reading {topic}[{m.partition()}]: {error}"
                    raise RuntimeError(msg)
                m_topic, m_partition, m_offset = _place(m)
                at_end.discard(m_partition)
                last = time.monotonic()
                yield Record(
                    topic=m_topic,
                    partition=m_partition,
                    offset=m_offset,
                    key=m.key(),
                    value=m.value(),
                    timestamp_ms=m.timestamp()[1],
                    headers=_headers(m),
                )
            if to_end and len(at_end) == len(parts):
                return
            if idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                return
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[Record]:
    """Every record a topic holds now, read from the beginning to the end of each partition."""
    deadline = time.monotonic() + timeout_s
    records = []
    for record in iter_topic(bootstrap, topic, from_beginning=True, to_end=True):
        records.append(record)
        if time.monotonic() > deadline:
            msg = f"reading {topic} took longer than {timeout_s:g}s"
            raise TimeoutError(msg)
    return records


def _text(b: bytes | None) -> str:
    if b is None:
        return "null"
    return b.decode("utf-8", errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    from broker.embedded import resolve_bootstrap

    p = argparse.ArgumentParser(
        prog="python -m broker.console",
        description="Print a topic's records (kafka-console-consumer style). "
        "Uses KAFKA_BOOTSTRAP_SERVERS, else the embedded broker.",
    )
    p.add_argument("topic", help="topic to read")
    p.add_argument("--from-beginning", action="store_true", help="start at the earliest record (default: only new ones)")
    p.add_argument("--max-messages", type=int, default=None, metavar="N", help="exit after N records")
    p.add_argument("--timeout-ms", type=int, default=None, metavar="MS", help="exit after MS ms without a record")
    p.add_argument("--print-key", action="store_true", help="print key<TAB>value")
    p.add_argument("--print-partition", action="store_true", help="prefix partition:offset")
    p.add_argument("--print-headers", action="store_true", help="append the headers")
    p.add_argument("--partition", type=int, action="append", default=None, help="read only this partition (repeatable)")
    args = p.parse_args(argv)
    if args.max_messages is not None and args.max_messages < 1:
        print(f"error: --max-messages must be >= 1, got {args.max_messages}", file=sys.stderr)
        return 2
    try:
        bootstrap = resolve_bootstrap(autostart=False)
        records = iter_topic(
            bootstrap,
            args.topic,
            from_beginning=args.from_beginning,
            to_end=False,
            idle_timeout_s=None if args.timeout_ms is None else args.timeout_ms / 1000,
            partitions=args.partition,
            on_positioned=lambda: print(f"reading {args.topic} from "
                                        f"{'the beginning' if args.from_beginning else 'its end: new records only'}",
                                        file=sys.stderr, flush=True),
        )
        n = 0
        for r in records:
            parts = []
            if args.print_partition:
                parts.append(f"{r.partition}:{r.offset}")
            if args.print_key:
                parts.append(_text(r.key))
            parts.append(_text(r.value))
            if args.print_headers:
                parts.append(",".join(f"{k}={_text(v)}" for k, v in r.headers) or "-")
            print("\t".join(parts), flush=True)
            n += 1
            if args.max_messages is not None and n >= args.max_messages:
                break
        print(f"Processed a total of {n} messages", file=sys.stderr)
        return 0
    except (BrokerUnreachable, LookupError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
