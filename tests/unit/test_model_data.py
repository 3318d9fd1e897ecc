"""Loading examples, the three-part time split and the normaliser."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from features.spec import FeatureSpec, featurize
from models.data import PARTS, ExamplesError, Normaliser, TimeSplit, load_examples

T0 = 1_732_233_600_000


def example(n: int, **overrides) -> dict:
    rec = {
        "event_id": f"e{n}",
        "ts": T0 + n * 1000,
        "user_id": f"u{n % 3}",
        "item_id": f"i{n % 5}",
        "category": "Books",
        "price": 10.0 + n,
        "country": "US",
        "device": "mobile",
        "session_id": "s1",
        "counts": [n + j for j in range(36)],
        "item_as_of": T0,
        "labels": {"click": n % 2, "add_cart": 0, "purchase": 0},
    }
    return rec | overrides


def write(path, records, extra=b""):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records) + extra)
    return path


def test_loads_columns_in_file_order(tmp_path):
    path = write(tmp_path / "ex.jsonl", [example(n) for n in range(10)], extra=b"\n")
    ex = load_examples(path)
    assert len(ex) == 10
    assert ex.event_id[3] == "e3" and ex.user_id[4] == "u1" and ex.item_id[7] == "i2"
    assert ex.ts.dtype == np.int64 and ex.ts[2] == T0 + 2000
    assert ex.counts.shape == (10, 36) and ex.counts[2, 5] == 7
    assert ex.click.tolist() == [n % 2 for n in range(10)]
    assert ex.price[1] == 11.0


def test_max_examples_reads_the_first_lines(tmp_path):
    path = write(tmp_path / "ex.jsonl", [example(n) for n in range(10)])
    assert load_examples(path, max_examples=4).event_id == ["e0", "e1", "e2", "e3"]


def test_featurize_equals_the_spec_function(tmp_path):
    path = write(tmp_path / "ex.jsonl", [example(n) for n in range(6)])
    ex = load_examples(path)
    spec = FeatureSpec()
    dense, sparse = ex.featurize(spec)
    d2, s2 = featurize(spec, ex.counts, ex.user_id, ex.item_id, ex.category, ex.country, ex.device, ex.ts, ex.price)
    assert np.array_equal(dense, d2) and np.array_equal(sparse, s2)


def test_select_keeps_rows_aligned(tmp_path):
    ex = load_examples(write(tmp_path / "ex.jsonl", [example(n) for n in range(6)]))
    part = ex.select(np.array([False, True, False, True, False, False]))
    assert part.event_id == ["e1", "e3"] and part.counts[1, 0] == 3 and part.click.tolist() == [1, 1]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "holds no examples"),
        (orjson.dumps(example(0)) + b"\n{not json\n", "line 2: not JSON"),
        (b"[1, 2]\n", "line 1: expected a JSON object"),
        (orjson.dumps(example(0, counts=[1, 2, 3])) + b"\n", "record 1: counts has 3 values, expected 36"),
        (orjson.dumps({k: v for k, v in example(0).items() if k != "user_id"}) + b"\n", "missing field 'user_id'"),
        (orjson.dumps(example(0, labels={"add_cart": 0})) + b"\n", "label"),
    ],
)
def test_malformed_files_name_the_problem(tmp_path, content, needle):
    path = tmp_path / "ex.jsonl"
    path.write_bytes(content)
    with pytest.raises(ExamplesError, match=needle) as info:
        load_examples(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ExamplesError, match="not found"):
        load_examples(tmp_path / "nope.jsonl")


def test_split_cuts_train_validation_test_by_time():
    ts = np.array([0, 10, 20, 600, 700, 749, 750, 990, 1000], dtype=np.int64)
    split = TimeSplit.from_fractions(ts, val_fraction=0.15, test_fraction=0.25)
    assert (split.start_ms, split.val_start_ms, split.test_start_ms, split.end_ms) == (0, 600, 750, 1000)
    train, val, test = split.masks(ts)
    assert ts[train].tolist() == [0, 10, 20]
    assert ts[val].tolist() == [600, 700, 749]
    assert ts[test].tolist() == [750, 990, 1000]
    assert not (train & val).any() and not (train & test).any() and not (val & test).any()
    assert [split.bounds(p) for p in PARTS] == [(0, 599), (600, 749), (750, 1000)]


def test_every_example_is_in_exactly_one_part_and_later_parts_are_later():
    ts = np.random.default_rng(0).integers(1_000, 10**9, 5_000)
    split = TimeSplit.from_fractions(ts, 0.1, 0.1)
    train, val, test = split.masks(ts)
    assert (train.astype(int) + val + test == 1).all()
    assert ts[train].max() < ts[val].min() and ts[val].max() < ts[test].min()
    assert ts[test].max() == split.end_ms and ts[train].min() == split.start_ms


def test_views_within_the_label_wait_of_the_end_belong_to_no_part():
    ts = np.array([0, 10, 20, 600, 700, 749, 750, 990, 1000, 1100, 1200], dtype=np.int64)
    split = TimeSplit.from_fractions(ts, val_fraction=0.15, test_fraction=0.25, label_wait_ms=200)
    assert (split.start_ms, split.val_start_ms, split.test_start_ms, split.end_ms) == (0, 600, 750, 1000)
    train, val, test = split.masks(ts)
    assert ts[~(train | val | test)].tolist() == [1100, 1200]  # their clicks could still be missing
    assert TimeSplit.from_dict(split.to_dict()) == split
    older = {k: v for k, v in split.to_dict().items() if k != "label_wait_ms"}  # artifacts before the wait
    assert TimeSplit.from_dict(older).label_wait_ms == 0
    with pytest.raises(ExamplesError, match="not more than the label wait of 2000 ms"):
        TimeSplit.from_fractions(ts, 0.15, 0.25, label_wait_ms=2000)


def test_rows_outside_the_recorded_range_belong_to_no_part():
    split = TimeSplit(start_ms=100, val_start_ms=200, test_start_ms=300, end_ms=400, val_fraction=0.3, test_fraction=0.3)
    masks = split.masks(np.array([50, 150, 250, 350, 450]))
    assert [m.tolist() for m in masks] == [[False, True, False, False, False], [False, False, True, False, False], [False, False, False, True, False]]


def test_split_round_trips_through_a_dict():
    split = TimeSplit.from_fractions(np.array([5, 77, 1_000_003]), 0.2, 0.05)
    assert TimeSplit.from_dict(split.to_dict()) == split
    with pytest.raises(KeyError):
        TimeSplit.from_dict({"split_ts_ms": 800, "val_fraction": 0.2})  # the former single split


@pytest.mark.parametrize(
    ("val", "test", "needle"),
    [
        (0.0, 0.1, r"val_fraction must be in \(0, 1\), got 0.0"),
        (1.0, 0.1, r"val_fraction must be in \(0, 1\), got 1.0"),
        (0.1, -0.1, r"test_fraction must be in \(0, 1\), got -0.1"),
        (0.1, 0.0, r"test_fraction must be in \(0, 1\), got 0.0"),
        (0.5, 0.5, r"val_fraction \+ test_fraction must be < 1 to leave a training part, got 0.5 \+ 0.5"),
    ],
)
def test_split_fractions_are_checked(val, test, needle):
    with pytest.raises(ValueError, match=needle):
        TimeSplit.from_fractions(np.array([0, 1]), val, test)


def test_bounds_must_be_ordered_integers():
    with pytest.raises(ValueError, match=r"start <= val_start <= test_start <= end \(ms\), got \(0, 300, 200, 400\)"):
        TimeSplit(start_ms=0, val_start_ms=300, test_start_ms=200, end_ms=400, val_fraction=0.1, test_fraction=0.1)


def test_split_with_an_empty_part_fails_naming_every_part():
    split = TimeSplit.from_fractions(np.array([0, 1000]), 0.1, 0.1)
    with pytest.raises(ExamplesError, match=r"train \[0, 799\] ms: 1, validation \[800, 899\] ms: 0, test \[900, 1000\] ms: 1"):
        split.masks(np.array([0, 1000]))


def test_normaliser_uses_the_rows_it_is_fitted_on():
    train = np.array([[1.0, 7.0], [3.0, 7.0], [5.0, 7.0]], dtype=np.float32)
    norm = Normaliser.fit(train)
    assert norm.mean.tolist() == pytest.approx([3.0, 7.0])
    assert norm.inv_std.tolist() == pytest.approx([1 / np.std([1.0, 3.0, 5.0]), 1.0])  # constant column: std 1
    later = np.array([[3.0, 8.0]], dtype=np.float32)
    assert norm.apply(later).tolist() == [[0.0, 1.0]]
    again = Normaliser.from_dict(norm.to_dict())
    assert np.array_equal(again.apply(train), norm.apply(train))
