from __future__ import annotations

import pytest

from events.partitioning import partition_for


def test_matches_librdkafka_murmur2_random():
    # Placements observed from librdkafka 2.16 (partitioner=murmur2_random, 4 partitions);
    # tests/integration/test_broker.py checks the same against a live broker for many keys.
    assert [partition_for(k, 4) for k in (b"u1", b"u2", b"u3", b"user_42", b"abc")] == [0, 2, 2, 2, 3]


def test_partition_count_must_be_positive():
    with pytest.raises(ValueError, match="num_partitions must be >= 1, got 0"):
        partition_for(b"u1", 0)
