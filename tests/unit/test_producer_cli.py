"""The command line in-process: one-line errors with exit code 2, files and report, --help."""

from __future__ import annotations

import hashlib
import json
import sys

import orjson
import pytest

from producers.synthetic.__main__ import build_parser, main
from producers.synthetic.config import ModelParams, flag

SMALL = ["--users", "300", "--items", "100", "--calibration-views", "5000", "--progress-interval", "0"]
START = ["--start", "2025-01-01T00:00:00Z"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--sink", "kafak"], "unknown sink 'kafak'; expected one of kafka, jsonl, csv, stdout"),
        (["--rate", "-5"], "--rate must be > 0"),
        (["--rate", "0"], "--rate must be > 0"),
        (["--rate", "fast"], "--rate: invalid float value: 'fast'"),
        (["--count", "0"], "--count must be >= 1"),
        (["--faults", "malformed=0.1,slow=0.2"], "unknown fault kind 'slow'"),
        (["--faults", "late=2"], "rate of 'late' must be between 0 and 1"),
        (["--sink", "jsonl"], "--out PATH is required with --sink jsonl"),
        (["--start", "2025-01-01T00:00:00"], "has no timezone"),
        (["--start", "yesterday"], "--start: 'yesterday' is not an ISO 8601 time"),
        (["--item-share", "0.97"], "--item-share 0.97 cannot be met"),
        (["--user-share", "0.1"], "--user-share must be > --user-top"),
        (["--partitions", "0"], "--partitions must be >= 1"),
        (["--parallel", "maybe"], "--parallel must be one of auto, on, off"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_code_2(args, needle, capsys):
    with pytest.raises(SystemExit) as exc:  # argparse's own errors exit from parse_args
        sys.exit(main([*args, *SMALL, "--count", "1"] if "--count" not in args else [*args, *SMALL]))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m producers.synthetic: error: ") and needle in err, err


def test_jsonl_run_writes_events_truth_and_a_report(tmp_path, capsys):
    out, report_path = tmp_path / "ev.jsonl", tmp_path / "r" / "report.json"
    argv = ["--backfill", "--rate", "2", "--days", "0.5", "--sink", "jsonl", "--out", str(out), "--report", str(report_path),
            "--faults", "duplicate=0.01", *START, *SMALL]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(report_path.read_text())
    data = out.read_bytes()
    assert report["checksum"] == hashlib.sha256(data).hexdigest()
    assert report["messages"] == data.count(b"\n") == report["events"] + report["faults"]["duplicate"]
    truth = (tmp_path / "ev.truth.jsonl").read_bytes().splitlines()
    assert len(truth) == report["counts_by_type"]["view"] + report["faults"]["duplicate"]
    assert sum(report["partitions"]["counts"].values()) == report["messages"]
    assert report["rate_achieved"] > 0 and report["interrupted"] is False
    shown = capsys.readouterr().out
    for needle in ("Dataset Statistics", "Total Users: 300", "Average Rating:", "Rating Distribution:", "Oracle click AUC"):
        assert needle in shown


def test_csv_sink_writes_one_row_per_message(tmp_path):
    out = tmp_path / "ev.csv"
    assert main(["--backfill", "--rate", "5", "--count", "300", "--sink", "csv", "--out", str(out), *START, *SMALL]) == 0
    rows = out.read_text().splitlines()
    assert rows[0].startswith("schema_version,event_id,event_type,ts,user_id")
    assert len(rows) == 301 and all(r.count(",") == 12 for r in rows[1:])


def test_help_lists_every_flag_with_its_default():
    text = build_parser().format_help()
    for f in ("--seed", "--rate", "--backfill", "--start", "--days", "--count", "--duration", "--sink", "--out",
              "--truth-out", "--topic", "--truth-topic", "--partitions", "--faults", "--late-by", "--report",
              "--progress-interval", "--check", "--parallel", *(flag(f) for f in ModelParams.__dataclass_fields__)):  # fmt: skip
        assert f in text, f
    assert "(default: 1000.0)" in text and "(default: 0.6)" in text


def test_no_truth_sends_no_truth_records(tmp_path):
    out = tmp_path / "ev.jsonl"
    argv = ["--backfill", "--rate", "5", "--count", "2000", "--sink", "jsonl", "--out", str(out), "--no-truth",
            "--faults", "late=0.01", *START, *SMALL]  # fmt: skip
    assert main(argv) == 0
    assert out.read_bytes().count(b"\n") == 2000
    assert not (tmp_path / "ev.truth.jsonl").exists()


def test_file_sinks_write_the_catalog_and_profiles_with_observable_fields_only(tmp_path):
    from events.profiles import ITEM_FIELDS, USER_FIELDS, check_item, check_user

    runs = []
    for name in ("a", "b"):
        out = tmp_path / name / "ev.jsonl"
        assert main(["--backfill", "--rate", "5", "--count", "50", "--sink", "jsonl", "--out", str(out), *START,
                     *SMALL]) == 0
        runs.append((out.with_name("ev.users.jsonl").read_bytes(), out.with_name("ev.items.jsonl").read_bytes()))
    assert runs[0] == runs[1]  # same seed, same bytes
    users = [orjson.loads(line) for line in runs[0][0].splitlines()]
    items = [orjson.loads(line) for line in runs[0][1].splitlines()]
    assert [u["user_id"] for u in users] == [f"u{n}" for n in range(300)] and len(items) == 100
    assert all(list(u) == [f.name for f in USER_FIELDS] and check_user(u) is None for u in users)
    assert all(list(i) == [f.name for f in ITEM_FIELDS] and check_item(i) is None for i in items)
    csv_out = tmp_path / "c" / "ev.csv"
    assert main(["--backfill", "--rate", "5", "--count", "50", "--sink", "csv", "--out", str(csv_out), *START,
                 *SMALL]) == 0
    rows = csv_out.with_name("ev.items.csv").read_text().splitlines()
    assert rows[0] == "schema_version,item_id,category,price,updated_ms" and len(rows) == 101
    none = tmp_path / "d" / "ev.jsonl"
    assert main(["--backfill", "--rate", "5", "--count", "50", "--sink", "jsonl", "--out", str(none), "--no-profiles",
                 *START, *SMALL]) == 0
    assert sorted(p.name for p in none.parent.iterdir()) == ["ev.jsonl", "ev.truth.jsonl"]
