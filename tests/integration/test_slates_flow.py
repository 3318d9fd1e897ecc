"""Slates in the features flow on the real broker: live equals offline, replays, cold start,
purchases left out, recovery after a crash.

Both models are trained on a small generated history (DLRM and Two-Tower, a few seconds each);
the quality of the slates is not what is tested here (docs/retrieval.md measures it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from broker.console import read_topic
from events.partitioning import partition_for
from features.config import FeaturesConfig
from features.partition_stage import RawBatch
from models.retrieval_artifact import load_retrieval_artifact
from models.retrieval_data import load_table
from models.scorer import Scorer
from models.train import TrainConfig, train
from models.train_retrieval import RetrievalTrainConfig, train_retrieval
from slates.offline import offline_slates
from slates.ranker import SlateRanker
from tests.integration.flowtools import (
    REPO_ROOT,
    count,
    flow_env,
    produce_parts,
    run_features,
    start_features,
    stop,
    topic_set,
    wait_for,
)
from tests.integration.test_features_flow import committed_epoch

WORLD = ["--users", "600", "--items", "300", "--calibration-views", "5000"]
UNKNOWN = "u-no-profile"


def producer(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "producers.synthetic", "--progress-interval", "60", *WORLD, *args],
                   cwd=REPO_ROOT, check=True, capture_output=True)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A DLRM and a Two-Tower trained on 40 minutes of generated history; the stream to slate comes after it."""
    d = tmp_path_factory.mktemp("slates")
    producer("--backfill", "--rate", "40", "--duration", "2400", "--start", "2026-01-01T00:00:00Z", "--sink", "jsonl",
             "--out", str(d / "history.jsonl"), "--seed", "5")
    run_features(dict(os.environ, MODEL_PATH="none"), "--backfill", "--input", str(d / "history.jsonl"),
                 "--output", "none", "--examples-out", str(d / "examples.jsonl"))
    train(TrainConfig(examples=str(d / "examples.jsonl"), out=str(d / "dlrm.pt"), epochs=1, patience=1),
          log=lambda *a, **k: None)
    train_retrieval(RetrievalTrainConfig(examples=str(d / "examples.jsonl"), users=str(d / "history.users.jsonl"),
                                         items=str(d / "history.items.jsonl"), out=str(d / "two_tower.pt"), epochs=1,
                                         batch_size=256), log=lambda line: None)
    # the stream: 20 more minutes of the same world, and a user without a profile
    producer("--backfill", "--rate", "20", "--duration", "1200", "--start", "2026-01-01T00:40:00Z", "--sink",
             "jsonl", "--out", str(d / "stream.jsonl"), "--seed", "5", "--no-truth")
    original = (d / "stream.jsonl").read_bytes().splitlines()
    busiest = max(set(u := [orjson.loads(line)["user_id"] for line in original]), key=u.count)
    known = f'"user_id":"{busiest}"'.encode()
    lines = []
    for line in original:
        lines.append(line)
        if known + b"," in line:  # the same events again, from a user the profiles do not know
            lines.append(line.replace(known, f'"user_id":"{UNKNOWN}"'.encode())
                         .replace(b'"event_id":"', b'"event_id":"x').replace(b'"session_id":"', b'"session_id":"x'))
    (d / "stream.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return {"dir": d, "dlrm": d / "dlrm.pt", "two_tower": d / "two_tower.pt", "stream": d / "stream.jsonl",
            "users": d / "stream.users.jsonl"}


def partitions_of(path: Path, n: int = 4) -> list[list[bytes]]:
    """The file's events split by user as the producer's partitioner would place them."""
    parts: list[list[bytes]] = [[] for _ in range(n)]
    for line in path.read_bytes().splitlines():
        parts[partition_for(orjson.loads(line)["user_id"].encode(), n)].append(line)
    return parts


def publish_users(bootstrap: str, topic: str, users: Path) -> None:
    producer_ = Producer({"bootstrap.servers": bootstrap})
    for line in users.read_bytes().splitlines():
        producer_.produce(topic, line, orjson.loads(line)["user_id"].encode())
    assert producer_.flush(30) == 0


