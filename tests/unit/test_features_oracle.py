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

from events.schema import CATEGORIES, EVENT_TYPES, check
from features.config import FeaturesConfig
from features.local import run_local
from features.partition_stage import RawBatch
from features.spec import KINDS, Horizon
from features.tiles import unpack
from tests.eventlog import T0, make_log

SMALL = FeaturesConfig(
    window_ms=60_000,
    allowed_lateness_ms=5_000,
    item_delay_ms=6_000,
    dedup_horizon_ms=120_000,
    item_shards=3,
    horizons=(Horizon("5m", 300_000, 60_000), Horizon("30m", 1_800_000, 300_000), Horizon("3h", 10_800_000, 3_600_000)),
)


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

def oracle(parts, cfg: FeaturesConfig, wall: int, return_accepted: bool = False):
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
    if return_accepted:
        return dead, windows, vectors, accepted
    return dead, windows, vectors


def history_oracle(parts, cfg: FeaturesConfig, wall: int, n: int):
    """Per accepted view: (recent items, per-category counts over the longest horizon), recomputed.

    Recent items: the user's earlier-arrived accepted views and clicks with event time <= t,
    ordered by (event time, arrival) newest first, distinct items, at most n (features/README.md).
    """
    _, _, _, accepted = oracle(parts, cfg, wall, return_accepted=True)
    longest = cfg.horizons[-1]
    out = {}
    for p, m, e in accepted:
        if e["event_type"] != "view":
            continue
        t = e["ts"]
        earlier = [(o["ts"], q_m, o) for q, q_m, o in accepted if q == p and q_m < m and o["user_id"] == e["user_id"]]
        recent: list[str] = []
        for ts, _, o in sorted(earlier, key=lambda x: (x[0], x[1]), reverse=True):
            if ts <= t and o["event_type"] in ("view", "click") and o["item_id"] not in recent and len(recent) < n:
                recent.append(o["item_id"])
        categories = []
        for c in CATEGORIES:
            counts = [0, 0, 0, 0]
            for ts, _, o in earlier:
                if o["category"] == c and longest.start(t) <= ts <= t:
                    counts[EVENT_TYPES.index(o["event_type"])] += 1
            categories.append(tuple(counts))
        out[e["event_id"]] = (tuple(recent), tuple(categories))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_user_history_matches_brute_force(seed):
    parts = make_log(seed)
    wall = T0 + 86_400_000
    out = run_local(SMALL, interleave(parts, seed, wall), partitions=len(parts), want_history=True)
    expected = history_oracle(parts, SMALL, wall, SMALL.recent_items)
    got = {v.event["event_id"]: v.history for v in out.vectors if v.event["event_type"] == "view"}
    assert got == expected
    assert any(len(h[0]) >= 3 for h in got.values()) and any(sum(map(sum, h[1])) for h in got.values())
    assert all(v.history is None for v in out.vectors if v.event["event_type"] != "view")


@pytest.mark.parametrize("seed", range(12))
def test_engine_matches_brute_force(seed):
    parts = make_log(seed)
    wall = T0 + 86_400_000
    out = run_local(SMALL, interleave(parts, seed, wall), partitions=len(parts))
    dead, windows, vectors = oracle(parts, SMALL, wall)
    got_dead = check_records(out.records, dead, windows)

    n_groups = len(SMALL.horizons)
    got_vectors = {}
    for event, user_vec, item_vec, user_cat_vec, cut, context in (v.fields()[:6] for v in out.vectors):
        assert context == (None if event["event_type"] != "view" else tuple(
            event[f] for f in ("event_id", "user_id", "item_id", "category", "country", "device", "ts", "price")))
        counts = unpack([user_vec, item_vec, user_cat_vec], n_groups).reshape(-1).tolist()
        assert event["event_id"] not in got_vectors
        got_vectors[event["event_id"]] = (counts, cut)
    assert got_vectors.keys() == vectors.keys()
    for event_id, expected in vectors.items():
        assert got_vectors[event_id] == expected, event_id
    n_in = sum(len(v) for v in parts)
    assert len(got_vectors) + len(got_dead) == n_in  # every input is used or a dead letter


@pytest.mark.parametrize("seed", range(12, 18))
def test_windows_only_counting_matches_brute_force(seed):
    """Without any vector to compute (features-only runs), the same windows and dead letters."""
    parts = make_log(seed)
    wall = T0 + 86_400_000
    out = run_local(SMALL, interleave(parts, seed, wall), partitions=len(parts), vectors_for="none",
                    keep_events=False, want_contexts=False)
    dead, windows, _ = oracle(parts, SMALL, wall)
    check_records(out.records, dead, windows)
    assert out.vectors == []


def check_records(records, dead, windows) -> dict:
    """Windows and dead letters against the oracle's; return the dead letters by (partition, offset)."""
    got_dead = {}
    got_windows = {"user": {}, "item": {}}
    for destination, key, value in records:
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
    assert got_windows["user"] and got_windows["item"]
    return got_dead


def test_batching_and_interleaving_do_not_change_outputs():
    parts = make_log(99)
    wall = T0 + 86_400_000
    runs = []
    for order_seed in (1, 2, 3):
        out = run_local(SMALL, interleave(parts, order_seed, wall), partitions=len(parts))
        runs.append((sorted(out.records), sorted((v.event["event_id"], v.user_vec, v.item_vec, v.cat_vec, v.item_as_of) for v in out.vectors)))
    assert runs[0] == runs[1] == runs[2]


def test_views_only_vectors_are_the_same_as_all_vectors():
    parts = make_log(98)
    wall = T0 + 86_400_000
    everything = run_local(SMALL, interleave(parts, 5, wall), partitions=len(parts))
    views = run_local(SMALL, interleave(parts, 5, wall), partitions=len(parts), vectors_for="views")
    expected = {v.event["event_id"]: v.fields()[1:] for v in everything.vectors if v.event["event_type"] == "view"}
    assert {v.event["event_id"]: v.fields()[1:] for v in views.vectors} == expected
    assert len(expected) < len(everything.vectors)
    assert sorted(views.records) == sorted(everything.records)
