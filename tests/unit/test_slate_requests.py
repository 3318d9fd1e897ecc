"""Slate requests from the partition stage (session starts, explicit requests) and the slate stage's wait."""

from __future__ import annotations

import pickle

import orjson
import pytest

from features.config import FeaturesConfig
from features.item_stage import ClosedItemWindows
from features.partition_stage import PartitionState, RawBatch, Records, SlateRequest, SlateRequests
from slates.stage import SlateStageState

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CFG = FeaturesConfig(item_shards=2)


def event(i: int, ts: int, session: str, user: str = "u1", item: str = "i1", event_type: str = "view") -> bytes:
    return orjson.dumps({
        "schema_version": 1, "event_id": f"e{i}", "event_type": event_type, "ts": ts, "user_id": user,
        "item_id": item, "session_id": session, "category": "Books", "price": 5.0, "country": "DE",
        "device": "tablet", "view_id": None if event_type == "view" else "e0",
        "rating": 3 if event_type == "purchase" else None,
    })


def request(request_id: str, ts: int, user: str = "u1", **extra) -> bytes:
    return orjson.dumps({"schema_version": 1, "request_id": request_id, "user_id": user, "ts": ts, **extra})


def state(session_slates: bool = True) -> PartitionState:
    return PartitionState(CFG, 0, want_history=True, slate_k=10, slate_max_k=50, session_slates=session_slates)


def slate_requests(out: list) -> list[SlateRequest]:
    return [r for o in out if isinstance(o, SlateRequests) for r in o.requests]


def dead_letters(out: list) -> list[dict]:
    return [orjson.loads(v) for o in out if isinstance(o, Records) for d, _, v in o.records if d == "dead_letters"]


def session_events() -> RawBatch:
    """u1: session s1 (a view, then a purchase), session s2 (a view); u2: session s3."""
    return RawBatch("interactions", 0, [0, 1, 2, 3], [
        event(0, T0 + 1_000, "s1"), event(1, T0 + 2_000, "s1", event_type="purchase"),
        event(2, T0 + 3_000, "s2", item="i2"), event(3, T0 + 4_000, "s3", user="u2")], wall_ms=T0 + 5_000)


def test_every_session_start_asks_for_a_slate_with_the_users_state_before_it():
    out = state().process(session_events())
    starts = slate_requests(out)
    assert [(r.request_id, r.user_id, r.ts, r.source) for r in starts] == [
        ("s1", "u1", T0 + 1_000, "session_start"), ("s2", "u1", T0 + 3_000, "session_start"),
        ("s3", "u2", T0 + 4_000, "session_start")]
    first, second, _ = starts
    assert (first.k, first.device, first.country, first.features_as_of) == (10, "tablet", "DE", T0 + 1_000)
    assert first.user_vec == 0 and first.purchased == ()  # nothing before the first event
    assert second.user_vec != 0 and second.purchased == ("i1",)  # the purchase is left out of the next slate


def test_session_slates_can_be_turned_off():
    assert slate_requests(state(session_slates=False).process(session_events())) == []


def test_a_request_is_answered_with_the_users_state_as_read_so_far():
    s = state(session_slates=False)
    batch = session_events()
    batch.requests_source = "recommendation-requests"
    batch.requests = [(0, request("r1", T0 + 9_000, k=5, context={"device": "desktop"})),
                      (1, request("r2", T0 + 9_000, user="nobody"))]
    r1, r2 = slate_requests(s.process(batch))
    assert (r1.request_id, r1.source, r1.k, r1.device, r1.country) == ("r1", "request", 5, "desktop", "")
    assert r1.features_as_of == T0 + 3_000 and r1.user_vec != 0  # u1's newest event, counted
    assert r1.purchased == ("i1",) and r1.recent[0] == "i2"
    assert (r2.k, r2.features_as_of, r2.user_vec, r2.recent) == (10, 0, 0, ())  # no events: empty counts


@pytest.mark.parametrize(("value", "reason"), [
    (b'{"request_id": ', "unparseable"),
    (None, "unparseable"),
    (request("r", T0, k=0), "k_out_of_range"),
    (request("r", T0, k=51), "k_out_of_range"),
    (request("r", T0, context={"device": "phone"}), "schema"),
    (orjson.dumps({"schema_version": 2, "request_id": "r", "user_id": "u1", "ts": T0}), "unsupported_schema_version"),
])
def test_a_bad_request_goes_to_the_dead_letters_with_its_reason(value, reason):
    batch = RawBatch("interactions", 0, wall_ms=T0, requests_source="recommendation-requests", requests=[(7, value)])
    out = state().process(batch)
    (dead,) = dead_letters(out)
    assert slate_requests(out) == []
    assert (dead["reason"], dead["stage"], dead["source"]["topic"], dead["source"]["offset"]) == (
        reason, "slate_request", "recommendation-requests", 7)


def test_a_request_waits_for_every_shards_item_windows_up_to_its_cut():
    stage = SlateStageState(CFG, shards=2, partitions=1)
    t = T0 + 125_000
    r = SlateRequest("r1", "u1", t, 10, "", "", "request", 0, (0,) * 5, (), (), t)
    stage.add(SlateRequests(0, t, [r]))
    cut = stage.cut(t)
    assert cut == T0 + 60_000  # the window before t - item delay (6 s): [T0 + 60 s, T0 + 120 s) is still open
    stage.add(ClosedItemWindows(0, cut, []))
    assert stage.take_ready() == []  # shard 1 has not closed up to the cut
    stage.add(ClosedItemWindows(1, cut, [("i1", T0, 3)]))
    assert stage.take_ready() == [(r, cut)]
    assert stage.take_ready() == []
    assert "i1" in stage.items.entities
    restored = pickle.loads(pickle.dumps(stage))
    assert restored.closed_until == cut and restored.counters == {"requests": 1} and restored.waiting == []