@pytest.fixture(scope="module")
def expected(models) -> set[bytes]:
    """The stream's slates computed offline, from the same stages and artifacts."""
    config = FeaturesConfig()
    parts = partitions_of(models["stream"])
    batches = [RawBatch("t", p, list(range(i, i + len(v[i:i + 300]))), v[i:i + 300], wall_ms=1_800_000_000_000)
               for p, v in enumerate(parts) for i in range(0, len(v), 300)]
    scorer = Scorer.load(models["dlrm"], config.spec)
    ranker = SlateRanker(load_retrieval_artifact(models["two_tower"]), scorer.score, scorer.version,
                         load_table(str(models["users"]), "users"))
    return {value for _, _, value in offline_slates(config, batches, 4, ranker, 10)}


def slate_env(kafka_env, topics, models) -> dict[str, str]:
    env = flow_env(kafka_env, topics)
    env.update(MODEL_PATH=str(models["dlrm"]), RETRIEVER_PATH=str(models["two_tower"]),
               TOPIC_USERS=topics["users"], TOPIC_RECOMMENDATIONS=topics["recommendations"])
    return env


def slate_topics(make_topics) -> dict[str, str]:
    topics = topic_set(make_topics)
    users, recommendations, requests = make_topics("users", "recommendations", "requests", partitions=4)
    return {**topics, "users": users, "recommendations": recommendations, "requests": requests}


def produce_requests(bootstrap: str, topic: str, requests: list[tuple[str, bytes]]) -> None:
    """Requests keyed by user, in the partition of the user's events."""
    producer_ = Producer({"bootstrap.servers": bootstrap})
    for user, value in requests:
        producer_.produce(topic, value, user.encode(), partition=partition_for(user.encode(), 4))
    assert producer_.flush(30) == 0


def test_live_slates_equal_the_offline_ones_and_a_replay_writes_the_same(models, expected, kafka_bootstrap, kafka_env,
                                                                       make_topics, tmp_path):
    topics = slate_topics(make_topics)
    publish_users(kafka_bootstrap, topics["users"], models["users"])
    produce_parts(kafka_bootstrap, topics["interactions"], partitions_of(models["stream"]))
    env = slate_env(kafka_env, topics, models)
    live = start_features(env, "--idle-timeout-s", "1", log=tmp_path / "live.log")
    try:
        wait_for(lambda: count(kafka_bootstrap, topics["recommendations"]) >= len(expected), 120,
                 f"{len(expected)} slates from the live flow")
        written = [r.value for r in read_topic(kafka_bootstrap, topics["recommendations"])]
        # explicit requests to the running flow, once it has read every event: answered, or refused with a reason
        known = min(v["user_id"] for s in expected if not (v := orjson.loads(s))["cold_start"])
        ts = max(orjson.loads(v)["ts"] for v in expected)
        good = {"schema_version": 1, "request_id": "r-known", "user_id": known, "ts": ts, "k": 5,
                "context": {"device": "desktop"}}
        produce_requests(kafka_bootstrap, topics["requests"], [
            (known, orjson.dumps(good)),
            (UNKNOWN + "2", orjson.dumps({**good, "request_id": "r-new", "user_id": UNKNOWN + "2"})),
            (known, orjson.dumps({**good, "request_id": "r-zero", "k": 0})),
            (known, orjson.dumps({**good, "request_id": "r-huge", "k": 10**6})),
            (known, b'{"request_id": '), (known, orjson.dumps({**good, "ts": "yesterday"}))])

        def answered() -> dict[str, dict]:
            return {v["request_id"]: v for r in read_topic(kafka_bootstrap, topics["recommendations"])
                    if (v := orjson.loads(r.value))["source"] == "request"}

        wait_for(lambda: len(answered()) == 2 and count(kafka_bootstrap, topics["dead_letters"]) >= 4,
                 60, "two slates and four refusals")
    finally:
        assert stop(live, signal.SIGINT) == 0, (tmp_path / "live.log").read_text()[-2000:]
    assert set(written) == expected and len(written) == len(expected)
    cold = sum(orjson.loads(v)["cold_start"] for v in expected) + 1  # and r-new
    assert f"{len(expected) + 2:,} slates ({cold:,} cold start)" in (tmp_path / "live.log").read_text().splitlines()[-1]
    slates = answered()
    assert slates.keys() == {"r-known", "r-new"}
    assert len(slates["r-known"]["slate"]) == 5 and not slates["r-known"]["cold_start"]
    newest = max(e["ts"] for line in models["stream"].read_bytes().splitlines()
                 if (e := orjson.loads(line))["user_id"] == known)
    assert slates["r-known"]["features_as_of"] == newest  # the user's counts as of its newest event
    assert slates["r-new"]["cold_start"] and len(slates["r-new"]["slate"]) == 5
    refused = [orjson.loads(r.value) for r in read_topic(kafka_bootstrap, topics["dead_letters"])]
    refused = [d for d in refused if d["stage"] == "slate_request"]
    assert sorted(d["reason"] for d in refused) == ["k_out_of_range", "k_out_of_range", "schema", "unparseable"]
    assert all(d["source"]["topic"] == topics["requests"] for d in refused)

    # a replay (a backfill of the same topic into a fresh output topic) writes the same bytes
    again = make_topics("recommendations-again")[0]
    run_features({**env, "TOPIC_RECOMMENDATIONS": again}, "--backfill", "--examples-out", "none")
    # (answers to explicit requests depend on how far the events were read when they came: left out)
    replayed = [v for r in read_topic(kafka_bootstrap, again) if orjson.loads(v := r.value)["source"] == "session_start"]
    assert sorted(replayed) == sorted(written), _debug_diff(replayed, written)


