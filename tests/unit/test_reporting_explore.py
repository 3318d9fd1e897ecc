"""python -m reporting.explore: its numbers against a direct count of the same file, every input format."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

import reporting.stats as stats_module
from events.schema import EVENT_TYPE_INDEX, EVENT_TYPES
from reporting.explore import ExploreConfig, explore
from reporting.stats import ExploreStats
from tests.report_fixtures import REPO, T0, generated_history, otto_lines

QUIET = lambda line: None  # noqa: E731
#: what differs between two explorations of the same events read from different places
NOT_DATA = ("config", "source", "seconds", "written_at", "plots")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_history(tmp_path_factory.mktemp("explore") / "history.jsonl", count=5000)


@pytest.fixture(scope="module")
def summary(history: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("explore_out")
    return explore(ExploreConfig(input=str(history), generator_seed=7, out=str(out)), QUIET)


def data_part(s: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in s.items() if k not in NOT_DATA}


def test_the_numbers_equal_a_direct_count(history: Path, summary: dict[str, Any]) -> None:
    events = [orjson.loads(line) for line in history.read_bytes().splitlines()]
    assert summary["events"] == len(events) and summary["refused"] == {}
    types = Counter(e["event_type"] for e in events)
    assert summary["event_types"]["counts"] == {t: types[t] for t in EVENT_TYPES}
    users = Counter(e["user_id"] for e in events)
    items = Counter(e["item_id"] for e in events)
    assert (summary["users"], summary["items"]) == (len(users), len(items))
    per_user = np.sort(np.array(list(users.values())))[::-1]
    top_users = int(np.ceil(0.2 * len(per_user)))
    assert summary["user_rank"]["top_share"] == pytest.approx(per_user[:top_users].sum() / per_user.sum(), abs=1e-6)
    per_item = np.sort(np.array(list(items.values())))[::-1]
    top_items = int(np.ceil(0.1 * len(per_item)))
    pop = summary["item_popularity"]
    assert pop["top_share_events"] == pytest.approx(per_item[:top_items].sum() / per_item.sum(), abs=1e-6)
    assert pop["items_with_one_event"] == int((per_item == 1).sum())
    assert summary["funnel"]["click_per_view"] == pytest.approx(types["click"] / types["view"], abs=1e-6)
    sessions = Counter(e["session_id"] for e in events)
    assert summary["sessions"]["sessions"] == len(sessions)
    lengths = Counter(min(n, 51) for n in sessions.values())
    assert summary["sessions"]["events"]["counts"] == [lengths.get(k, 0) for k in range(1, 52)]
    assert sum(summary["hours"]["utc"]) == len(events) == sum(summary["hours"]["local"])
    assert summary["users_by_events"]["max"] == per_user[0]
    fit = summary["user_rank"]["fit"]
    assert fit is not None and fit["exponent"] > 0


def test_every_chart_is_drawn_and_nothing_skipped(summary: dict[str, Any]) -> None:
    assert summary["skipped"] == {}
    assert len(summary["plots"]) == 9
    out = Path(summary["config"]["out"])
    for name in summary["plots"].values():
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert orjson.loads((out / "summary.json").read_bytes())["events"] == summary["events"]


def test_segments_prefer_their_category(summary: dict[str, Any]) -> None:
    cs = summary["category_segment"]
    shares = np.array(cs["row_shares"])  # (segments, categories)
    assert cs["events_outside_world"] == 0
    # the generator's segment k prefers category k: each row's largest share is on the diagonal
    assert list(shares.argmax(axis=1)) == list(range(len(cs["segments"])))
    assert cs["own_category_share"] > 2 / len(cs["categories"])


def test_a_wrong_generator_seed_is_reported_not_drawn(history: Path, tmp_path: Path) -> None:
    s = explore(ExploreConfig(input=str(history), generator_seed=8, out=str(tmp_path)), QUIET)
    assert s["category_segment"] is None and "--generator-seed" in s["skipped"]["category_segment"]
    assert "category_segment" not in s["plots"]


def test_csv_and_stdin_give_the_same_numbers(history: Path, summary: dict[str, Any], tmp_path: Path) -> None:
    csv = generated_history(tmp_path / "history.csv", count=5000, sink="csv")
    from_csv = explore(ExploreConfig(input=str(csv), generator_seed=7, out=str(tmp_path / "csv")), QUIET)
    assert data_part(from_csv) == data_part(summary)
    done = subprocess.run([sys.executable, "-m", "reporting.explore", "--input", "-", "--generator-seed", "7",
                           "--out", str(tmp_path / "stdin")], input=history.read_bytes(), capture_output=True, cwd=REPO,
                          check=False)
    assert done.returncode == 0, done.stderr
    from_stdin = orjson.loads((tmp_path / "stdin" / "summary.json").read_bytes())
    assert data_part(from_stdin) == orjson.loads(orjson.dumps(data_part(summary), option=orjson.OPT_NON_STR_KEYS))
    lines = done.stdout.decode().splitlines()
    assert lines[0].startswith("explore: reading -") and "explore: wrote" in lines[-1]


def test_bad_records_are_refused_with_a_reason_and_counted(history: Path, tmp_path: Path) -> None:
    lines = history.read_bytes().splitlines()[:300]
    bad = [b'{"broken', orjson.dumps({"event_type": "view"}), b"", b"[1, 2]"]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines[:100] + bad + lines[100:]) + b"\n")
    s = explore(ExploreConfig(input=str(path), out=str(tmp_path / "out")), QUIET)
    assert s["events"] == 300
    assert s["refused"] == {"unparseable": 2, "schema": 1}  # the blank line is no record
    assert "missing field" in s["refused_examples"]["schema"]


def test_max_events_and_run_tag(history: Path, tmp_path: Path) -> None:
    s = explore(ExploreConfig(input=str(history), max_events=1234, out=str(tmp_path / "a")), QUIET)
    assert s["events"] == 1234
    tag = orjson.loads(history.read_bytes().splitlines()[0])["event_id"].rsplit("-", 1)[0]
    mine = explore(ExploreConfig(input=str(history), run_tag=tag, out=str(tmp_path / "b")), QUIET)
    assert mine["events"] == 5000 and mine["skipped_other_runs"] == 0
    other = explore(ExploreConfig(input=str(history), run_tag="feedbeef", out=str(tmp_path / "c")), QUIET)
    assert other["events"] == 0 and other["skipped_other_runs"] == 5000 and other["plots"] == {}


def test_otto_sessions_through_the_adapter(tmp_path: Path) -> None:
    lines = otto_lines(12)
    broken = [b'{"session": 1, "events": [{"aid": 1, "ts": 1659304800000, "type": "views"}]}', b"{oops"]
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\n".join(lines + broken) + b"\n")
    s = explore(ExploreConfig(input=str(path), generator_seed=7, out=str(tmp_path / "otto")), QUIET)
    sessions = [orjson.loads(line) for line in lines]
    assert s["source"]["format"] == "otto" and "price" in s["source"]["missing_fields"]
    assert s["events"] == sum(len(x["events"]) for x in sessions)
    assert s["users"] == 12 and s["refused"] == {"unknown_event_type": 1, "unparseable": 1}
    assert s["event_types"]["counts"]["view"] == 0
    assert s["funnel"]["click_per_view"] is None
    assert s["sessions"]["sessions"] == 24  # each OTTO session has a 2-hour gap: two visits
    assert set(s["skipped"]) == {"local_hour", "price_by_category", "category_segment"}
    assert "OTTO" in s["skipped"]["category_segment"]
    assert s["first_ts"] == T0


def test_open_sessions_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finished sessions leave memory during the run; the histograms still count every one."""
    monkeypatch.setattr(stats_module, "SWEEP_EVERY", 100)
    monkeypatch.setattr(stats_module, "SESSION_IDLE_RECORDS", 200)
    st = ExploreStats()
    open_max = 0
    view = EVENT_TYPE_INDEX["view"]
    for s in range(1000):  # one session after another, 3 events each, an hour apart
        ts = T0 + s * 3_600_000
        st.add([(view, ts + k * 1000, f"u{s % 50}", f"i{k}", f"s{s}", None, None, None) for k in range(3)])
        open_max = max(open_max, len(st.sessions))
    st.finish()
    assert open_max <= 200 // 3 + 100 // 3 + 2
    assert st.summary()["sessions"]["events"]["counts"][2] == 1000  # 1000 sessions of 3 events


def test_a_bad_flag_is_one_line(tmp_path: Path) -> None:
    for args in (["--input", str(tmp_path / "none.jsonl")], ["--max-events", "0"], ["--format", "xml"]):
        done = subprocess.run([sys.executable, "-m", "reporting.explore", *args], capture_output=True, text=True,
                              cwd=REPO, check=False)
        assert done.returncode == 2, args
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
