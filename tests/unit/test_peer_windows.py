"""The peer comparison counts what the features flow counts: same windows, same oracle, same check.

The textbook Bytewax flow's window logic runs here on Bytewax's testing source; the Quix
flow's reduce functions are folded as Quix folds them (its windowing itself runs against a
broker in tests/integration/test_peer_flows.py).
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from benchmarks.peers import quix_windows
from benchmarks.peers.bytewax_textbook import windowed_counts
from benchmarks.peers.windows import (
    ENTITIES,
    LATENESS_MS,
    WINDOW_MS,
    check_windows,
    expected_windows,
    window_start,
)
from features.config import FeaturesConfig

T0 = 1_732_233_600_000  # 2024-11-22T00:00:00Z, a minute boundary


def event(ts: int, user: str, item: str, kind: str) -> dict:
    return {"ts": ts, "user_id": user, "item_id": item, "event_type": kind}


#: two windows; u1 and i1 busy in the first, one event exactly on the boundary
EVENTS = [
    event(T0 + 1_000, "u1", "i1", "view"),
    event(T0 + 2_000, "u1", "i1", "click"),
    event(T0 + 3_000, "u2", "i1", "view"),
    event(T0 + 30_000, "u2", "i2", "add_cart"),
    event(T0 + 59_999, "u1", "i2", "purchase"),
    event(T0 + 60_000, "u1", "i1", "view"),
    event(T0 + 61_000, "u2", "i2", "view"),
]


def counts(views: int = 0, clicks: int = 0, add_carts: int = 0, purchases: int = 0) -> dict[str, int]:
    return {"views": views, "clicks": clicks, "add_carts": add_carts, "purchases": purchases}


def test_peers_use_the_features_flows_window_and_lateness():
    config = FeaturesConfig()
    assert (config.window_ms, config.allowed_lateness_ms) == (WINDOW_MS, LATENESS_MS)


def test_the_oracle_counts_every_event_once_per_user_and_once_per_item():
    later = T0 + WINDOW_MS
    assert expected_windows(EVENTS) == {
        ("user", "u1", T0): counts(views=1, clicks=1, purchases=1),
        ("item", "i1", T0): counts(views=2, clicks=1),
        ("user", "u2", T0): counts(views=1, add_carts=1),
        ("item", "i2", T0): counts(add_carts=1, purchases=1),
        ("user", "u1", later): counts(views=1),
        ("item", "i1", later): counts(views=1),
        ("user", "u2", later): counts(views=1),
        ("item", "i2", later): counts(views=1),
    }
    assert window_start(T0 + 59_999) == T0 and window_start(T0 + 60_000) == later


def test_the_check_tells_lost_unwritten_and_reemitted_windows_apart():
    oracle = expected_windows(EVENTS)
    written = [
        {"user_id": "u1", "window_start": T0, **counts(views=1, clicks=1)},  # the purchase dropped as late
        {"user_id": "u2", "window_start": T0, **counts(views=1, add_carts=1)},
        {"user_id": "u2", "window_start": T0, **counts(views=1, add_carts=1)},  # written again
        {"user_id": "u1", "window_start": T0 + WINDOW_MS, **counts(views=1)},
        {"user_id": "u9", "window_start": T0, **counts(views=1)},  # a window the input does not have
    ]  # u2's second window is never written
    check = check_windows("user", oracle, len(EVENTS), written)
    assert (check.records, check.counted, check.reemitted) == (5, 8, 1)
    assert (check.lost_in_written, check.in_unwritten, check.wrong) == (1, 1, 1)
    assert check.share == 8 / 7  # counted twice and counted wrongly outweigh the lost


def test_textbook_bytewax_windows_count_the_input_exactly():
    flow = Dataflow("peer_windows_test")
    events = op.input("in", flow, TestingSource(EVENTS))
    out: dict[str, list] = {entity: [] for entity in ENTITIES}
    for entity, windows in windowed_counts(events).items():
        op.output(f"{entity}_out", windows, TestingSink(out[entity]))
    run_main(flow)
    oracle = expected_windows(EVENTS)
    for entity in ENTITIES:
        assert all(key == value[f"{entity}_id"] for key, value in out[entity])
        check = check_windows(entity, oracle, len(EVENTS), [value for _, value in out[entity]])
        assert (check.counted, check.records) == (len(EVENTS), 4)
        assert (check.lost_in_written, check.in_unwritten, check.reemitted, check.wrong) == (0, 0, 0, 0)


def test_quix_reduce_functions_count_the_input_exactly():
    # Quix calls the initializer with a window's first value and the reducer with every later one.
    oracle = expected_windows(EVENTS)
    for entity in ENTITIES:
        windows: dict[tuple[str, int], dict] = {}
        for e in EVENTS:
            key = (e[f"{entity}_id"], window_start(e["ts"]))
            if key in windows:
                windows[key] = quix_windows.count_event(windows[key], e)
            else:
                windows[key] = quix_windows.start_counts(e)
        records = [quix_windows.closed_window(entity, {"start": start, "end": start + WINDOW_MS, "value": value}, key)
                   for (key, start), value in windows.items()]
        check = check_windows(entity, oracle, len(EVENTS), records)
        assert (check.counted, check.records, check.wrong, check.lost_in_written) == (len(EVENTS), 4, 0, 0)
