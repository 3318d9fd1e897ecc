"""Producer output against the event contract: clean events decode, faulted ones are refused for the documented reason.

The same run is made twice, with and without faults: faults never change the events, so
after dropping duplicate copies the two streams line up message by message and every
difference must be a recorded fault.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from events.schema import FIELDS, SCHEMA_VERSION, Interaction, decode
from producers.synthetic.__main__ import main

FAULTS = "malformed=0.01,missing=0.01,invalid=0.01,duplicate=0.01,late=0.01"
EXPECTED = {"malformed": {"unparseable"}, "missing": {"schema"}, "invalid": {"schema", "unknown_event_type"}}


def produce(out: Path, *extra: str) -> list[bytes]:
    argv = ["--backfill", "--rate", "5", "--count", "30000", "--sink", "jsonl", "--out", str(out), *extra,
            "--start", "2025-06-01T00:00:00Z", "--users", "500", "--items", "200", "--progress-interval", "0"]  # fmt: skip
    assert main(argv) == 0
    return out.read_bytes().splitlines()


def test_clean_output_decodes_to_the_contracts_exact_bytes(tmp_path):
    lines = produce(tmp_path / "clean.jsonl")
    for raw in lines:
        event, rejection = decode(raw)
        assert rejection is None, (raw, rejection)
        assert list(event) == list(FIELDS) and event["schema_version"] == SCHEMA_VERSION
        assert Interaction.from_dict(event).to_json() == raw


def test_faulted_messages_are_refused_for_their_documented_reason(tmp_path):
    clean = produce(tmp_path / "clean.jsonl")
    faulted = produce(tmp_path / "faulted.jsonl", "--faults", FAULTS)
    fault_of = {}
    for record in map(orjson.loads, (tmp_path / "faulted.truth.jsonl").read_bytes().splitlines()):
        if record["kind"] == "fault":
            fault_of[record["event_id"]] = record["fault"]
    seen: set[bytes] = set()
    deduped = []
    for raw in faulted:
        if raw in seen and decode(raw)[1] is None:
            continue  # the copy of a duplicate (two malformed cuts can be equal too: keep those)
        seen.add(raw)
        deduped.append(raw)
    assert len(faulted) - len(deduped) == sum(1 for k in fault_of.values() if k == "duplicate")
    assert len(deduped) == len(clean)
    reasons: dict[str, set[str]] = {k: set() for k in (*EXPECTED, "late")}
    for original, raw in zip(clean, deduped, strict=True):
        if raw == original:
            continue
        kind = fault_of[orjson.loads(original)["event_id"]]  # KeyError: an unrecorded change
        event, rejection = decode(raw)
        if kind == "late":
            assert rejection is None and event["ts"] < orjson.loads(original)["ts"]
            reasons["late"].add("accepted")
            continue
        assert rejection is not None and rejection.reason in EXPECTED[kind], (kind, raw, rejection)
        reasons[kind].add(rejection.reason)
    assert all(reasons.values()), reasons  # every kind showed up
