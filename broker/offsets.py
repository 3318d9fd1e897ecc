"""Where each partition of a topic really starts and ends, and ``python -m broker.offsets``.

Kafka and Redpanda answer "where does partition p end?" (ListOffsets, ``latest``) with the
offset the next record will get. The embedded Tansu broker does not: it reports the base
offset of the newest stored batch plus one, so a partition written in several producer
batches looks far shorter than it is (seen: 1 for partitions of 366 to 714 records). Its
Fetch responses, though, carry the right high watermark. :func:`partition_spans` therefore
asks ListOffsets first, then fetches once from that reported end: librdkafka reads the high
watermark from the Fetch response (and signals the partition's end at it). On a broker whose
ListOffsets is right that fetch returns nothing and answers at once (``fetch.wait.max.ms``
10), so the cost is one round trip per call; on Tansu it is the difference between right
and wrong. ``tests/contract/test_broker_quirks.py`` pins the quirk, so that a Tansu release
that fixes it is noticed and the probe can go.

    python -m broker.offsets interactions            # per partition: first, last, records
    python -m broker.offsets interactions scores --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from broker.admin import BrokerUnreachable, partition_count


@dataclass(frozen=True)
class PartitionSpan:
    """The records a partition holds now: offsets ``first`` to ``end - 1``."""

    partition: int
    first: int  # offset of the oldest record still held (the low watermark)
    end: int  # offset the next record will get (the true high watermark)
    reported_end: int  # what the broker's ListOffsets said the end is

    @property
    def records(self) -> int:
        return self.end - self.first

    @property
    def last(self) -> int | None:
        """Offset of the newest record, None when the partition is empty."""
        return self.end - 1 if self.end > self.first else None


def _consumer(bootstrap: str) -> Consumer:
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "recstream-offsets",  # required by the client; never joined (assign only)
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 10,  # an empty fetch answers at once
        "log_level": 2,
    })


def partition_spans(bootstrap: str, topic: str, partitions: list[int] | None = None,
                    timeout_s: float = 10.0) -> dict[int, PartitionSpan]:
    """Each partition's first offset and true end, by partition (see the module docstring).

    Raises BrokerUnreachable when the broker does not answer within ``timeout_s``, and
    LookupError when the topic does not exist.
    """
    parts = list(range(partition_count(bootstrap, topic))) if partitions is None else partitions
    consumer = _consumer(bootstrap)
    try:
        reported: dict[int, tuple[int, int]] = {}
        for p in parts:
            try:
                reported[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            except KafkaException as e:
                msg = f"cannot read the offsets of {topic}[{p}] at {bootstrap}: {e.args[0].str()}"
                raise BrokerUnreachable(msg) from None
        # One fetch from each reported end; the first answer per partition tells the true end.
        consumer.assign([TopicPartition(topic, p, reported[p][1]) for p in parts])
        ends: dict[int, int] = {}
        deadline = time.monotonic() + timeout_s
        while len(ends) < len(parts):
            if time.monotonic() > deadline:
                missing = sorted(set(parts) - set(ends))
                msg = f"no fetch answer for {topic} partitions {missing} from {bootstrap} within {timeout_s:g}s"
                raise BrokerUnreachable(msg)
            for m in consumer.consume(len(parts), 0.1):
                part, offset, error = m.partition(), m.offset(), m.error()
                if part in ends or part is None:
                    continue
                if error is not None and error.code() == KafkaError._PARTITION_EOF and offset is not None:
                    ends[part] = offset  # the end, as the fetch saw it
                elif error is None:  # records beyond the reported end: the fetch carried the true end
                    ends[part] = consumer.get_watermark_offsets(TopicPartition(topic, part), cached=True)[1]
                else:
                    msg = f"error reading {topic}[{part}]: {error}"
                    raise RuntimeError(msg)
        return {p: PartitionSpan(p, reported[p][0], max(ends[p], reported[p][1]), reported[p][1]) for p in parts}
    finally:
        consumer.close()


def topic_ends(bootstrap: str, topic: str, partitions: list[int] | None = None) -> dict[int, int]:
    """The offset the next record of each partition will get (where "only new records" starts)."""
    return {p: span.end for p, span in partition_spans(bootstrap, topic, partitions).items()}


def main(argv: list[str] | None = None) -> int:
    from broker.embedded import resolve_bootstrap

    parser = argparse.ArgumentParser(
        prog="python -m broker.offsets",
        description="Per partition of each topic: the first and last offsets and the record count, measured by "
        "fetching (right on the embedded broker too, whose reported watermarks are not). "
        "Uses KAFKA_BOOTSTRAP_SERVERS, else the embedded broker.")
    parser.add_argument("topics", nargs="+", metavar="TOPIC", help="topics to describe")
    parser.add_argument("--json", action="store_true", help="one JSON object per partition instead of a table")
    args = parser.parse_args(argv)
    try:
        bootstrap = resolve_bootstrap(autostart=False)
        described = {topic: partition_spans(bootstrap, topic) for topic in args.topics}
    except (BrokerUnreachable, LookupError, RuntimeError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    for topic, spans in described.items():
        if args.json:
            for span in spans.values():
                print(json.dumps({"topic": topic, **asdict(span), "last": span.last, "records": span.records}))
            continue
        print(f"{topic}\n{'partition':>9} {'first':>10} {'last':>10} {'records':>10} {'reported end':>13}")
        for span in spans.values():
            last = "-" if span.last is None else f"{span.last}"
            print(f"{span.partition:>9} {span.first:>10} {last:>10} {span.records:>10,} {span.reported_end:>13}")
        print(f"{'all':>9} {'':>10} {'':>10} {sum(s.records for s in spans.values()):>10,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
