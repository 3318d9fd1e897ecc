"""The producer as a process: an unreachable broker, the stdout sink without one, Ctrl-C."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import orjson

from broker.embedded import free_port
from events.schema import check
from tests.unit.test_producer_cli import SMALL

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def dead_broker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{free_port()}"  # nothing listens there
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_unreachable_broker_is_reported_within_seconds():
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "producers.synthetic", "--count", "10", *SMALL],
                         env=dead_broker_env(), capture_output=True, text=True, timeout=60, cwd=REPO,
                         check=False)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "cannot reach the Kafka broker at 127.0.0.1:" in out.stderr
    assert time.monotonic() - started < 20
    assert out.stdout == ""


def test_stdout_sink_needs_no_broker():
    out = subprocess.run([sys.executable, "-m", "producers.synthetic", "--sink", "stdout", "--count", "5"],
                         env=dead_broker_env(), capture_output=True, text=True, timeout=60, cwd=REPO,
                         check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 5
    assert all(check(orjson.loads(line)) is None for line in lines)
    assert "Dataset Statistics" in out.stderr  # humans' text stays off the event stream


def test_ctrl_c_flushes_and_reports_what_was_sent(tmp_path):
    out, report_path = tmp_path / "live.jsonl", tmp_path / "report.json"
    proc = subprocess.Popen([sys.executable, "-m", "producers.synthetic", "--rate", "2000", "--sink", "jsonl",
                             "--out", str(out), "--report", str(report_path), *SMALL, "--progress-interval", "0.2"],
                            env=dead_broker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert "events sent" in proc.stderr.readline()  # running, unbounded
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    report = json.loads(report_path.read_text())
    data = out.read_bytes()
    assert report["interrupted"] is True and report["events"] == data.count(b"\n") > 0
    assert report["checksum"] == hashlib.sha256(data).hexdigest()
    assert "Dataset Statistics" in stdout
