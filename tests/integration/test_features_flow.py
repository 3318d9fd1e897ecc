"""The features flow on the real embedded broker: live vs backfill, accounting, recovery, workers."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

import orjson
import pytest

from broker.console import read_topic
from broker.embedded import free_port
from features.records import original_payload
from tests.eventlog import make_log, write_jsonl
from tests.integration.flowtools import (
    count,
    flow_env,
    outputs_by_key,
    produce_parts,
    raw_counts,
    run_features,
    start_features,
    stop,
    topic_set,
    wait_for,
)

NOW_MS = time.time_ns() // 1_000_000
T0 = NOW_MS - 86_400_000  # a day ago: logs of a few thousand events end well before now
FUTURE = NOW_MS + 10 * 86_400_000  # far-future faults: beyond the wall clock of any run


def views_by_id(rows):
    """A view's point-in-time inputs: counts, item cut, and the user's history (recent items, category counts)."""
    return {r["event_id"]: (r["counts"], r["item_as_of"], r["history"]) for r in rows if r["event_type"] == "view"}


def read_examples(path):
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f]


def test_live_vectors_equal_backfill_and_every_input_is_accounted_for(kafka_bootstrap, kafka_env, make_topics, tmp_path):
    topics = topic_set(make_topics)
    parts = make_log(11, n=2500, partitions=4, t0=T0, users=40, items=15, shared_clock=True, sync_end=True,
                     future_ts=FUTURE)
    n_in = produce_parts(kafka_bootstrap, topics["interactions"], parts)
    env = flow_env(kafka_env, topics)

    live = start_features(env, "--event-features-topic", topics["event_features"], "--idle-timeout-s", "1",
                          log=tmp_path / "live.log")
    try:
        wait_for(lambda: count(kafka_bootstrap, topics["event_features"]) + count(kafka_bootstrap, topics["dead_letters"])
                 >= n_in, 90, "every input to be used or dead-lettered")
    finally:
        rc = stop(live, signal.SIGTERM)
    assert rc != -signal.SIGTERM, "SIGTERM must take the SIGINT path, not kill the flow outright"

    used = [orjson.loads(r.value) for r in read_topic(kafka_bootstrap, topics["event_features"])]
    dead = read_topic(kafka_bootstrap, topics["dead_letters"])
    assert len(used) + len(dead) == n_in
    assert len({u["event_id"] for u in used}) == len(used)

    # Each dead letter carries the exact input bytes of the record it names.
    produced = {(p, offset): value for p, values in enumerate(parts) for offset, value in enumerate(values)}
    reasons = set()
    for r in dead:
        v = orjson.loads(r.value)
        reasons.add(v["reason"])
        src = v["source"]
        assert src["topic"] == topics["interactions"]
        assert original_payload(r.value) == produced[(src["partition"], src["offset"])]
    assert {"unparseable", "schema", "duplicate", "late", "ts_out_of_range"} <= reasons

    examples = tmp_path / "examples.jsonl"
    run_features(env, "--backfill", "--output", "none", "--examples-out", str(examples))
    backfill = views_by_id(read_examples(examples))
    live_views = views_by_id(used)
    assert live_views.keys() == backfill.keys()
    assert live_views == backfill  # the live vector and history of every view equal the backfill's, bit for bit
    assert sum(any(c) for c, _, _ in live_views.values()) > len(live_views) // 2  # and they are not all zeros
    assert sum(len(h["recent_items"]) >= 2 for _, _, h in live_views.values()) > len(live_views) // 2


def test_jsonl_backfill_equals_topic_backfill(kafka_bootstrap, kafka_env, make_topics, tmp_path):
    topics = topic_set(make_topics)
    parts = make_log(12, n=2000, partitions=4, t0=T0, users=30, kafka_placement=True, future_ts=FUTURE)
    produce_parts(kafka_bootstrap, topics["interactions"], parts)
    # The file holds the same events in an order that keeps each partition's order.
    merged = [v for i in range(max(map(len, parts))) for part in parts for v in part[i : i + 1]]
    source = write_jsonl(tmp_path / "history.jsonl", merged)
    env = flow_env(kafka_env, topics)
    run_features(env, "--backfill", "--output", "none", "--examples-out", str(tmp_path / "from_topic.jsonl"))
    run_features(env, "--backfill", "--input", str(source), "--output", "none",
                 "--examples-out", str(tmp_path / "from_file.jsonl"))
    from_topic = read_examples(tmp_path / "from_topic.jsonl")
    from_file = read_examples(tmp_path / "from_file.jsonl")
    assert len(from_topic) > 100
    key = lambda r: r["event_id"]  # noqa: E731
    assert sorted(from_topic, key=key) == sorted(from_file, key=key)
    labelled = sum(r["labels"]["click"] for r in from_topic)
    assert 0 < labelled < len(from_topic)


def test_crash_and_recovery_give_the_same_outputs(kafka_bootstrap, kafka_env, make_topics, tmp_path):
    # 60k events ~23 s apart on average (idle stretches included) span ~16 days: start 20 back.
    parts = make_log(13, n=60_000, partitions=4, t0=NOW_MS - 20 * 86_400_000, users=1500, items=300,
                     shared_clock=True, future_ts=FUTURE)
    same = ("--idle-timeout-s", "3600")  # no wall-clock watermark moves while the test waits
    base = topic_set(make_topics)
    produce_parts(kafka_bootstrap, base["interactions"], parts)
    run_features(flow_env(kafka_env, base), "--backfill", "--examples-out", str(tmp_path / "a.jsonl"), *same)
    expected = outputs_by_key(kafka_bootstrap, base)

    # The crashed run tails the topic; once it has written outputs and committed a snapshot
    # it is killed with SIGKILL (no clean shutdown). The rest of the input arrives, and the
    # flow restarts from the same recovery directory and reads to the end.
    crashed = topic_set(make_topics)
    env = flow_env(kafka_env, crashed)
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True)
    resume = ("-r", str(recovery), "-s", "1", "-b", "30", *same)
    log = tmp_path / "first.log"
    first = start_features(env, "--examples-out", str(tmp_path / "ignored.jsonl"), *resume, log=log)
    half = [p[: len(p) // 2] for p in parts]
    produce_parts(kafka_bootstrap, crashed["interactions"], half)
    wait_for(lambda: first.poll() is not None or (committed_epoch(recovery) >= 2
                                                  and count(kafka_bootstrap, crashed["user_features"]) > 0),
             120, "a committed snapshot and the first outputs")
    assert first.poll() is None, log.read_text()[-2000:]
    stop(first, signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL
    partial = sum(raw_counts(kafka_bootstrap, crashed).values())
    produce_parts(kafka_bootstrap, crashed["interactions"], [p[len(p) // 2 :] for p in parts])
    run_features(env, "--backfill", "--examples-out", str(tmp_path / "b.jsonl"), *resume)
    got = outputs_by_key(kafka_bootstrap, crashed)
    for name, by_key in expected.items():
        assert got[name].keys() == by_key.keys(), name
        for key, values in got[name].items():
            assert values == by_key[key], (name, key)  # duplicates, if any, are byte-identical
    assert len(expected["user_features"]) > 1000 and len(expected["dead_letters"]) > 100
    # The kill came mid-stream: some, not all, of the records had been written. Whatever the
    # restart replayed from its last snapshot (at-least-once) is byte-identical (checked above).
    assert 0 < partial < sum(len(v) for v in expected.values())


def committed_epoch(recovery) -> int:
    """The newest epoch the flow's recovery store has committed (0: none yet)."""
    with closing(sqlite3.connect(recovery / "part-0.sqlite3")) as db:
        return db.execute("SELECT max(commit_epoch) FROM commits").fetchone()[0] or 0