def test_cold_start_and_purchases(models, expected):
    slates = [orjson.loads(v) for v in expected]
    cold = [s for s in slates if s["user_id"] == UNKNOWN]
    assert cold and all(s["cold_start"] for s in cold) and not any(s["cold_start"] for s in slates if s not in cold)
    assert all(len(s["slate"]) == 10 and s["slate"][0]["score"] is None for s in cold)  # popularity, no model score
    warm = [s for s in slates if not s["cold_start"]]
    assert all(len(s["slate"]) == 10 and [x["rank"] for x in s["slate"]] == list(range(1, 11)) for s in warm)
    assert all(s["slate"][0]["score"] >= s["slate"][-1]["score"] for s in warm)  # ranked by the DLRM
    # no slate holds an item its user bought in the 24 h before it (from the log, independently)
    bought: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for line in models["stream"].read_bytes().splitlines():
        e = orjson.loads(line)
        if e["event_type"] == "purchase":
            bought[e["user_id"]].append((e["ts"], e["item_id"]))
    checked = 0
    for s in slates:
        recent = {item for ts, item in bought[s["user_id"]] if s["ts"] - 86_400_000 < ts < s["ts"]}
        assert not recent & {x["item_id"] for x in s["slate"]}, s["request_id"]
        checked += bool(recent)
    assert checked > 5  # the rule had something to leave out


def test_a_crashed_flow_resumed_from_its_snapshot_writes_the_same_slates(models, expected, kafka_bootstrap,
                                                                         kafka_env, make_topics, tmp_path):
    topics = slate_topics(make_topics)
    publish_users(kafka_bootstrap, topics["users"], models["users"])
    parts = partitions_of(models["stream"])
    produce_parts(kafka_bootstrap, topics["interactions"], [p[: len(p) // 2] for p in parts])
    env = slate_env(kafka_env, topics, models)
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True)
    resume = ("-r", str(recovery), "-s", "1", "-b", "30", "--idle-timeout-s", "3600")
    first = start_features(env, *resume, log=tmp_path / "first.log")
    wait_for(lambda: first.poll() is not None or (committed_epoch(recovery) >= 2
                                                  and count(kafka_bootstrap, topics["recommendations"]) > 0),
             120, "a committed snapshot and the first slates")
    assert first.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
    stop(first, signal.SIGKILL)
    produce_parts(kafka_bootstrap, topics["interactions"], [p[len(p) // 2:] for p in parts])
    run_features(env, "--backfill", "--examples-out", "none", *resume)
    written = [r.value for r in read_topic(kafka_bootstrap, topics["recommendations"])]
    assert set(written) == expected, _debug_diff(written, expected)  # replayed slates: byte-identical duplicates


def _debug_diff(written, expected):
    w = {orjson.loads(v)["request_id"]: orjson.loads(v) for v in written}
    e = {orjson.loads(v)["request_id"]: orjson.loads(v) for v in expected}
    extra = [k for k in w if k not in e]
    changed = [k for k in w if k in e and w[k] != e[k]]
    detail = [(k, {f: (w[k][f], e[k][f]) for f in w[k] if f != "slate" and w[k][f] != e[k][f]},
               [(a, b) for a, b in zip(w[k]["slate"], e[k]["slate"]) if a != b][:2]) for k in changed[:3]]
    return f"{len(extra)} extra ids, {len(changed)} changed of {len(w)} / {len(e)}: {detail}"
