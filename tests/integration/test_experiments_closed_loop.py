"""The closed loop: treatment sessions show the slates found on the recommendations topic.

First the producer's side alone (slates fed straight into the topic, bad records among them),
then the real loop: the live features flow with a DLRM and a Two-Tower (trained small, as in
test_slates_flow.py) writes the slates the live producer's treatment sessions show.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import orjson
from confluent_kafka import Producer

from broker.config import BOOTSTRAP_ENV
from broker.console import read_topic
from producers.synthetic.__main__ import main
from tests.integration.flowtools import REPO_ROOT, start_features, stop, wait_for
from tests.integration.test_slates_flow import WORLD, models, publish_users, slate_env, slate_topics  # noqa: F401

START_MS = 1_767_614_400_000  # 2026-01-05T12:00:00Z
USERS, ITEMS = 600, 200


def fed_slate(user: int) -> list[int]:
    return [(user * 3 + j) % ITEMS for j in range(10)]


def test_treatment_sessions_show_the_topics_slates(kafka_bootstrap, make_topics, monkeypatch, tmp_path):
    (topic,) = make_topics("recommendations")
    monkeypatch.setenv(BOOTSTRAP_ENV, kafka_bootstrap)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for u in range(USERS):
        record = {"request_id": f"r{u}", "user_id": f"u{u}", "ts": START_MS - 1000, "source": "test",
                  "slate": [{"item_id": f"i{i}", "rank": r + 1, "score": 1.0 - r / 10} for r, i in enumerate(fed_slate(u))]}
        producer.produce(topic, orjson.dumps(record), f"u{u}".encode())
    producer.produce(topic, b"not json", b"u1")
    producer.produce(topic, orjson.dumps({"user_id": "u2", "ts": START_MS, "slate": [{"item_id": "i9999", "rank": 1}]}))
    assert producer.flush(10) == 0
    out, report_path = tmp_path / "ev.jsonl", tmp_path / "report.json"
    argv = ["--backfill", "--rate", "40", "--duration", "1800", "--start", "2026-01-05T12:00:00Z", "--users", str(USERS),
            "--items", str(ITEMS), "--calibration-views", "5000", "--progress-interval", "0", "--sink", "jsonl",
            "--out", str(out), "--report", str(report_path), "--experiment", "loop",
            "--arms", "control=popularity,treatment=pipeline", "--slates-topic", topic, "--warmup-events", "5000"]
    assert main(argv) == 0
    served = [e for e in map(orjson.loads, out.read_bytes().splitlines()) if e["schema_version"] == 2]
    views = [e for e in served if e["event_type"] == "view"]
    treatment = [e for e in views if e["arm"] == "treatment"]
    control = [e for e in views if e["arm"] == "control"]
    assert treatment and control
    # every treatment view is the fed slate's item at its rank; control views come from popularity
    assert all(int(e["item_id"][1:]) == fed_slate(int(e["user_id"][1:]))[e["position"] - 1] for e in treatment)
    assert sum(int(e["item_id"][1:]) == fed_slate(int(e["user_id"][1:]))[e["position"] - 1] for e in control) < len(control) / 5
    # each treatment session's truth names the fed slate it showed
    truth = [orjson.loads(v) for v in out.with_name("ev.truth.jsonl").read_bytes().splitlines()]
    origin = {t["slate_id"]: t["slate"].get("pipeline_request_id") for t in truth if "slate" in t}
    assert all(origin[e["slate_id"]] == f"r{e['user_id'][1:]}" for e in treatment)
    assert all(origin[e["slate_id"]] is None for e in control)
    arms = json.loads(report_path.read_text())["experiment"]["arms"]
    t = arms["treatment"]
    assert (t["policy"], t["received"], t["refused"], t["fallback"]) == ("pipeline", USERS, 2, 0)
    assert (t["sessions_shown_fallback"], "sessions_shown_pipeline" in arms["control"]) == (0, False)
    assert t["served_sessions"] == len({e["slate_id"] for e in treatment})
    # every served session gets every arm's slate (the others' are its potential outcomes)
    assert t["from_pipeline"] >= t["served_sessions"] + arms["control"]["served_sessions"]


# -- the real loop: the features flow writes the slates, the producer's treatment sessions show them --------------

LOOP_RATE, LOOP_SECONDS = 200, 30  # events per second of wall time, and how long the producer runs


def slates_by_request(bootstrap: str, topic: str) -> dict[str, dict]:
    return {s["request_id"]: s for s in (orjson.loads(r.value) for r in read_topic(bootstrap, topic))}


def test_treatment_sessions_show_the_live_flows_slates(models, kafka_bootstrap, kafka_env, make_topics,  # noqa: F811 (a fixture)
                                                       tmp_path):
    """The producer (experiment mode, live) and the features flow (DLRM + Two-Tower) on the broker together.

    Every served session's first event is a request the flow answers with a slate (request_id =
    session_id); a treatment session shows the newest slate the producer has received for the user
    (made at an earlier session's start), else popularity's, counted. Its truth record names the
    flow's slate it showed, and each of its views is that slate's item at the view's rank.
    """
    topics = slate_topics(make_topics)
    publish_users(kafka_bootstrap, topics["users"], models["users"])
    env = slate_env(kafka_env, topics, models)
    log = tmp_path / "flow.log"
    flow = start_features(env, "--idle-timeout-s", "1", log=log)
    try:
        wait_for(lambda: flow.poll() is not None or " in (" in log.read_text(), 120, "the flow's first progress line")
        assert flow.poll() is None, log.read_text()[-2000:]
        assert "slates of 10" in log.read_text()
        truth, report_path = tmp_path / "truth.jsonl", tmp_path / "report.json"
        subprocess.run([sys.executable, "-m", "producers.synthetic", *WORLD, "--seed", "5", "--rate", str(LOOP_RATE),
                        "--duration", str(LOOP_SECONDS), "--no-profiles", "--progress-interval", "0",
                        "--truth-out", str(truth), "--report", str(report_path), "--experiment", "loop",
                        "--arms", "control=popularity,treatment=pipeline", "--slates-topic", topics["recommendations"],
                        "--warmup-events", "5000"], cwd=REPO_ROOT, env=env, check=True, capture_output=True)
        events = [orjson.loads(r.value) for r in read_topic(kafka_bootstrap, topics["interactions"])]
        served = {e["session_id"]: e for e in events if e["schema_version"] == 2 and e["position"] == 1
                  and e["event_type"] == "view"}  # each served session's first view (rank 1 is always viewed)
        wait_for(lambda: served.keys() <= slates_by_request(kafka_bootstrap, topics["recommendations"]).keys(), 60,
                 "a slate for every served session's start")
    finally:
        assert stop(flow, signal.SIGINT) == 0, log.read_text()[-2000:]
    slates = slates_by_request(kafka_bootstrap, topics["recommendations"])
    # the flow answered every served session's start, for its user, as of its first event
    assert all((slates[s]["user_id"], slates[s]["ts"], slates[s]["source"]) == (e["user_id"], e["ts"], "session_start")
               for s, e in served.items())
    origin = {t["slate_id"]: t["slate"].get("pipeline_request_id") for t in map(orjson.loads, truth.read_bytes().splitlines())
              if t.get("kind") == "view" and "slate" in t}
    views = [e for e in events if e["schema_version"] == 2 and e["event_type"] == "view"]
    session_of = {e["slate_id"]: e for e in served.values()}
    assert {e["slate_id"] for e in views} == origin.keys() == session_of.keys()  # one truth record per served session
    shown = {sl: r for sl, r in origin.items() if r is not None}
    assert all(session_of[sl]["arm"] == "treatment" for sl in shown)  # control sessions never show the flow's slates
    checked = 0
    for e in views:
        request = shown.get(e["slate_id"])
        if request is None:
            continue
        slate, start = slates[request], session_of[e["slate_id"]]
        # made for this user at an earlier session's start, and the view is its item at the view's rank
        assert slate["user_id"] == e["user_id"] and slate["ts"] < start["ts"] and request != start["session_id"]
        assert slate["slate"][e["position"] - 1]["item_id"] == e["item_id"], (e, slate)
        checked += 1
    treatment = [s for s in session_of.values() if s["arm"] == "treatment"]
    report = json.loads(report_path.read_text())["experiment"]["arms"]
    t = report["treatment"]
    assert t["refused"] == 0 and t["received"] >= len(shown)
    # every treatment session saw the flow's slate or popularity's, counted (the counts include sessions generated
    # past the run's end); a user's first session cannot have one yet
    assert t["sessions_shown_pipeline"] >= len(shown) >= len(treatment) / 10 and checked >= len(shown)
    assert t["sessions_shown_fallback"] >= len(treatment) - len(shown) > 0
    assert "sessions_shown_pipeline" not in report["control"]
