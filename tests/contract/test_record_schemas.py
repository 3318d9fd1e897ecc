"""The declared contracts (events/profiles.py, events/requests.py): validator and JSON Schema agree."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.contract import json_schema
from events.profiles import GENDERS, ITEM_FIELDS, SCHEMAS, USER_FIELDS, check_item, check_user
from events.requests import REQUEST_FIELDS, check_request
from events.requests import SCHEMAS as REQUEST_SCHEMAS
from events.schema import CATEGORIES, COUNTRIES, DEVICES

EVENTS = Path(__file__).resolve().parents[2] / "events"
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)
times = st.integers(946_684_800_000, 4_102_444_800_000)
junk = st.one_of(st.none(), st.booleans(), st.integers(-5, 200), st.floats(allow_nan=False), st.text(max_size=3),
                 st.lists(st.integers(), max_size=2))
users = st.fixed_dictionaries({
    "schema_version": st.just(1), "user_id": ids, "age": st.integers(18, 70), "gender": st.sampled_from(GENDERS),
    "country": st.sampled_from(COUNTRIES), "device": st.sampled_from(DEVICES), "updated_ms": times})
items = st.fixed_dictionaries({
    "schema_version": st.just(1), "item_id": ids, "category": st.sampled_from(CATEGORIES),
    "price": st.floats(0.01, 1e6), "updated_ms": times})
requests = st.fixed_dictionaries(
    {"schema_version": st.just(1), "request_id": ids, "user_id": ids, "ts": times},
    optional={"k": st.integers(-5, 500), "context": st.fixed_dictionaries(
        {}, optional={"device": st.sampled_from(DEVICES), "country": st.sampled_from(COUNTRIES)})})
CASES = {"user": (users, USER_FIELDS, check_user, "user.schema.json"),
         "item": (items, ITEM_FIELDS, check_item, "item.schema.json"),
         "request": (requests, REQUEST_FIELDS, check_request, "request.schema.json")}


ALL_SCHEMAS = {**SCHEMAS, **REQUEST_SCHEMAS}


@pytest.mark.parametrize("name", sorted(ALL_SCHEMAS))
def test_the_committed_schema_files_are_the_field_tables(name):
    title, description, fields = ALL_SCHEMAS[name]
    committed = json.loads((EVENTS / name).read_text())
    assert committed == json_schema(name.removesuffix(".schema.json"), title, description, fields), \
        f"events/{name} is out of date: run `python -m events.contract`"


@pytest.mark.parametrize("kind", sorted(CASES))
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_valid_and_mutated_records_get_the_same_verdict(kind, data):
    records, fields, check, schema_name = CASES[kind]
    validator = jsonschema.Draft202012Validator(json.loads((EVENTS / schema_name).read_text()))
    record = data.draw(records)
    assert check(record) is None and validator.is_valid(record)
    field = data.draw(st.sampled_from([f.name for f in fields if f.name in record or f.required]))
    mutated = dict(record)
    if data.draw(st.booleans()):
        del mutated[field]
    else:
        mutated[field] = data.draw(junk)
        value = mutated[field]
        if isinstance(value, float) and value.is_integer() and field in ("age", "updated_ms", "schema_version", "ts",
                                                                          "k"):
            assert check(mutated) is not None  # 3.0 is no integer literal; JSON Schema would accept it
            return
    assert (check(mutated) is None) == validator.is_valid(mutated), (field, mutated.get(field), check(mutated))
