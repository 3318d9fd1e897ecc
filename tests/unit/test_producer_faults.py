"""Fault injection: the configured kinds appear at about their rates and are all recorded."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest

from events.schema import decode
from producers.synthetic.config import ModelParams, ProducerConfig
from producers.synthetic.faults import FAULT_KINDS, FaultRates, inject
from producers.synthetic.runner import run
from producers.synthetic.sinks import MemorySink

EVENT = (b'{"schema_version":1,"event_id":"e%d","event_type":"view","ts":%d,"user_id":"u1","item_id":"i1",'
         b'"session_id":"s1","category":"Books","price":12.5,"country":"US","device":"mobile","view_id":null,"rating":null}')  # fmt: skip


def block(n: int) -> tuple[list[bytes], np.ndarray]:
    ts = 1_735_689_600_000 + np.arange(n) * 10
    return [EVENT % (i, t) for i, t in enumerate(ts.tolist())], ts


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", FaultRates()),
        ("late=0.5", FaultRates(late=0.5)),
        (" malformed = 0.1 , duplicate=0.2,", FaultRates(malformed=0.1, duplicate=0.2)),
    ],
)
def test_spec_parses(spec, expected):
    assert FaultRates.parse(spec) == expected


@pytest.mark.parametrize(
    ("spec", "needle"),
    [("late", "expected kind=rate"), ("late=x", "must be a number"), ("late=0.7,missing=0.7", "add up to 1.4"),
     ("late=-0.1", "between 0 and 1"), ("lost=0.1", "unknown fault kind 'lost'")],
)  # fmt: skip
def test_bad_spec_names_the_problem(spec, needle):
    with pytest.raises(ValueError, match=needle):
        FaultRates.parse(spec)


def test_each_kind_breaks_the_event_the_documented_way():
    values, ts = block(4000)
    rates = FaultRates(malformed=0.05, missing=0.05, invalid=0.05, duplicate=0.05, late=0.05)
    out = inject(values, ts, rates, 300_000, np.random.default_rng(0))
    by_kind = {k: [r for r in out.records if r[1] == k] for k in FAULT_KINDS}
    assert all(140 < len(v) < 260 for v in by_kind.values()), {k: len(v) for k, v in by_kind.items()}
    assert len(out.values) == len(values) + len(by_kind["duplicate"])
    position = {}  # original index -> message positions
    for j, s in enumerate(out.source.tolist()):
        position.setdefault(s, []).append(j)
    expected_reason = {"malformed": {"unparseable"}, "missing": {"schema"}, "invalid": {"schema", "unknown_event_type"}}
    for kind, reasons in expected_reason.items():
        for k, _, _ in by_kind[kind]:
            assert decode(out.values[position[k][0]])[1].reason in reasons
    for k, _, _ in by_kind["late"]:
        event, rejection = decode(out.values[position[k][0]])
        assert rejection is None and event["ts"] == ts[k] - 300_000
    for k, _, _ in by_kind["duplicate"]:
        first, second = position[k]
        assert first < second and out.values[first] == out.values[second] == values[k] and out.is_copy[second]
    untouched = set(range(len(values))) - {r[0] for r in out.records}
    assert all(out.values[position[k][0]] == values[k] for k in untouched)


def test_no_faults_leaves_the_block_as_it_is():
    values, ts = block(10)
    out = inject(values, ts, FaultRates(), 1, np.random.default_rng(0))
    assert out.values == values and out.records == [] and out.source.tolist() == list(range(10))


def test_faults_go_to_the_truth_sink_and_the_report():
    cfg = ProducerConfig(mode="backfill", rate=5.0, count=20_000, sink="stdout", progress_interval_s=0,
                         start=datetime(2025, 1, 1, tzinfo=UTC), model=ModelParams(users=500, items=200, calibration_views=5000),
                         faults=FaultRates(malformed=0.01, missing=0.01, invalid=0.01, duplicate=0.01, late=0.01))  # fmt: skip
    sink = MemorySink()
    report = run(cfg, sink, log=None)
    records = [orjson.loads(v) for v in sink.truth_values]
    faults = [r for r in records if r["kind"] == "fault"]
    counted = {k: sum(1 for r in faults if r["fault"] == k) for k in FAULT_KINDS}
    assert counted == report["faults"]
    assert all(100 < n < 320 for n in counted.values()), counted
    assert report["messages"] == report["events"] + counted["duplicate"] == len(sink.values)
    # the truth names the faulted event and its key is that event_id
    for key, r in zip(sink.truth_keys, records, strict=True):
        assert key.decode() == r["event_id"]
    clean = run(replace(cfg, faults=FaultRates()), MemorySink(), log=None)
    assert clean["counts_by_type"] == report["counts_by_type"]  # faults do not change the events
