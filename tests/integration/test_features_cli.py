"""The flow's command lines: `python -m dataflows.features` errors, and `python -m bytewax.run`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import orjson
import pytest

from broker.console import read_topic
from broker.embedded import free_port
from tests.eventlog import make_log, write_jsonl
from tests.integration.flowtools import REPO_ROOT, count, flow_env, produce_parts, stop, topic_set, wait_for

NOW_MS = time.time_ns() // 1_000_000


def features(*args: str, env=None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dataflows.features", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, check=False, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window-s", "0"], "FlowConfig.window_s (--window-s) must be > 0, got 0.0"),
        (["--item-shards", "0"], "FlowConfig.item_shards (--item-shards) must be >= 1, got 0"),
        (["--backfill", "--input", "no/such/file.jsonl"], "--input 'no/such/file.jsonl': no such file"),
        (["--lateness-s", "10", "--item-delay-s", "6"], "item_delay_ms (6000) must be >= allowed_lateness_ms (10000)"),
        (["--window-s", "7"], "hop_ms (60000) must be a multiple of window_ms (7000)"),
        (["--output", "none"], "--output none only makes sense with --backfill"),
        (["-r", "recovery"], "-r needs -s (snapshot interval) and -b (backup interval)"),
    ],
)
def test_bad_settings_get_one_line_and_exit_2(args, message, kafka_env):
    done = features(*args, env=kafka_env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m dataflows.features: error: ") and message in lines[0], done.stderr


def test_unknown_flag_exits_2(kafka_env):
    done = features("--windw-s", "5", env=kafka_env)
    assert done.returncode == 2 and "unrecognized arguments: --windw-s" in done.stderr


def test_unreachable_broker_is_reported_within_seconds(kafka_env):
    env = {**kafka_env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    started = time.monotonic()
    done = features(env=env)
    assert time.monotonic() - started < 20
    assert done.returncode == 2
    assert done.stderr.strip().startswith("python -m dataflows.features: error: cannot reach the Kafka broker at 127.0.0.1:")


def test_help_explains_the_flags():
    done = features("--help")
    assert done.returncode == 0
    for flag in ("--backfill", "--examples-out", "--event-features-topic", "--window-s", "--lateness-s",
                 "--idle-timeout-s", "--recovery-directory", "KAFKA_BOOTSTRAP_SERVERS", "MODEL_PATH"):
        assert flag in done.stdout


def test_a_file_backfill_needs_no_broker(tmp_path):
    parts = make_log(21, n=500, partitions=1, t0=NOW_MS - 86_400_000, faults=False)
    source = write_jsonl(tmp_path / "in.jsonl", parts[0])
    env = {"PATH": "/usr/bin:/bin", "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "MODEL_PATH": "none"}
    done = features("--backfill", "--input", str(source), "--output", "none", "--examples-out",
                    str(tmp_path / "ex.jsonl"), env=env)
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "ex.jsonl").read_text().splitlines()) == sum(b'"view"' in v for v in parts[0])


def test_resuming_with_other_feature_settings_is_refused_in_one_line(tmp_path):
    parts = make_log(22, n=300, partitions=1, t0=NOW_MS - 86_400_000, faults=False)
    source = write_jsonl(tmp_path / "in.jsonl", parts[0])
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True)
    env = {"PATH": "/usr/bin:/bin", "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "MODEL_PATH": "none"}
    run = ("--backfill", "--input", str(source), "--output", "none", "--examples-out", str(tmp_path / "ex.jsonl"),
           "-r", str(recovery), "-s", "1", "-b", "10")
    assert features(*run, env=env).returncode == 0
    done = features(*run, "--window-s", "30", env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        ("python -m dataflows.features: error: the recovery state was written with other feature settings "
         "(window_ms); start with a fresh recovery directory (python -m bytewax.recovery DIR 1)")]
    assert features(*run, env=env).returncode == 0  # the same settings resume


def test_bytewax_run_with_the_module_flow_and_with_the_factory(kafka_bootstrap, kafka_env, make_topics, tmp_path):
    topics = topic_set(make_topics)
    parts = make_log(22, n=1500, partitions=4, t0=NOW_MS - 86_400_000, shared_clock=True, faults=False)
    n = produce_parts(kafka_bootstrap, topics["interactions"], parts)
    env = flow_env(kafka_env, topics)
    # The factory form, as a finite backfill: it ends by itself at the end of the topic.
    factory = f"dataflows.features:get_flow(backfill=True, examples_out={str(tmp_path / 'ex.jsonl')!r})"
    done = subprocess.run([sys.executable, "-m", "bytewax.run", factory], cwd=REPO_ROOT, env=env,
                          capture_output=True, check=False, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no model at" not in done.stderr  # MODEL_PATH=none means features only, not a file called "none"
    windows = count(kafka_bootstrap, topics["user_features"])
    item_windows = count(kafka_bootstrap, topics["item_features"])
    assert windows > 0 and item_windows > 0
    # The plain form from the README: live (tail), stopped with SIGTERM like a service manager would.
    live = subprocess.Popen([sys.executable, "-m", "bytewax.run", "dataflows.features"], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Counted beyond the backfill's own item windows: the live run must have written most of its own.
        wait_for(lambda: count(kafka_bootstrap, topics["item_features"]) >= item_windows + 2 * item_windows // 3, 60,
                 "the live flow to write item windows")
    finally:
        rc = stop(live, signal.SIGTERM)
    assert rc not in (-signal.SIGTERM, -signal.SIGKILL)  # SIGTERM took the orderly SIGINT path
    records = read_topic(kafka_bootstrap, topics["user_features"])
    values_by_key: dict[bytes, set[bytes]] = {}
    for r in records:
        values_by_key.setdefault(r.key, set()).add(r.value)
    assert len(records) > windows  # the live run wrote windows again ...
    assert len(values_by_key) == windows  # ... the same ones ...
    assert all(len(v) == 1 for v in values_by_key.values())  # ... byte for byte (idempotent upserts)
    assert all(orjson.loads(r.value)["views"] >= 0 for r in records) and n == sum(map(len, parts))
