"""The closed loop's producer side: treatment sessions show the slates found on the recommendations topic."""

from __future__ import annotations

import json

import orjson
from confluent_kafka import Producer

from broker.config import BOOTSTRAP_ENV
from producers.synthetic.__main__ import main

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
    arms = json.loads(report_path.read_text())["experiment"]["arms"]
    t = arms["treatment"]
    assert (t["policy"], t["received"], t["refused"], t["fallback"]) == ("pipeline", USERS, 2, 0)
    assert t["served_sessions"] == len({e["slate_id"] for e in treatment})
    # every served session gets every arm's slate (the others' are its potential outcomes)
    assert t["from_pipeline"] >= t["served_sessions"] + arms["control"]["served_sessions"]
