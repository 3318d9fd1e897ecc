"""Watermarks that follow the wall clock when a stream goes idle, and bounded state."""

from __future__ import annotations

import orjson

from events.schema import EVENT_TYPES
from features.config import FeaturesConfig
from features.local import LocalPipeline
from features.partition_stage import Entry, RawBatch, Records

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a window boundary
CFG = FeaturesConfig(idle_timeout_ms=10_000, item_shards=2)


def event(i: int, ts: int, user: str = "u1", item: str = "i1", event_type: str = "view") -> bytes:
    return orjson.dumps({
        "schema_version": 1, "event_id": f"e{i}", "event_type": event_type, "ts": ts, "user_id": user,
        "item_id": item, "session_id": "s", "category": "Books", "price": 5.0, "country": "US",
        "device": "mobile", "view_id": None if event_type == "view" else "e0",
        "rating": 3 if event_type == "purchase" else None,
    })


def windows(pipeline: LocalPipeline, destination: str) -> list[dict]:
    return [orjson.loads(v) for d, _, v in pipeline.out.records if d == destination]


def test_an_idle_stream_closes_its_windows_with_the_wall_clock():
    p = LocalPipeline(CFG, partitions=2)
    wall = T0 + 1_000  # live: event time is about wall time
    p.feed(RawBatch("t", 0, [0, 1], [event(0, T0 + 500), event(1, T0 + 900, event_type="click")], wall_ms=wall))
    assert windows(p, "user_features") == []
    # Heartbeats while idle: nothing moves before the idle timeout ...
    p.feed(RawBatch("t", 0, wall_ms=wall + 9_000))
    p.feed(RawBatch("t", 1, wall_ms=wall + 9_000))
    assert windows(p, "user_features") == [] and windows(p, "item_features") == []
    # ... then the watermark follows the wall clock: 10 s idle + 65 s passes the window end
    # (watermark = newest - lateness + idle time beyond the timeout).
    p.feed(RawBatch("t", 0, wall_ms=wall + 75_000))
    p.feed(RawBatch("t", 1, wall_ms=wall + 75_000))  # partition 1 never had events: wall clock only
    (user_window,) = windows(p, "user_features")
    assert (user_window["user_id"], user_window["window_start"], user_window["views"], user_window["clicks"]) == (
        "u1", T0, 1, 1)
    (item_window,) = windows(p, "item_features")
    assert (item_window["item_id"], item_window["views"], item_window["clicks"]) == ("i1", 1, 1)
    # The idle move is final: an event behind the new watermark is late.
    p.feed(RawBatch("t", 0, [2], [event(2, T0 + 59_000)], wall_ms=wall + 76_000))
    late = [orjson.loads(v) for d, _, v in p.out.records if d == "dead_letters"]
    assert [x["reason"] for x in late] == ["late"]


def test_a_backfill_does_not_follow_the_wall_clock():
    """Its end (EOF) closes everything; an idle stretch of wall time must not make events late."""
    from features.partition_stage import PartitionState

    live, backfill = PartitionState(CFG, 0), PartitionState(CFG, 0, follow_wall_clock=False)
    outcomes = []
    for state in (live, backfill):
        state.process(RawBatch("t", 0, [0], [event(0, T0 + 500)], wall_ms=T0))
        state.process(RawBatch("t", 0, wall_ms=T0 + 600_000))  # ten minutes without a fetch for it
        out = state.process(RawBatch("t", 0, [1], [event(1, T0 + 900)], wall_ms=T0 + 600_001))
        dead = [orjson.loads(v)["reason"] for o in out if isinstance(o, Records) for d, _, v in o.records
                if d == "dead_letters"]
        outcomes.append((dead, state.watermark))
    # live: the idle move (10 min of wall time beyond the timeout), then the event is late
    assert outcomes[0] == (["late"], T0 + 500 - CFG.allowed_lateness_ms + 600_001 - CFG.idle_timeout_ms)
    assert outcomes[1] == ([], T0 + 900 - CFG.allowed_lateness_ms)
    flushed = backfill.flush()  # EOF: +infinity, the window closes
    assert backfill.watermark > T0 + 10**9 and any(isinstance(o, Records) for o in flushed)


def test_no_idle_move_while_events_keep_coming():
    p = LocalPipeline(CFG, partitions=1)
    for i in range(30):  # one event every 5 s of event time and of wall time: never idle
        p.feed(RawBatch("t", 0, [i], [event(i, T0 + 5_000 * i)], wall_ms=T0 + 5_000 * i))
    state = p.partitions[0]
    assert state.watermark == T0 + 5_000 * 29 - CFG.allowed_lateness_ms


