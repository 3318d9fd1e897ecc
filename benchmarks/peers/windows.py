"""What every flow of the peer comparison computes, and how its output is checked.

The statistics: 1-minute tumbling windows (aligned to the epoch, as the features flow's)
per user and per item, counting the events of each type, with 5 s of allowed lateness
(``FeaturesConfig.window_ms`` and ``allowed_lateness_ms``; a unit test keeps them equal).
Each closed window is one JSON record with the same fields as the features flow's window
records::

    {"user_id": "u7", "window_start": 1732233600000, "views": 3, "clicks": 1, "add_carts": 0, "purchases": 0}

This module is standard library only: the Quix Streams flow imports it from its own
virtual environment, where the project's packages are not installed.

>>> counts = new_counts()
>>> for e in ({"event_type": "view"}, {"event_type": "click"}, {"event_type": "view"}):
...     counts = add_event(counts, e)
>>> counts
{'views': 2, 'clicks': 1, 'add_carts': 0, 'purchases': 0}
>>> window_start(61_234)
60000
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

WINDOW_MS = 60_000  # tumbling window length
LATENESS_MS = 5_000  # how far behind the newest event an event is still counted
#: event_type -> the field that counts it
FIELDS = {"view": "views", "click": "clicks", "add_cart": "add_carts", "purchase": "purchases"}
ENTITIES = ("user", "item")

Counts = dict[str, int]
WindowKey = tuple[str, str, int]  # (entity, entity id, window start ms)


def new_counts() -> Counts:
    """An empty window: every event type at 0."""
    return dict.fromkeys(FIELDS.values(), 0)


def add_event(counts: Counts, event: Mapping[str, Any]) -> Counts:
    """Count one event into a window's counts (in place; returned for fold-style APIs)."""
    counts[FIELDS[event["event_type"]]] += 1
    return counts


def merge_counts(a: Counts, b: Counts) -> Counts:
    """Two partial counts of one window added up."""
    return {name: a[name] + b[name] for name in a}


def window_start(ts_ms: int) -> int:
    """Start (epoch ms) of the window that holds event time ``ts_ms``."""
    return ts_ms - ts_ms % WINDOW_MS


def window_value(entity: str, entity_id: str, start_ms: int, counts: Counts) -> dict[str, Any]:
    """The JSON object of one closed window."""
    return {f"{entity}_id": entity_id, "window_start": start_ms, **counts}


def expected_windows(events: Iterable[Mapping[str, Any]]) -> dict[WindowKey, Counts]:
    """Every (entity, id, window start) of the input with its exact counts: the oracle."""
    out: dict[WindowKey, Counts] = {}
    for e in events:
        start = window_start(e["ts"])
        for entity in ENTITIES:
            key = (entity, e[f"{entity}_id"], start)
            counts = out.get(key)
            if counts is None:
                counts = out[key] = new_counts()
            add_event(counts, e)
    return out


@dataclass(frozen=True)
class Correctness:
    """One flow's window records against the oracle, for one entity (user or item)."""

    entity: str
    input_events: int  # events of the input (each is in one user and one item window)
    counted: int  # events summed over every record the flow wrote (duplicates included)
    records: int  # window records written
    reemitted: int  # records for a (id, window) already written before
    lost_in_written: int  # events missing from windows that were written (dropped as late)
    in_unwritten: int  # events of windows never written (e.g. still open when the input ended)
    wrong: int  # records whose counts of some type exceed the oracle's, or windows not in the input

    @property
    def share(self) -> float:
        """Events counted / input events (1.0 exactly when nothing is lost or counted twice)."""
        return self.counted / self.input_events if self.input_events else 0.0


def check_windows(entity: str, oracle: Mapping[WindowKey, Counts], input_events: int,
                  records: Iterable[Mapping[str, Any]]) -> Correctness:
    """Compare a flow's window records of ``entity`` with the oracle.

    A (id, window) written more than once is a re-emission: its first record is compared
    with the oracle, every later one still adds to ``counted``.
    """
    seen: dict[tuple[str, int], Counts] = {}
    counted = n = reemitted = wrong = 0
    id_field = f"{entity}_id"
    for r in records:
        n += 1
        counts = {name: int(r[name]) for name in FIELDS.values()}
        counted += sum(counts.values())
        key = (r[id_field], int(r["window_start"]))
        if key in seen:
            reemitted += 1
            continue
        seen[key] = counts
        truth = oracle.get((entity, *key))
        if truth is None or any(counts[name] > truth[name] for name in truth):
            wrong += 1
    lost = unwritten = 0
    for (kind, entity_id, start), truth in oracle.items():
        if kind != entity:
            continue
        got = seen.get((entity_id, start))
        if got is None:
            unwritten += sum(truth.values())
        else:
            lost += sum(max(truth[name] - got[name], 0) for name in truth)
    return Correctness(entity=entity, input_events=input_events, counted=counted, records=n, reemitted=reemitted,
                       lost_in_written=lost, in_unwritten=unwritten, wrong=wrong)
