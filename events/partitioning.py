"""Which Kafka partition a key lands on, computed without a broker.

The producer sets librdkafka's ``partitioner=murmur2_random``: the Java client's default,
so Redpanda tools, Kafka Streams and this project agree on where a user's events live.
A JSONL backfill uses :func:`partition_for` to split a file into the same virtual
partitions a topic would have, so late-event decisions (made per partition) match.

>>> [partition_for(k, 4) for k in (b"u1", b"u2", b"abc")]
[0, 2, 3]
"""

from __future__ import annotations

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 hash (seed 0x9747b28c), as an unsigned int."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    n4 = length // 4
    for i in range(0, n4 * 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rem = length & 3
    if rem:
        tail = data[n4 * 4 :]
        if rem == 3:
            h ^= tail[2] << 16
        if rem >= 2:
            h ^= tail[1] << 8
        h ^= tail[0]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for(key: bytes, num_partitions: int) -> int:
    """The partition Kafka's murmur2 partitioner picks for a non-empty key."""
    if num_partitions < 1:
        msg = f"num_partitions must be >= 1, got {num_partitions}"
        raise ValueError(msg)
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions
