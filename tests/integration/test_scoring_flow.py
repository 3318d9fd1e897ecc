"""DLRM scoring inside the features flow, on real generated data and the real broker.

A model is trained on the backfill of a generated history (producer -> JSONL -> features
backfill -> models.train); the live flow then scores a stream read from Kafka, and every
score must equal the model applied to that event's backfill vector.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from broker.console import read_topic
from features.config import FeaturesConfig
from models.artifact import load_artifact, save_artifact
from models.scorer import Scorer
from models.train import TrainConfig, train
from tests.eventlog import write_jsonl
from tests.integration.flowtools import (
    REPO_ROOT,
    count,
    flow_env,
    run_features,
    start_features,
    stop,
    topic_set,
    wait_for,
)

SPEC = FeaturesConfig().spec


def producer(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "-m", "producers.synthetic", "--progress-interval", "60", *args],
                   cwd=REPO_ROOT, env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A DLRM trained on the real backfill of 40 minutes of generated history."""
    d = tmp_path_factory.mktemp("model")
    producer("--backfill", "--rate", "100", "--duration", "2400", "--start", "2026-01-01T00:00:00Z",
             "--sink", "jsonl", "--out", str(d / "history.jsonl"), "--truth-out", str(d / "truth.jsonl"), "--seed", "3")
    run_features(dict(os.environ, MODEL_PATH="none"), "--backfill", "--input", str(d / "history.jsonl"),
                 "--output", "none", "--examples-out", str(d / "examples.jsonl"))
    artifact = train(TrainConfig(examples=str(d / "examples.jsonl"), out=str(d / "dlrm.pt"), epochs=2, patience=1),
                     log=lambda *a, **k: None)
    assert artifact.metrics  # it trained and validated
    return {"dir": d, "model": d / "dlrm.pt", "examples": d / "examples.jsonl"}


def test_trained_model_learns_the_generated_signal(trained):
    metrics = load_artifact(trained["model"], SPEC).metrics
    assert metrics["val_auc"] > 0.75  # the generator's click signal is learnable (oracle ~0.86)


def test_live_scores_equal_the_model_on_backfill_vectors(trained, kafka_bootstrap, kafka_env, make_topics, tmp_path):
    topics = topic_set(make_topics)
    env = flow_env(kafka_env, topics)
    env["MODEL_PATH"] = str(trained["model"])
    producer("--backfill", "--rate", "100", "--duration", "600", "--start", "2026-01-01T00:40:00Z", "--seed", "4",
             "--topic", topics["interactions"], "--truth-topic", topics["truth"], env=env)
    views = sum(orjson.loads(r.value)["event_type"] == "view" for r in read_topic(kafka_bootstrap, topics["interactions"]))

    live = start_features(env, "--idle-timeout-s", "1", log=tmp_path / "live.log")
    try:
        wait_for(lambda: count(kafka_bootstrap, topics["scores"]) >= 0.9 * views, 120, "most views to be scored")
    finally:
        stop(live, signal.SIGINT)
    log = (tmp_path / "live.log").read_text()
    assert "scoring views with model" in log
    scores = {orjson.loads(r.value)["event_id"]: orjson.loads(r.value) for r in read_topic(kafka_bootstrap, topics["scores"])}
    assert len(scores) >= 0.9 * views

    examples = tmp_path / "examples.jsonl"
    run_features({**env, "MODEL_PATH": "none"}, "--backfill", "--output", "none", "--examples-out", str(examples))
    rows = [orjson.loads(line) for line in examples.read_bytes().splitlines()]
    rows = [r for r in rows if r["event_id"] in scores]
    assert len(rows) == len(scores)
    scorer = Scorer.load(trained["model"], SPEC)
    expected = scorer.score(
        np.array([r["counts"] for r in rows], dtype=np.uint32),
        [r["user_id"] for r in rows], [r["item_id"] for r in rows], [r["category"] for r in rows],
        [r["country"] for r in rows], [r["device"] for r in rows],
        np.array([r["ts"] for r in rows], dtype=np.int64), np.array([r["price"] for r in rows]),
    )
    for row, p in zip(rows, expected.tolist()):
        record = scores[row["event_id"]]
        assert record["score"] == p  # bit for bit: same vector, same model, same arithmetic
        assert record["model_version"] == scorer.version
        assert record["features_as_of"] == row["ts"] and record["item_features_as_of"] == row["item_as_of"]
    assert min(expected) > 0.0 and max(expected) < 1.0 and np.std(expected) > 0.01


@pytest.fixture(scope="module")
def tiny_input(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny")
    producer("--backfill", "--count", "2000", "--sink", "jsonl", "--out", str(d / "tiny.jsonl"), "--no-truth")
    return d / "tiny.jsonl"


def _flow_with_model(model: str, tiny_input: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MODEL_PATH=model)
    return subprocess.run(
        [sys.executable, "-m", "dataflows.features", "--backfill", "--input", str(tiny_input), "--output", "none",
         "--examples-out", str(tmp_path / "ex.jsonl")],
        cwd=REPO_ROOT, env=env, capture_output=True, check=False, text=True, timeout=120,
    )


def test_without_a_model_the_flow_says_so_once_and_runs_features_only(tiny_input, tmp_path):
    done = _flow_with_model(str(tmp_path / "missing.pt"), tiny_input, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("running features-only") == 1
    assert "python -m models.train" in done.stderr
    assert "0 scores" in done.stderr and (tmp_path / "ex.jsonl").stat().st_size > 0


def test_a_mismatched_model_fails_at_start_naming_the_difference(trained, tiny_input, tmp_path):
    artifact = load_artifact(trained["model"])
    other = dataclasses.replace(artifact, spec=dataclasses.replace(artifact.spec, window_ms=30_000))
    save_artifact(other, tmp_path / "other.pt")
    done = _flow_with_model(str(tmp_path / "other.pt"), tiny_input, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("python -m dataflows.features: error: model artifact")
    assert "window_ms: 30000 != 60000" in done.stderr
    assert not (tmp_path / "ex.jsonl").exists()  # it failed before processing anything


def test_a_corrupt_model_fails_at_start(tiny_input, tmp_path):
    write_jsonl(tmp_path / "garbage.pt", [b"not a model"])
    done = _flow_with_model(str(tmp_path / "garbage.pt"), tiny_input, tmp_path)
    assert done.returncode == 2
    assert "error: model artifact" in done.stderr and "not readable" in done.stderr