@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_two_workers_give_the_same_outputs_as_one(mode, kafka_bootstrap, kafka_env, make_topics, tmp_path):
    parts = make_log(14, n=6000, partitions=4, t0=T0, users=200, items=40, future_ts=FUTURE)
    one = topic_set(make_topics)
    produce_parts(kafka_bootstrap, one["interactions"], parts)
    run_features(flow_env(kafka_env, one), "--backfill", "--examples-out", str(tmp_path / "one.jsonl"))
    expected = outputs_by_key(kafka_bootstrap, one)

    two = topic_set(make_topics)
    produce_parts(kafka_bootstrap, two["interactions"], parts)
    env = flow_env(kafka_env, two)
    if mode == "threads":
        run_features(env, "--backfill", "--examples-out", str(tmp_path / "two.jsonl"), "-w", "2")
    else:
        addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
        procs = [start_features(env, "--backfill", "--examples-out", str(tmp_path / "two.jsonl"), "-i", str(i),
                                "-a", addresses, log=tmp_path / f"p{i}.log") for i in range(2)]
        for p in procs:
            assert p.wait(180) == 0, (tmp_path / f"p{procs.index(p)}.log").read_text()[-3000:]
        # Scale-out as designed: each process reads and validates its own input partitions
        # (nothing crosses before the item stage) and owns half of the item shards.
        done = [re.search(r"done: ([\d,]+) records .*?([\d,]+) vectors", (tmp_path / f"p{i}.log").read_text())
                for i in range(2)]
        records = [int(m.group(1).replace(",", "")) for m in done]
        vectors = [int(m.group(2).replace(",", "")) for m in done]
        assert sum(records) == sum(map(len, parts)) and min(records) > 0, records
        assert min(vectors) > 0.3 * sum(vectors), vectors
    assert outputs_by_key(kafka_bootstrap, two) == expected
    key = lambda r: r["event_id"]  # noqa: E731
    assert sorted(read_examples(tmp_path / "two.jsonl"), key=key) == sorted(read_examples(tmp_path / "one.jsonl"), key=key)