def test_end_of_input_closes_everything_once():
    p = LocalPipeline(CFG, partitions=1)
    p.feed(RawBatch("t", 0, [0, 1], [event(0, T0), event(1, T0 + 200_000, user="u2", item="i2")], wall_ms=T0))
    out = p.finish()
    keys = [k for d, k, _ in out.records if d in ("user_features", "item_features")]
    assert sorted(keys) == sorted([f"u1@{T0}".encode(), f"u2@{T0 + 180_000}".encode(),
                                   f"i1@{T0}".encode(), f"i2@{T0 + 180_000}".encode()])


def test_state_stays_bounded_and_idle_users_are_evicted():
    """A stream of 6,000 users, each active for a few minutes over 60 hours of event time.

    Users older than the retention (largest horizon + hop + lateness + 1 h) are evicted, so
    the state holds about a day's users, not all of them; and a user who returns after
    eviction starts from zero counts, exactly as if every tile had expired.
    """
    p = LocalPipeline(CFG, partitions=1)
    n, step = 6_000, 36_000  # a new user every 36 s of event time: 100 per hour
    peak = 0
    for u in range(n):
        t = T0 + u * step
        values = [event(3 * u + j, t + 20_000 * j, user=f"u{u}", item=f"i{u % 50}", event_type=EVENT_TYPES[j])
                  for j in range(3)]
        p.feed(RawBatch("t", 0, list(range(3 * u, 3 * u + 3)), values, wall_ms=T0 + 10**10))
        peak = max(peak, len(p.partitions[0].users))
    retained_hours = CFG.retention_ms / 3_600_000
    assert peak <= (retained_hours + 2) * 100  # users of about one retention span, not all 6,000
    assert len(p.partitions[0].users) < n / 2
    # u0 was evicted long ago; coming back, its vector is zero (its old events are > 24 h away)
    p.feed(RawBatch("t", 0, [10**6], [event(10**6, T0 + n * step, user="u0", item="i0")], wall_ms=T0 + 10**10))
    p.feed(RawBatch("t", 0, [10**6 + 1], [event(10**6 + 1, T0 + n * step + 1, user="zz", item="i0")],
                    wall_ms=T0 + 10**10))
    out = p.finish()
    (returning,) = [v for v in out.vectors if v.event["event_id"] == f"e{10**6}"]
    assert returning.user_vec == 0 and returning.cat_vec == 0  # user and user x category counts start over


def test_counting_windows_only_keeps_no_closed_window():
    """Without vectors (features-only runs), users and items keep their open windows only."""
    p = LocalPipeline(CFG, partitions=1, vectors_for="none", keep_events=False, want_contexts=False)
    step = 7_000  # 3 users, 2 items, an event every 7 s of event time for 10 hours, some out of order
    for i in range(5_000):
        t = T0 + i * step - (4_000 if i % 11 == 0 else 0)
        p.feed(RawBatch("t", 0, [i], [event(i, t, user=f"u{i % 3}", item=f"i{i % 2}",
                                            event_type=EVENT_TYPES[i % 4])], wall_ms=T0 + 10**10))
        if i % 500 == 499:
            state = p.partitions[0]
            assert state.users is None and state.user_windows is not None  # no tiles, no totals
            for e in state.user_windows.entities.values():
                # every window a user still holds is open: it ends after the watermark
                assert all(ws + CFG.window_ms > state.watermark for ws in [*e.earlier, e.cur_ws] if ws > 0)
                assert len(e.earlier) <= 1
            for shard in p.shards:
                assert shard.items is None and shard.item_windows is not None
                assert all(ws + CFG.window_ms > shard.watermark for e in shard.item_windows.entities.values()
                           for ws in [*e.earlier, e.cur_ws] if ws > 0)
            assert len(state.user_windows) <= 3
    user_windows = windows(p, "user_features")
    assert len(user_windows) > 3 * 500 and sum(w["views"] + w["clicks"] for w in user_windows) > 2_000
    assert p.out.vectors == []


