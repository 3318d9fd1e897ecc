"""Consumed Kafka messages into one :class:`RawBatch` per partition, in one compiled pass.

The per-message Python of the Kafka source (reading each message's error, partition,
offset and value, and filing it under its partition) is a visible share of the features
flow's time (about 9% uncompiled, 2026-12-02); this loop is compiled with mypyc
(events/native.py). It takes the messages duck-typed (anything with confluent-kafka's
``Message`` methods), so it is tested without a broker.
"""

from __future__ import annotations

from typing import Any

from features.partition_stage import RawBatch


def file_messages(messages: list[Any], pending: dict[int, RawBatch | None], topic: str, eof_code: int) -> None:
    """Add ``messages`` (one ``Consumer.consume()`` result) to the pending batch of their partition.

    ``pending`` has a key for every partition this reader still reads (None: nothing
    pending). A message of another partition is dropped: that partition was closed, its
    snapshot offset is final and a restart re-reads from it. A consumer error becomes an
    ``(offset or -1, "NAME: text")`` entry of the batch; one that names no partition (a
    client-level error) goes to the lowest open partition; end-of-partition (``eof_code``)
    sets ``eof``.
    """
    if not pending:
        return
    lowest = min(pending)
    for m in messages:
        error = m.error()
        p = m.partition()
        if error is not None and (p is None or p < 0):
            p = lowest
        if p not in pending:
            continue
        batch = pending[p]
        if batch is None:
            batch = pending[p] = RawBatch(topic, p)
        if error is None:
            batch.offsets.append(m.offset())
            batch.values.append(m.value())
        elif error.code() == eof_code:
            batch.eof = True
        else:
            offset = m.offset()
            batch.errors.append((offset if offset is not None else -1, f"{error.name()}: {error.str()}"))
