"""Output record formats: window records byte for byte, score records, dead letters."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

import features.records as rec
from features.records import iso_utc, score_records, window_record, window_stats
from features.spec import Prior, Priors
from features.tiles import pack_window

counts = st.tuples(*(st.integers(min_value=0, max_value=(1 << 32) - 1) for _ in range(4)))
ids = st.text(min_size=1, max_size=20)  # quotes, backslashes, control characters, non-ASCII


def whole_dict(entity, entity_id, start, length, c, priors):
    """The record as one dict through orjson: what the assembled bytes must equal."""
    value = {f"{entity}_id": entity_id, "window_start": start, "window_end": start + length,
             "window_start_utc": iso_utc(start), **window_stats(c, priors)}
    return f"{entity_id}@{start}".encode(), orjson.dumps(value)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["user", "item"]), ids, st.integers(min_value=0, max_value=4_102_444_800_000), counts)
def test_window_record_bytes_equal_the_whole_dict(entity, entity_id, start, c):
    priors = Priors()
    expected = whole_dict(entity, entity_id, start, 60_000, c, priors)
    assert window_record(entity, entity_id, start, 60_000, c, priors) == expected  # counts as a tuple
    assert window_record(entity, entity_id, start, 60_000, pack_window(*c), priors) == expected  # packed
    assert window_record(entity, entity_id, start, 60_000, pack_window(*c), priors) == expected  # cached


def test_the_stats_cache_keeps_priors_apart_and_stays_bounded(monkeypatch):
    monkeypatch.setattr(rec, "STATS_CACHE_ENTRIES", 3)
    default, strong = Priors(), Priors(ctr=Prior(0.3, 50.0))
    assert default != strong
    for views in range(10):
        c = (views, 1, 0, 0)
        for priors in (default, strong):
            assert window_record("item", "i1", 0, 60_000, pack_window(*c), priors) == whole_dict(
                "item", "i1", 0, 60_000, c, priors)
    for priors in (default, strong):
        assert len(rec._stats_json[id(priors)][1]) <= 3


def test_the_number_of_cached_priors_is_bounded():
    many = [Priors(ctr=Prior(0.5, float(s))) for s in range(1, 30)]
    for priors in many:
        window_record("user", "u1", 0, 60_000, pack_window(1, 0, 0, 0), priors)
        assert len(rec._stats_json) <= rec.STATS_CACHE_PRIORS


def test_score_records_carry_the_view_and_its_as_of_times():
    records = score_records(["e1", "e2"], ["u1", "u2"], ["i1", "i2"], [1000, 2000], [0.25, 0.5], "v9", [0, 60_000])
    assert [(d, k) for d, k, _ in records] == [("scores", b"e1"), ("scores", b"e2")]
    assert orjson.loads(records[1][2]) == {"event_id": "e2", "user_id": "u2", "item_id": "i2", "ts": 2000,
                                           "score": 0.5, "model_version": "v9", "features_as_of": 2000,
                                           "item_features_as_of": 60_000}


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ['","', '\\', '"', '\\"', '\\","', "", ",", "\n\x00", "é🙂"])  # what could confuse a split
views = st.lists(st.tuples(text, text, text, st.integers(min_value=0, max_value=1 << 53),
                           st.floats(min_value=0.0, max_value=1.0) | st.sampled_from([1e-7, 5e-324, 1.0 - 2**-53]),
                           st.integers(min_value=0, max_value=1 << 53)), max_size=20)


@settings(max_examples=300, deadline=None)
@given(views, text)
def test_score_record_bytes_equal_the_whole_dict(rows, version):
    # Assembled from column-wise encodings and a template: the bytes of each record must be
    # those of orjson.dumps of its dict, whatever the ids hold.
    columns = [list(c) for c in zip(*rows)] if rows else [[] for _ in range(6)]
    event_ids, user_ids, item_ids, ts, scores, cuts = columns
    expected = [("scores", e.encode(), orjson.dumps({
        "event_id": e, "user_id": u, "item_id": i, "ts": t, "score": s, "model_version": version,
        "features_as_of": t, "item_features_as_of": c})) for e, u, i, t, s, c in rows]
    assert score_records(event_ids, user_ids, item_ids, ts, scores, version, cuts) == expected


@settings(max_examples=500, deadline=None)
@given(text | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=8))
def test_json_string_equals_orjson(value):
    assert rec.json_string(value) == orjson.dumps(value)
