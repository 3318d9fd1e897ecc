"""Randomised interaction logs for the features tests (not the producer: a small, exact world).

:func:`make_log` writes per-partition lists of raw values with every difficulty the flow
must handle: out of order within the lateness, exactly at and 1 ms behind the watermark,
equal timestamps, too-late events, duplicates, malformed and invalid records, events far
in the future of the wall clock, and idle stretches of event time. A user's events stay in
one partition, as the producer's key (user_id) guarantees.
"""

from __future__ import annotations

import random
from pathlib import Path

import orjson

from events.partitioning import partition_for
from events.schema import EVENT_TYPES

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CATS = ("Books", "Home", "Sports")
FUTURE_SHIFT_MS = 10 * 86_400_000


def make_log(seed: int, n: int = 700, partitions: int = 3, t0: int = T0, users: int = 12, items: int = 8,
             faults: bool = True, kafka_placement: bool = False, shared_clock: bool = False,
             sync_end: bool = False, future_ts: int | None = None) -> list[list[bytes]]:
    """Per-partition lists of raw values, each in its partition's order.

    Partitions have their own clocks (drifting apart, as when consumers lag differently)
    unless ``shared_clock``. ``sync_end`` appends one view per partition at a common time
    two minutes after the last event, so every earlier item window can close.
    ``future_ts`` is the event time of the far-future faults (default: t0 + 10 days); it
    must lie beyond the wall clock of the run plus the flow's max_future_ms.

    ``kafka_placement`` puts each user where Kafka's murmur2 partitioner would, so the
    partitions equal those of a topic the values are produced to with key = user_id.
    """
    rng = random.Random(seed)
    user_ids = [f"u{i}" for i in range(users)]
    item_ids = [f"i{i}" for i in range(items)]
    if kafka_placement:
        home = {u: partition_for(u.encode(), partitions) for u in user_ids}
    else:
        home = {u: rng.randrange(partitions) for u in user_ids}
    parts: list[list[bytes]] = [[] for _ in range(partitions)]
    clock = dict.fromkeys(range(partitions), t0)
    last_ts: dict[int, int | None] = dict.fromkeys(range(partitions))
    history: list[tuple[int, bytes]] = []
    for i in range(n):
        u = rng.choice(user_ids)
        p = home[u]
        step = rng.choice([200, 1_000, 3_000, 9_000, 20_000]) if rng.random() > 0.01 else rng.choice([900_000, 2_400_000])
        if shared_clock:
            previous = max(clock.values())
            for q in clock:
                clock[q] = previous + step
        else:
            previous = clock[p]
            clock[p] += step  # occasional idle stretches of 15 and 40 minutes
        t = clock[p]
        r = rng.random() if faults else 1.0
        if r < 0.10:
            t -= rng.randrange(0, 8_000)  # out of order: within, at and just beyond the lateness
        elif r < 0.13:
            t -= rng.randrange(6_000, 600_000)  # too late
        elif r < 0.20 and last_ts[p] is not None:
            t = last_ts[p]  # the same millisecond as the previous event of the partition
        elif r < 0.24:
            t = previous - 5_000 - rng.choice([0, 1])  # exactly at the watermark, and 1 ms behind it
        last_ts[p] = t
        event_type = rng.choice(EVENT_TYPES)
        event = {
            "schema_version": 1, "event_id": f"e{seed}-{i}", "event_type": event_type, "ts": t,
            "user_id": u, "item_id": rng.choice(item_ids), "session_id": "s", "category": rng.choice(CATS),
            "price": 10.0, "country": "US", "device": "mobile",
            "view_id": None if event_type == "view" else f"e{seed}-{max(0, i - 1)}",
            "rating": 4 if event_type == "purchase" else None,
        }
        raw = orjson.dumps(event)
        r = rng.random() if faults else 1.0
        if r < 0.02:
            raw = raw[: len(raw) // 2]  # malformed
        elif r < 0.04:
            raw = orjson.dumps({**event, "price": -1})  # invalid
        elif r < 0.05:
            raw = orjson.dumps({**event, "ts": future_ts or t0 + FUTURE_SHIFT_MS})  # far in the future of the wall clock
        parts[p].append(raw)
        history.append((p, raw))
        if faults and rng.random() < 0.04 and history:
            dp, draw = rng.choice(history[-30:])
            parts[dp].append(draw)  # a duplicate, a little later in the same partition
    if sync_end:
        end = max(clock.values()) + 120_000
        for p in range(partitions):
            u = next((u for u in user_ids if home[u] == p), None)
            j = 0
            while u is None:  # a user that lives in partition p
                j += 1
                if partition_for(f"sync{j}".encode(), partitions) == p or not kafka_placement:
                    u = f"sync{j}"
            event = {
                "schema_version": 1, "event_id": f"e{seed}-end-{p}", "event_type": "view", "ts": end,
                "user_id": u, "item_id": item_ids[0], "session_id": "s", "category": CATS[0], "price": 10.0,
                "country": "US", "device": "mobile", "view_id": None, "rating": None,
            }
            parts[p].append(orjson.dumps(event))
    return parts


def user_key(raw: bytes) -> bytes:
    """The Kafka key of a raw value (its user_id), or b'unknown' when it does not parse."""
    try:
        return orjson.loads(raw)["user_id"].encode()
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return b"unknown"


def write_jsonl(path: Path, values: list[bytes]) -> Path:
    path.write_bytes(b"".join(v + b"\n" for v in values))
    return path
