"""The validator refuses every kind of bad event with a reason that names the field."""

from __future__ import annotations

import pytest

from events.schema import FIELDS, Interaction, check, decode

VIEW = {
    "schema_version": 1,
    "event_id": "e-1",
    "event_type": "view",
    "ts": 1_732_233_600_000,
    "user_id": "u1",
    "item_id": "i9",
    "session_id": "s1",
    "category": "Books",
    "price": 12.5,
    "country": "US",
    "device": "mobile",
    "view_id": None,
    "rating": None,
}
CLICK = {**VIEW, "event_id": "e-2", "event_type": "click", "view_id": "e-1"}
PURCHASE = {**VIEW, "event_id": "e-3", "event_type": "purchase", "view_id": "e-1", "rating": 4}


@pytest.mark.parametrize("event", [VIEW, CLICK, PURCHASE, {**VIEW, "price": 3}, {**VIEW, "extra": 1}])
def test_valid_events_pass(event):
    assert check(event) is None


INVALID = [
        ([1, 2], "unparseable", "JSON object"),
        ({**VIEW, "schema_version": 3}, "unsupported_schema_version", "schema_version 3"),
        ({**VIEW, "schema_version": 2}, "schema", "missing field 'experiment' (required on version 2)"),
        ({k: v for k, v in VIEW.items() if k != "schema_version"}, "schema", "schema_version"),
        ({k: v for k, v in VIEW.items() if k != "user_id"}, "schema", "'user_id'"),
        ({**VIEW, "user_id": ""}, "schema", "user_id"),
        ({**VIEW, "item_id": 7}, "schema", "item_id"),
        ({**VIEW, "event_type": "like"}, "unknown_event_type", "'like'"),
        ({k: v for k, v in VIEW.items() if k != "event_type"}, "schema", "event_type"),
        ({**VIEW, "ts": "2024-01-01"}, "schema", "ts must be an integer"),
        ({**VIEW, "ts": True}, "schema", "ts must be an integer"),
        ({**VIEW, "ts": 1_732_233_600}, "ts_out_of_range", "seconds instead of milliseconds"),
        ({**VIEW, "price": -1.0}, "schema", "price"),
        ({**VIEW, "price": float("nan")}, "schema", "price"),
        ({**VIEW, "price": False}, "schema", "price"),
        ({**VIEW, "view_id": "e-0"}, "schema", "view_id must be null on a view"),
        ({**CLICK, "view_id": None}, "schema", "view_id must be a non-empty string on a click"),
        ({**PURCHASE, "rating": 6}, "schema", "rating must be an integer 1..5"),
        ({**PURCHASE, "rating": None}, "schema", "rating"),
        ({**CLICK, "rating": 3}, "schema", "rating must be null on a click"),
        ({**PURCHASE, "rating": 0}, "schema", "rating must be an integer 1..5"),
        ({**VIEW, "session_id": "s" * 129}, "schema", "session_id"),
        ({**VIEW, "price": 1e9 + 1}, "schema", "price"),
        ({**VIEW, "event_type": 3}, "schema", "event_type must be a string"),
]


@pytest.mark.parametrize(("event", "reason", "needle"), INVALID)
def test_invalid_events_name_reason_and_field(event, reason, needle):
    rejection = check(event)
    assert rejection is not None
    assert rejection.reason == reason
    assert needle in rejection.detail


def test_decode_reports_bad_bytes():
    assert decode(b"\xff\xfe")[1].reason == "unparseable"
    assert decode(b"")[1].reason == "unparseable"
    event, rejection = decode(Interaction.from_dict(CLICK).to_json())
    assert rejection is None and event == CLICK


def test_interaction_round_trip_keeps_field_order():
    interaction = Interaction.from_dict(PURCHASE)
    assert list(interaction.to_dict()) == list(FIELDS)
    assert decode(interaction.to_json())[0] == PURCHASE


def test_from_dict_refuses_invalid():
    with pytest.raises(ValueError, match="unknown_event_type"):
        Interaction.from_dict({**VIEW, "event_type": "like"})


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(FIELDS), json_values)
def test_check_never_raises_on_any_json_value(field, value):
    # The dataflow calls check() on whatever a producer sent; it must refuse, never crash.
    result = check({**VIEW, field: value})
    assert result is None or result.reason in {"schema", "unknown_event_type", "unsupported_schema_version", "ts_out_of_range"}


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_check_refuses_non_objects_without_raising(value):
    if not isinstance(value, dict):
        assert check(value).reason == "unparseable"
    else:
        assert check(value) is not None

