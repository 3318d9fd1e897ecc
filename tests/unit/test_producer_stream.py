"""The generated stream: realised shares and funnel, ordering, follow-ups, ids, determinism.

One 1-day backfill of a small world (about 100k events) is generated once per module and
shared by the read-only tests.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest

from demo.__main__ import history_span_s
from events.schema import COUNTRIES, check
from producers.synthetic.config import ModelParams, ProducerConfig
from producers.synthetic.runner import run
from producers.synthetic.sinks import MemorySink
from producers.synthetic.stream import span_for_events
from producers.synthetic.world import UTC_OFFSET_H, top_share

START = datetime(2025, 3, 1, tzinfo=UTC)
MODEL = ModelParams(users=1000, items=500, calibration_views=20_000)
DAY = ProducerConfig(mode="backfill", rate=1.2, days=1.0, start=START, sink="stdout", progress_interval_s=0,
                     model=MODEL, parallel="off")  # fmt: skip


def produce(cfg: ProducerConfig) -> tuple[MemorySink, dict]:
    """Run into memory; live runs use a fake clock, so pacing costs no real time."""
    sink = MemorySink()
    now = [0.0]
    report = run(cfg, sink, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s), log=None)
    return sink, report


@pytest.fixture(scope="module")
def day() -> tuple[list[dict], MemorySink, dict]:
    sink, report = produce(DAY)
    return [orjson.loads(v) for v in sink.values], sink, report


def test_every_event_passes_the_schema(day):
    events, _, _ = day
    assert len(events) > 50_000
    assert [check(e) for e in events if check(e) is not None] == []


def test_realised_skew_meets_the_targets(day):
    events, _, report = day
    per_user = np.bincount([int(e["user_id"][1:]) for e in events], minlength=MODEL.users)
    views = [int(e["item_id"][1:]) for e in events if e["event_type"] == "view"]
    assert top_share(per_user, 0.2) == pytest.approx(0.8, abs=0.03)
    assert top_share(np.bincount(views, minlength=MODEL.items), 0.1) == pytest.approx(0.3, abs=0.03)
    assert report["skew"]["user_top_share"] == pytest.approx(top_share(per_user, 0.2), abs=1e-4)


def test_event_mix_and_funnel_are_calibrated(day):
    events, _, report = day
    types = [e["event_type"] for e in events]
    mix = {t: types.count(t) / len(types) for t in ("view", "click", "add_cart", "purchase")}
    assert mix == pytest.approx({"view": 0.5, "click": 0.3, "add_cart": 0.15, "purchase": 0.05}, abs=0.015)
    assert report["funnel"]["click_per_view"] == pytest.approx(0.6, abs=0.02)
    assert report["funnel"]["cart_per_click"] == pytest.approx(0.5, abs=0.02)
    assert report["funnel"]["purchase_per_cart"] == pytest.approx(1 / 3, abs=0.02)


def test_follow_ups_reference_an_earlier_view_of_the_same_user(day):
    events, _, _ = day
    seen: dict[str, dict] = {}
    steps: dict[str, set[str]] = {}  # view_id -> follow-up types seen so far
    before = {"click": "view", "add_cart": "click", "purchase": "add_cart"}
    for e in events:
        if e["event_type"] == "view":
            seen[e["event_id"]] = e
            steps[e["event_id"]] = {"view"}
            continue
        view = seen[e["view_id"]]  # KeyError: no earlier view
        assert (view["user_id"], view["item_id"], view["session_id"]) == (e["user_id"], e["item_id"], e["session_id"])
        assert e["ts"] > view["ts"]
        assert before[e["event_type"]] in steps[e["view_id"]]
        steps[e["view_id"]].add(e["event_type"])


def test_events_come_in_time_order_with_unique_ids(day):
    events, _, report = day
    ts = np.array([e["ts"] for e in events])
    assert np.all(np.diff(ts) >= 0)
    assert len({e["event_id"] for e in events}) == len(events)
    start_ms = int(START.timestamp() * 1000)
    assert ts[0] >= start_ms and ts[-1] < start_ms + 86_400_000
    assert report["first_ts"] == ts[0] and report["last_ts"] == ts[-1]


def test_purchase_ratings_follow_the_choice_route(day):
    events, sink, _ = day
    choice = {t["event_id"]: t["choice"] for t in map(orjson.loads, sink.truth_values)}
    ratings: dict[str, list[int]] = {"preferred": [], "popular": [], "random": []}
    for e in events:
        if e["event_type"] == "purchase":
            ratings[choice[e["view_id"]]].append(e["rating"])
    assert set(ratings["preferred"]) <= {4, 5} and set(ratings["popular"]) <= {3, 4, 5}
    assert min(ratings["random"]) < 3 and np.mean(ratings["preferred"]) > np.mean(ratings["random"])


def test_truth_has_one_record_per_view_and_stays_out_of_events(day):
    events, sink, report = day
    truth = [orjson.loads(v) for v in sink.truth_values]
    view_ids = [e["event_id"] for e in events if e["event_type"] == "view"]
    assert [t["event_id"] for t in truth] == view_ids
    assert [k.decode() for k in sink.truth_keys] == view_ids
    assert all(0 < t["p_click"] < 1 and t["kind"] == "view" for t in truth)
    assert not any("p_click" in e for e in events)
    assert report["counts_by_type"]["view"] == len(truth)


def test_oracle_beats_popularity_which_beats_chance(day):
    _, _, report = day
    oracle = report["oracle"]
    assert oracle["auc"] > oracle["popularity_auc"] > 0.5
    assert oracle["auc"] == pytest.approx(oracle["expected_auc"], abs=0.02)
    assert oracle["log_loss"] < oracle["base_rate_log_loss"]


def test_checksum_is_the_sha256_of_the_jsonl_stream(day):
    _, sink, report = day
    assert report["checksum"] == hashlib.sha256(b"".join(v + b"\n" for v in sink.values)).hexdigest()


def test_same_arguments_give_the_same_bytes_and_other_seeds_do_not():
    cfg = replace(DAY, days=0.05)
    a, ra = produce(cfg)
    b, rb = produce(cfg)
    assert a.values == b.values and a.truth_values == b.truth_values and ra["checksum"] == rb["checksum"]
    c, rc = produce(replace(cfg, seed=cfg.seed + 1))
    assert rc["checksum"] != ra["checksum"]
    assert not {orjson.loads(v)["event_id"] for v in c.values} & {orjson.loads(v)["event_id"] for v in a.values}


@pytest.mark.parametrize("change", [{"start": datetime(2025, 3, 2, tzinfo=UTC)}, {"mode": "live"}])
def test_event_ids_differ_between_runs_of_another_start_or_mode(change):
    cfg = replace(DAY, days=0.01, count=500)
    base, _ = produce(cfg)
    other, _ = produce(replace(cfg, **change))
    ids = {orjson.loads(v)["event_id"] for v in base.values}
    assert not ids & {orjson.loads(v)["event_id"] for v in other.values}


def test_live_mode_puts_events_on_a_uniform_time_grid_at_the_paced_rate():
    now = [1000.0]
    sink = MemorySink()
    cfg = replace(DAY, mode="live", rate=300.0, count=1000)
    report = run(cfg, sink, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s), log=None)
    ts = [orjson.loads(v)["ts"] for v in sink.values]
    start_ms = int(START.timestamp() * 1000)
    assert ts == [start_ms + round(n * 1000 / 300) for n in range(1000)]
    assert report["rate_achieved"] == pytest.approx(300.0, rel=1e-6)
    assert now[0] == pytest.approx(1000.0 + 1000 / 300)


def test_a_worker_process_builds_the_same_stream():
    cfg = replace(DAY, days=0.2)
    inline, ri = produce(cfg)
    worker, rw = produce(replace(cfg, parallel="on"))
    assert rw["generator_process"] and not ri["generator_process"]
    assert rw["checksum"] == ri["checksum"] and worker.truth_values == inline.truth_values


def test_backfill_intensity_is_the_rate_with_a_daily_cycle_in_local_time(day):
    events, _, _ = day
    assert len(events) == pytest.approx(DAY.rate * 86_400, rel=0.05)
    offset_h = dict(zip(COUNTRIES, UTC_OFFSET_H, strict=True))
    local_hour = np.array([(e["ts"] // 1000 + 3600 * offset_h[e["country"]]) % 86_400 // 3600 for e in events])
    per_hour = np.bincount(local_hour, minlength=24)
    assert per_hour[18:22].sum() > 3 * per_hour[2:6].sum()


def epoch_ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def test_a_history_span_for_a_count_is_longer_at_night():
    night, evening = (span_for_events(20_000, 20.0, epoch_ms(START + timedelta(hours=h))) for h in (5.5, 19.0))
    assert night > 2 * evening  # a fixed span would hold 2x the events in the evening


@pytest.mark.parametrize("end_hour", [5.5, 19.0])
def test_span_for_events_sizes_a_history_by_count_whatever_the_hour(end_hour):
    """The demo's history: the span that holds N events, ending at a quiet or a busy hour."""
    n, rate = 20_000, 20.0
    end = START + timedelta(hours=end_hour)
    span = span_for_events(n, rate, epoch_ms(end))
    cfg = replace(DAY, rate=rate, start=end - timedelta(seconds=span), duration_s=span)
    exact, _ = produce(cfg)
    assert 0.75 * n <= len(exact.values) <= 1.15 * n
    roomy = history_span_s(n, rate, epoch_ms(end))  # the demo's span, with its margin
    _, report = produce(replace(cfg, start=end - timedelta(seconds=roomy), duration_s=roomy, count=n))
    assert report["messages"] == n and report["last_ts"] < epoch_ms(end)
