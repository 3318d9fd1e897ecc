"""The producer's experiment mode: served events of version 2, their truth, the flags, the flow, the analysis."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from events.partitioning import partition_for
from events.schema import EXPERIMENT_FIELDS, FIELDS, SCHEMA_VERSION, SERVED_SCHEMA_VERSION, Interaction, check, decode
from experiments.analyze import main as analyze_main
from features.config import FeaturesConfig
from features.local import run_local
from features.partition_stage import RawBatch
from producers.synthetic.__main__ import main

SMALL = ["--users", "600", "--items", "200", "--calibration-views", "5000", "--progress-interval", "0"]
RUN = ["--backfill", "--rate", "40", "--duration", "1800", "--start", "2026-01-05T12:00:00Z", *SMALL]
EXPERIMENT = ["--experiment", "home", "--arms", "control=popularity,treatment=random", "--served-share", "0.6",
              "--warmup-events", "5000"]


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], list[dict]]:
    out = tmp_path_factory.mktemp("exp") / "ev.jsonl"
    assert main([*RUN, "--sink", "jsonl", "--out", str(out), *EXPERIMENT]) == 0
    events = [orjson.loads(v) for v in out.read_bytes().splitlines()]
    truth = [orjson.loads(v) for v in out.with_name("ev.truth.jsonl").read_bytes().splitlines()]
    return out, events, truth


def test_served_sessions_write_version_2_and_the_others_version_1(produced):
    _, events, _ = produced
    served = [e for e in events if e["schema_version"] == SERVED_SCHEMA_VERSION]
    organic = [e for e in events if e["schema_version"] == SCHEMA_VERSION]
    assert len(served) + len(organic) == len(events) and served and organic
    assert all(list(e) == list(FIELDS + EXPERIMENT_FIELDS) for e in served)
    assert all(list(e) == list(FIELDS) for e in organic)
    assert all(check(e) is None for e in events)
    assert all(Interaction.from_dict(e).to_json() == orjson.dumps(e) for e in served[:200])
    assert {e["experiment"] for e in served} == {"home"} and {e["arm"] for e in served} == {"control", "treatment"}
    # a session is served or not as a whole; its follow-ups carry the position of their view
    by_session: dict[str, set[int]] = {}
    for e in events:
        by_session.setdefault(e["session_id"], set()).add(e["schema_version"])
    assert all(len(v) == 1 for v in by_session.values())
    position = {e["event_id"]: e["position"] for e in served if e["event_type"] == "view"}
    assert all(e["position"] == position[e["view_id"]] for e in served if e["event_type"] != "view" and e["view_id"] in position)
    # a user stays in one arm; about 60% of the enrolled users' sessions are served
    arms: dict[str, set[str]] = {}
    for e in served:
        arms.setdefault(e["user_id"], set()).add(e["arm"])
    assert all(len(a) == 1 for a in arms.values())
    sessions = {e["session_id"]: e["schema_version"] == 2 for e in events if e["event_type"] == "view"}
    assert np.mean(list(sessions.values())) == pytest.approx(0.6, abs=0.05)


def test_the_truth_records_each_served_views_probability_and_each_slates_outcomes(produced):
    _, events, truth = produced
    served_views = {e["event_id"]: e for e in events if e["schema_version"] == 2 and e["event_type"] == "view"}
    records = {t["event_id"]: t for t in truth if t["kind"] == "view"}
    assert served_views.keys() <= records.keys()
    for event_id, e in served_views.items():
        t = records[event_id]
        assert (t["choice"], t["experiment"], t["arm"], t["slate_id"], t["position"]) == (
            "slate", "home", e["arm"], e["slate_id"], e["position"])
        assert 0 < t["p_click"] < 1
    with_outcomes = [t for t in records.values() if "slate" in t]
    assert len(with_outcomes) == len({e["slate_id"] for e in served_views.values()})  # one per slate
    assert all(set(t["slate"]["expected_clicks"]) == {"control", "treatment"} for t in with_outcomes)


def test_the_flow_accepts_versions_1_and_2_alike(produced):
    """Every event is accepted, and the windows equal those of the same stream written as version 1."""
    _, events, _ = produced
    as_v1 = [{**{f: e[f] for f in FIELDS}, "schema_version": 1} for e in events]

    def run(stream: list[dict]) -> list[tuple]:
        by_partition: dict[int, list[bytes]] = {0: [], 1: []}
        for e in stream:
            by_partition[partition_for(e["user_id"].encode(), 2)].append(orjson.dumps(e))
        wall = max(e["ts"] for e in stream) + 60_000
        batches = [RawBatch("f", p, list(range(len(v))), list(v), wall_ms=wall, eof=True) for p, v in by_partition.items()]
        out = run_local(FeaturesConfig(item_shards=2), batches, partitions=2)
        assert [r for r in out.records if r[0] == "dead_letters"] == []
        return sorted(r for r in out.records if r[0] != "metrics")

    assert run(events) == run(as_v1)
    assert decode(orjson.dumps({**events[0], "schema_version": 3}))[1].reason == "unsupported_schema_version"


def test_analyze_reads_the_producers_files(produced, tmp_path, capsys):
    out, _, _ = produced
    argv = ["--experiment", "home", "--events", str(out), "--truth", str(out.with_name("ev.truth.jsonl")),
            "--out", str(tmp_path), "--looks", "5"]
    assert analyze_main(argv) == 0
    report = json.loads((tmp_path / "home.json").read_text())
    (comp,) = report["comparisons"]
    assert [a["arm"] for a in report["arms"]] == ["control", "treatment"]
    assert comp["true_lift"]["absolute"] < 0 and comp["ctr"]["user_level"]["p"] < 0.05
    for name in ("home.txt", "home_ctr.png", "home_lift.png", "home_pvalue.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "verdict:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--experiment", "x", "--arms", "control=popularity"], "--arms needs at least two arms"),
        (["--experiment", "x", "--arms", "a=popularity,b=magic"], "unknown policy 'magic'"),
        (["--experiment", "x", "--served-share", "0"], "--served-share must be in (0, 1]"),
        (["--experiment", "x", "--slate-k", "0"], "--slate-k must be between 1 and 100"),
        (["--experiment", "bad name"], "--experiment must be 1-64 letters"),
        (["--served-share", "0.5"], "--served-share need --experiment NAME"),
        (["--experiment", "x", "--arms", "a=two-tower,b=random", "--retriever", "no/such/two_tower.pt"],
         "policy 'two-tower' needs a retriever artifact"),
        (["--experiment", "x", "--arms", "a=popularity,b=two-tower-dlrm"], "run it as the 'pipeline' policy"),
    ],
)
def test_bad_experiment_flags_are_one_line_and_exit_code_2(args, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        sys.exit(main([*RUN, "--sink", "stdout", "--count", "1", "--warmup-events", "0", *args]
                      if "--experiment" in args else [*RUN, "--sink", "stdout", "--count", "1", *args]))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m producers.synthetic: error: ") and needle in err, err


def test_analyze_refuses_bad_input_in_one_line(tmp_path, capsys):
    assert analyze_main(["--events", str(tmp_path / "none.jsonl")]) == 2
    assert "experiment (--experiment) must be a name" in capsys.readouterr().err
    (tmp_path / "e.jsonl").write_text('{"experiment": "other"}\nnot json\n')
    assert analyze_main(["--experiment", "home", "--events", str(tmp_path / "e.jsonl"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no events of experiment 'home'" in err


def test_analyze_counts_each_users_first_sessions_unless_told_otherwise(produced, tmp_path, capsys):
    out, events, _ = produced
    served = {e["session_id"] for e in events if e["schema_version"] == 2}
    reports = {}
    for cap in ("1", "0"):
        argv = ["--experiment", "home", "--events", str(out), "--out", str(tmp_path / cap), "--looks", "2",
                "--max-sessions-per-user", cap]
        assert analyze_main(argv) == 0
        reports[cap] = json.loads((tmp_path / cap / "home.json").read_text())["sessions"]
    assert reports["0"]["served"] == reports["0"]["counted"] == reports["1"]["served"] == len(served)
    users = {e["user_id"] for e in events if e["schema_version"] == 2}
    assert reports["1"]["counted"] == len(users) < len(served)
    assert "every served session" in capsys.readouterr().out
    assert analyze_main(["--experiment", "home", "--events", str(out), "--max-sessions-per-user", "-1"]) == 2
    assert "max_sessions_per_user" in capsys.readouterr().err


def test_analyze_counts_what_the_flow_accepts_duplicates_and_invalid_events_skipped(produced, tmp_path):
    out, events, _ = produced
    served = [e for e in events if e["schema_version"] == 2]
    noisy = tmp_path / "noisy.jsonl"
    extra = [*served[:300], *({**e, "event_id": e["event_id"] + "-bad", "position": "first"} for e in served[300:400]),
             *({**e, "event_id": e["event_id"] + "-v3", "schema_version": 3} for e in served[400:500])]
    noisy.write_bytes(out.read_bytes() + b"".join(orjson.dumps(e) + b"\n" for e in extra))
    arms = {}
    for name, path in (("clean", out), ("noisy", noisy)):
        argv = ["--experiment", "home", "--events", str(path), "--out", str(tmp_path / name), "--looks", "2"]
        assert analyze_main(argv) == 0
        report = json.loads((tmp_path / name / "home.json").read_text())
        arms[name] = [(a["users"], a["impressions"], a["clicks"]) for a in report["arms"]]
    assert arms["noisy"] == arms["clean"]
