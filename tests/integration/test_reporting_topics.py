"""The exploration and the slates summary read from real topics on the test broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from confluent_kafka import Producer

from tests.report_fixtures import REPO, generated_history, slate_lines

#: what differs between two explorations of the same events read from different places
NOT_DATA = ("config", "source", "seconds", "written_at", "plots", "refused", "refused_examples", "skipped_other_runs")


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for value in values:
        key = orjson.loads(value)["user_id"].encode() if value.startswith(b"{\"") else None
        producer.produce(topic, value, key)
        producer.poll(0)
    assert producer.flush(30) == 0


def run(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120, check=False)


def test_explore_a_topic_equals_exploring_the_file(kafka_bootstrap: str, kafka_env: dict[str, str], make_topics,
                                                   tmp_path: Path) -> None:
    (topic,) = make_topics("interactions")
    history = generated_history(tmp_path / "history.jsonl", count=3000)
    lines = history.read_bytes().splitlines()
    other_run = orjson.loads(lines[0]) | {"event_id": "feedbeef-1"}
    produce(kafka_bootstrap, topic, [*lines, b"not json", orjson.dumps(other_run)])
    tag = orjson.loads(lines[0])["event_id"].rsplit("-", 1)[0]
    done = run("reporting.explore", "--input", f"topic:{topic}", "--run-tag", tag, "--generator-seed", "7",
               "--out", str(tmp_path / "topic"), env=kafka_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"explore: reading topic {topic}")
    done = run("reporting.explore", "--input", str(history), "--generator-seed", "7", "--out", str(tmp_path / "file"),
               env=kafka_env)
    assert done.returncode == 0, done.stderr
    from_topic, from_file = (orjson.loads((tmp_path / d / "summary.json").read_bytes()) for d in ("topic", "file"))
    assert from_topic["refused"] == {"unparseable": 1} and from_topic["skipped_other_runs"] == 1
    assert {k: v for k, v in from_topic.items() if k not in NOT_DATA} == \
        {k: v for k, v in from_file.items() if k not in NOT_DATA}
    assert from_topic["plots"] == from_file["plots"]


def test_slates_summary_from_the_topic(kafka_bootstrap: str, kafka_env: dict[str, str], make_topics,
                                       tmp_path: Path) -> None:
    (topic,) = make_topics("recommendations")
    slates = slate_lines(6)
    produce(kafka_bootstrap, topic, [*slates, b"{oops"])
    out = tmp_path / "slates.json"
    done = run("reporting.slates", "--input", f"topic:{topic}", "--out", str(out), env=kafka_env)
    assert done.returncode == 0, done.stderr
    s = orjson.loads(out.read_bytes())
    records = [orjson.loads(v) for v in slates]
    assert (s["slates"], s["refused"], s["cold_start"]) == (6, 1, 1)
    assert s["users"] == len({r["user_id"] for r in records})
    assert s["distinct_items"] == len({i["item_id"] for r in records for i in r["slate"]})
    assert s["sources"] == {"session_start": 6} and len(s["examples"]) == 5


def test_a_missing_topic_is_one_line(kafka_env: dict[str, str], tmp_path: Path) -> None:
    for module in ("reporting.explore", "reporting.slates"):
        done = run(module, "--input", "topic:no-such-topic-here", "--out", str(tmp_path / module), env=kafka_env)
        assert done.returncode == 2
        assert done.stderr.strip().splitlines()[-1].endswith("topic 'no-such-topic-here' does not exist on the broker")
        assert len(done.stderr.strip().splitlines()) == 1