def test_state_pickled_mid_stream_resumes_with_the_same_outputs():
    # Waiting events and the partition's item-shard cache go through pickle (Bytewax
    # snapshots); a resumed pipeline must write what an uninterrupted one writes. A snapshot
    # of another state format is refused with a reason.
    import pickle

    from features.item_stage import ItemShardState
    from features.partition_stage import PartitionState

    raws = [event(i, T0 + 500 * i, user=f"u{i % 3}", item=f"i{i % 4}") for i in range(200)]

    def run(split: bool) -> list:
        p = LocalPipeline(CFG, partitions=2)
        p.feed(RawBatch("t", 0, offsets=list(range(100)), values=raws[:100], wall_ms=T0))
        # partition 1 has sent nothing yet: the item stage holds partition 0's views
        assert sum(len(w) for shard in p.shards for w in shard.pending.values()) > 0
        if split:
            p.partitions = [pickle.loads(pickle.dumps(s)) for s in p.partitions]
            p.shards = [pickle.loads(pickle.dumps(s)) for s in p.shards]
        p.feed(RawBatch("t", 1, offsets=list(range(100)), values=raws[100:], wall_ms=T0))
        result = p.finish()
        assert result.records and result.vectors
        return sorted(result.records) + sorted((v.event["event_id"], v.fields()[1:]) for v in result.vectors)

    assert run(split=True) == run(split=False)

    assert pickle.loads(pickle.dumps(PartitionState(CFG, 0))).item_shards == {}
    import pytest

    from features.partition_stage import SnapshotFormatError

    for state in (PartitionState(CFG, 0), ItemShardState(CFG, 0, 1)):
        old = {**state.__reduce__()[2], "format": 1}
        with pytest.raises(SnapshotFormatError, match="state format 1, this version reads 2: start with a fresh"):
            type(state).__setstate__(state, old)


def test_views_carry_their_scoring_context_and_other_events_none():
    from features.partition_stage import VIEW_CONTEXT
    from tests.eventlog import make_log

    parts = make_log(5, n=600, partitions=2, faults=True, future_ts=T0 + 30 * 86_400_000)
    p = LocalPipeline(CFG, partitions=2)
    for i, values in enumerate(parts):
        p.feed(RawBatch("t", i, offsets=list(range(len(values))), values=values, wall_ms=T0 + 86_400_000))
    vectors = p.finish().vectors
    views = [v for v in vectors if v.event["event_type"] == "view"]
    assert views and len(views) < len(vectors)
    assert all(v.context == VIEW_CONTEXT(v.event) for v in views)
    assert all(v.context is None for v in vectors if v.event["event_type"] != "view")


def test_a_restored_partition_state_follows_this_runs_vector_setting(tmp_path):
    # A snapshot taken while every event needed its vector (an event-features topic) may be
    # resumed by a run that scores views only, and the other way round: the run decides.
    import pickle

    from dataflows.files import JsonlSource
    from dataflows.staged_source import EntryNeeds, StagedSource
    from features.partition_stage import PartitionState

    path = tmp_path / "in.jsonl"
    path.write_bytes(event(0, T0 + 500) + b"\n" + event(1, T0 + 900, event_type="click") + b"\n")
    for taken, now in ((False, True), (True, False)):
        snapshot = (None, pickle.dumps({0: PartitionState(CFG, 0, views_only=taken, keep_events=taken,
                                                          want_contexts=taken)}))
        source = StagedSource(JsonlSource(path, 1), CFG, needs=EntryNeeds(now, now, now))
        part = source.build_part("s", "file", snapshot)
        state = part.states[0]
        assert (state.views_only, state.keep_events, state.want_contexts) == (now, now, now)
        chunks = [o for o in part.next_batch() if type(o).__name__ == "ToItems"]
        click = [entry for c in chunks for entry in c.events if entry.type_index]
        assert len(click) == 1 and (click[0].user_vec == 0) is now  # the click's user vector: dropped or kept
        part.close()


def test_a_restored_item_shard_follows_this_runs_vector_setting():
    import pickle

    from dataflows.config import FlowConfig
    from dataflows.observability import FlowMonitor
    from dataflows.staged_source import EntryNeeds
    from dataflows.wiring import _Context, _ItemLogic
    from features.item_stage import ItemShardState

    for taken, now in (("all", "views"), ("views", "all")):
        needs = EntryNeeds(views_only=now == "views", keep_events=now == "all")
        ctx = _Context(FlowConfig(idle_timeout_s=CFG.idle_timeout_ms / 1000, item_shards=CFG.item_shards, model=None), 2, FlowMonitor(), True, needs)
        logic = _ItemLogic(ctx, pickle.dumps(ItemShardState(CFG, 0, 2, taken)))
        assert logic.state is not None and logic.state.all_vectors is (now == "all")


