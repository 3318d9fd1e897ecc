"""Differential test: the features engine against a brute-force computation.

Randomised event logs (out of order within the lateness, too-late events, duplicates,
malformed and invalid records, idle stretches of event time, several partitions read in a
random interleaving with random batch sizes) go through features.local (the same stage
code the Bytewax flow runs). Every emitted window, every point-in-time vector and every
dead letter is compared with an independent, quadratic recomputation written here from
the documented semantics (features/README.md).
"""

from __future__ import annotations

import random
from collections import defaultdict

import orjson
import pytest

from events.schema import EVENT_TYPES, check
from features.config import FeaturesConfig
from features.local import run_local
from features.partition_stage import RawBatch
from features.spec import KINDS, Horizon
from features.tiles import unpack

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CATS = ("Books", "Home", "Sports")
SMALL = FeaturesConfig(
    window_ms=60_000,
    allowed_lateness_ms=5_000,
    item_delay_ms=6_000,
    dedup_horizon_ms=120_000,
    item_shards=3,
    horizons=(Horizon("5m", 300_000, 60_000), Horizon("30m", 1_800_000, 300_000), Horizon("3h", 10_800_000, 3_600_000)),
)


def make_log(seed: int, n: int = 700, partitions: int = 3):
    """Per-partition lists of raw values, in that partition's order."""
    rng = random.Random(seed)
    users = [f"u{i}" for i in range(12)]
    items = [f"i{i}" for i in range(8)]
    home = {u: rng.randrange(partitions) for u in users}  # a user's events live in one partition
    parts: list[list[bytes]] = [[] for _ in range(partitions)]
    clock = {p: T0 for p in range(partitions)}
    last_ts: dict[int, int | None] = {p: None for p in range(partitions)}
    history: list[tuple[int, bytes]] = []
    for i in range(n):
        u = rng.choice(users)
        p = home[u]
        step = rng.choice([200, 1_000, 3_000, 9_000, 20_000]) if rng.random() > 0.01 else rng.choice([900_000, 2_400_000])
        previous = clock[p]
        clock[p] += step  # occasional idle stretches of 15 and 40 minutes
        t = clock[p]
        r = rng.random()
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
            "user_id": u, "item_id": rng.choice(items), "session_id": "s", "category": rng.choice(CATS),
            "price": 10.0, "country": "US", "device": "mobile",
            "view_id": None if event_type == "view" else f"e{seed}-{max(0, i - 1)}",
            "rating": 4 if event_type == "purchase" else None,
        }
        raw = orjson.dumps(event)
        r = rng.random()
        if r < 0.02:
            raw = raw[: len(raw) // 2]  # malformed
        elif r < 0.04:
            raw = orjson.dumps({**event, "price": -1})  # invalid
        elif r < 0.05:
            raw = orjson.dumps({**event, "ts": T0 + 10 * 86_400_000})  # far in the future of the wall clock
        parts[p].append(raw)
        history.append((p, raw))
        if rng.random() < 0.04 and history:
            dp, draw = rng.choice(history[-30:])
            parts[dp].append(draw)  # a duplicate, a little later in the same partition
    return parts


def interleave(parts, seed: int, wall: int):
    """Random batch sizes, random partition read order, like concurrent consumers."""
    rng = random.Random(seed * 7 + 1)
    cursors = [0] * len(parts)
    batches = []
    while any(c < len(v) for c, v in zip(cursors, parts)):
        p = rng.randrange(len(parts))
        if cursors[p] >= len(parts[p]):
            continue
        size = rng.choice([1, 3, 17, 60])
        values = parts[p][cursors[p] : cursors[p] + size]
        offsets = list(range(cursors[p], cursors[p] + len(values)))
        cursors[p] += len(values)
        batches.append(RawBatch("topic", p, offsets, values, wall_ms=wall))
    return batches


# ---- brute force -------------------------------------------------------------------------

def oracle(parts, cfg: FeaturesConfig, wall: int):
    accepted = []  # (partition, position in partition's accepted list, event)
    dead = {}  # (partition, offset) -> reason
    for p, values in enumerate(parts):
        wm = None
        fifo: list[tuple[int, str]] = []
        seen: dict[str, int] = {}
        n = 0
        for offset, raw in enumerate(values):
            try:
                event = orjson.loads(raw)
            except orjson.JSONDecodeError:
                dead[(p, offset)] = "unparseable"
                continue
            rejection = check(event)
            if rejection:
                dead[(p, offset)] = rejection.reason
                continue
            t = event["ts"]
            if t > wall + cfg.max_future_ms:
                dead[(p, offset)] = "ts_out_of_range"
            elif event["event_id"] in seen:
                dead[(p, offset)] = "duplicate"
            elif wm is not None and t < wm:
                dead[(p, offset)] = "late"
            else:
                accepted.append((p, n, event))
                n += 1
                seen[event["event_id"]] = t
                fifo.append((t, event["event_id"]))
                if wm is None or t - cfg.allowed_lateness_ms > wm:
                    wm = t - cfg.allowed_lateness_ms
                    while fifo and fifo[0][0] < wm - cfg.dedup_horizon_ms:
                        seen.pop(fifo.pop(0)[1])
    windows = {"user": defaultdict(lambda: [0, 0, 0, 0]), "item": defaultdict(lambda: [0, 0, 0, 0])}
    for _, _, e in accepted:
        ws = e["ts"] - e["ts"] % cfg.window_ms
        k = EVENT_TYPES.index(e["event_type"])
        windows["user"][(e["user_id"], ws)][k] += 1
        windows["item"][(e["item_id"], ws)][k] += 1
    vectors = {}
    for p, n, e in accepted:
        t = e["ts"]
        d = t - cfg.item_delay_ms
        cut = d - d % cfg.window_ms
        vec = []
        for kind in KINDS:
            for h in cfg.horizons:
                counts = [0, 0, 0, 0]
                for q, m, o in accepted:
                    if kind == "item":
                        match = o["item_id"] == e["item_id"] and h.start(t) <= o["ts"] < cut
                    else:
                        match = (q == p and m < n and o["user_id"] == e["user_id"] and h.start(t) <= o["ts"] <= t
                                 and (kind == "user" or o["category"] == e["category"]))
                    if match:
                        counts[EVENT_TYPES.index(o["event_type"])] += 1
                vec += counts
        vectors[e["event_id"]] = (vec, cut)
    return dead, windows, vectors


@pytest.mark.parametrize("seed", range(12))
def test_engine_matches_brute_force(seed):
    parts = make_log(seed)
    wall = T0 + 86_400_000
    out = run_local(SMALL, interleave(parts, seed, wall), partitions=len(parts))
    dead, windows, vectors = oracle(parts, SMALL, wall)

    got_dead = {}
    got_windows = {"user": {}, "item": {}}
    for destination, key, value in out.records:
        v = orjson.loads(value)
        if destination == "dead_letters":
            src = v["source"]
            assert (src["partition"], src["offset"]) not in got_dead, "one dead letter per input record"
            got_dead[(src["partition"], src["offset"])] = v["reason"]
        else:
            kind = destination.split("_")[0]
            wkey = (v[f"{kind}_id"], v["window_start"])
            assert wkey not in got_windows[kind], f"window {wkey} emitted twice"
            assert key == f"{wkey[0]}@{wkey[1]}".encode()
            got_windows[kind][wkey] = [v["views"], v["clicks"], v["add_carts"], v["purchases"]]
    assert got_dead == dead
    assert got_windows["user"] == dict(windows["user"])
    assert got_windows["item"] == dict(windows["item"])

    n_groups = len(SMALL.horizons)
    got_vectors = {}
    for event, user_vec, item_vec, user_cat_vec, cut in out.vectors:
        counts = unpack([user_vec, item_vec, user_cat_vec], n_groups).reshape(-1).tolist()
        assert event["event_id"] not in got_vectors
        got_vectors[event["event_id"]] = (counts, cut)
    assert got_vectors.keys() == vectors.keys()
    for event_id, expected in vectors.items():
        assert got_vectors[event_id] == expected, event_id
    n_in = sum(len(v) for v in parts)
    assert len(got_vectors) + len(got_dead) == n_in  # every input is used or a dead letter


def test_batching_and_interleaving_do_not_change_outputs():
    parts = make_log(99)
    wall = T0 + 86_400_000
    runs = []
    for order_seed in (1, 2, 3):
        out = run_local(SMALL, interleave(parts, order_seed, wall), partitions=len(parts))
        runs.append((sorted(out.records), sorted((e["event_id"], u, i, c, cut) for e, u, i, c, cut in out.vectors)))
    assert runs[0] == runs[1] == runs[2]