def test_views_waiting_without_their_event_refuse_a_run_that_needs_events():
    # A snapshot of a scoring-only run holds waiting views without their event dict; a run
    # that writes event features or examples cannot complete them, and says so at start.
    import pickle

    import pytest

    from dataflows.config import FlowConfig
    from dataflows.observability import FlowMonitor
    from dataflows.staged_source import EntryNeeds
    from dataflows.wiring import _Context, _ItemLogic
    from features.item_stage import ItemShardState

    shard = ItemShardState(CFG, 0, 1, "views")
    shard.pending[T0] = [Entry(None, 1, 2, T0 + 10, 0, "i1", ("e1", "u1", "i1", "Books", "US", "mobile", T0 + 10, 5.0))]
    config = FlowConfig(idle_timeout_s=CFG.idle_timeout_ms / 1000, item_shards=CFG.item_shards, model=None)
    scoring_only, with_examples = EntryNeeds(True, False, True), EntryNeeds(True, True, True)
    _ItemLogic(_Context(config, 1, FlowMonitor(), True, scoring_only), pickle.dumps(shard))  # the same outputs: fine
    with pytest.raises(ValueError, match="carry no event"):
        _ItemLogic(_Context(config, 1, FlowMonitor(), True, with_examples), pickle.dumps(shard))


def test_without_kept_events_or_contexts_the_vectors_are_the_same():
    from tests.eventlog import make_log

    parts = make_log(9, n=1500, partitions=2, faults=True)
    batches = [RawBatch("t", p, list(range(len(v))), list(v), wall_ms=T0 + 10**7) for p, v in enumerate(parts)]
    from features.local import run_local

    kept = run_local(CFG, batches, 2, vectors_for="views", keep_events=True)
    dropped = run_local(CFG, batches, 2, vectors_for="views", keep_events=False)
    assert kept.records == dropped.records and len(kept.vectors) == len(dropped.vectors) > 100
    assert all(v.event is None for v in dropped.vectors) and all(type(v.event) is dict for v in kept.vectors)
    assert [v.fields()[1:] for v in kept.vectors] == [v.fields()[1:] for v in dropped.vectors]
    assert [v.event["event_id"] for v in kept.vectors] == [v.context[0] for v in dropped.vectors]  # the context still names it
    bare = run_local(CFG, batches, 2, vectors_for="views", keep_events=False, want_contexts=False)
    assert bare.records == kept.records and all(v.event is None and v.context is None for v in bare.vectors)
    assert [v.fields()[1:5] for v in bare.vectors] == [v.fields()[1:5] for v in kept.vectors]


def test_the_flow_keeps_what_its_outputs_read():
    from dataflows.config import FlowConfig
    from dataflows.wiring import EntryNeeds, entry_needs

    plain = FlowConfig(model=None)
    assert entry_needs(plain, scoring=False, recovery=False) == EntryNeeds(True, False, False, vectors=False)
    assert entry_needs(plain, scoring=True, recovery=False) == EntryNeeds(True, False, True)
    assert entry_needs(plain, scoring=False, recovery=True) == EntryNeeds(True, False, True)  # a later run may score
    examples = FlowConfig(model=None, backfill=True, examples_out="x.jsonl")
    assert entry_needs(examples, scoring=False, recovery=False) == EntryNeeds(True, True, True, history=True)
    features = FlowConfig(model=None, event_features_topic="event-features")
    assert entry_needs(features, scoring=False, recovery=False) == EntryNeeds(False, True, False, history=True)
    assert entry_needs(FlowConfig(model=None, event_features_topic="ef", output="none", backfill=True,
                                  examples_out="x"), scoring=False, recovery=False) == EntryNeeds(True, True, True,
                                                                                                 history=True)


def test_a_partition_behind_its_backlog_is_not_idle():
    """Heartbeats of a partition with records waiting (a busy flow, a starved fetch) keep its watermark."""
    from features.partition_stage import PartitionState

    behind, idle = PartitionState(CFG, 0), PartitionState(CFG, 0)
    for state in (behind, idle):
        state.process(RawBatch("t", 0, [0], [event(0, T0 + 500)], wall_ms=T0 + 1_000))
    for wall in range(T0 + 2_000, T0 + 60_000, 1_000):
        behind.process(RawBatch("t", 0, wall_ms=wall, behind=True))
        idle.process(RawBatch("t", 0, wall_ms=wall))
    assert behind.watermark == T0 + 500 - CFG.allowed_lateness_ms  # as its newest event left it
    assert idle.watermark > T0 + 500  # followed the wall clock after the idle timeout
    # the backlog arrives: nothing of it is late behind a watermark that ran ahead
    out = behind.process(RawBatch("t", 0, [1], [event(1, T0 + 600)], wall_ms=T0 + 61_000))
    assert not any(d == "dead_letters" for o in out if isinstance(o, Records) for d, _, _ in o.records)
