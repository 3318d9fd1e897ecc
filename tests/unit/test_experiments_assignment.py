"""Assignment: GrowthBook's published hash and bucket vectors, determinism, weights, independence."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.assignment import (
    Assigner,
    bucket_ranges,
    choose_arm,
    growthbook_hash,
    growthbook_hash_many,
    independence,
)

# growthbook sdk test cases (tests/cases.json "hash", spec 0.7.1): (seed, value, version, n)
HASH_CASES = [
    ("", "a", 1, 0.22), ("", "b", 1, 0.077), ("b", "a", 1, 0.946), ("ef", "d", 1, 0.652),
    ("asdf", "8952klfjas09ujk", 1, 0.549), ("", "123", 1, 0.011), ("", '___)((*":&', 1, 0.563),
    ("seed", "a", 2, 0.0505), ("seed", "b", 2, 0.2696), ("foo", "ab", 2, 0.2575), ("foo", "def", 2, 0.2019),
    ("89123klj", "8952klfjas09ujkasdf", 2, 0.124), ("90850943850283058242805", "123", 2, 0.7516),
    ("()**(%$##$%#$#", '___)((*":&', 2, 0.0128), ("abc", "def", 99, None),
]  # fmt: skip
# the same file's "getBucketRange" cases with weights that sum to 1: (arms, coverage, weights, ranges)
RANGE_CASES = [
    (2, 1.0, None, [(0, 0.5), (0.5, 1)]), (2, 0.5, None, [(0, 0.25), (0.5, 0.75)]),
    (2, 0.0, None, [(0, 0), (0.5, 0.5)]), (4, 1.0, None, [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
    (2, 1.0, (0.4, 0.6), [(0, 0.4), (0.4, 1)]), (3, 1.0, (0.2, 0.3, 0.5), [(0, 0.2), (0.2, 0.5), (0.5, 1)]),
    (3, 0.2, (0.2, 0.3, 0.5), [(0, 0.04), (0.2, 0.26), (0.5, 0.6)]),
]  # fmt: skip
# and its "chooseVariation" cases: (n, ranges, arm)
CHOOSE_CASES = [
    (0.2, [(0, 0.5), (0.5, 1)], 0), (0.6, [(0, 0.5), (0.5, 1)], 1), (0, [(0, 0.5), (0.5, 1)], 0),
    (0.5, [(0, 0.5), (0.5, 1)], 1), (0.4, [(0, 0.25), (0.5, 0.75)], -1), (0.8, [(0, 0.25), (0.5, 0.75)], -1),
    (0.25, [(0, 0.25), (0.5, 0.75)], -1), (0.5, [(0, 0.5), (0.5, 0.5), (0.5, 1)], 2),
]  # fmt: skip


@pytest.mark.parametrize(("seed", "value", "version", "expected"), HASH_CASES)
def test_hash_matches_growthbooks_vectors(seed: str, value: str, version: int, expected: float | None) -> None:
    assert growthbook_hash(seed, value, version) == expected


def test_vectorised_hash_equals_the_scalar_one() -> None:
    rng = np.random.default_rng(3)
    values = ["".join(chr(c) for c in rng.integers(32, 127, rng.integers(0, 20))) for _ in range(2000)]
    values += [f"u{n}" for n in range(2000)] + [v for _, v, version, _ in HASH_CASES if version == 2]
    many = growthbook_hash_many("exp-7", values)
    assert many.tolist() == [growthbook_hash("exp-7", v) for v in values]


@pytest.mark.parametrize(("arms", "coverage", "weights", "expected"), RANGE_CASES)
def test_bucket_ranges_match_growthbooks(arms: int, coverage: float, weights: tuple | None, expected: list) -> None:
    got = bucket_ranges(arms, coverage, weights)
    assert [x for r in got for x in r] == pytest.approx([x for r in expected for x in r])


@pytest.mark.parametrize(("n", "ranges", "arm"), CHOOSE_CASES)
def test_choose_arm_matches_growthbooks(n: float, ranges: list, arm: int) -> None:
    assert choose_arm(n, ranges) == arm


def test_weights_are_relative_and_bad_ones_refused() -> None:
    assert bucket_ranges(2, 1.0, (1, 3)) == [(0.0, 0.25), (0.25, 1.0)]
    for bad in ((1, -1), (0, 0), (1, float("nan")), (1, 2, 3)):
        with pytest.raises(ValueError, match="weights"):
            bucket_ranges(2, 1.0, bad)
    with pytest.raises(ValueError, match="coverage"):
        Assigner("x", coverage=1.5)


def test_assignment_is_deterministic_weighted_and_respects_coverage() -> None:
    ids = [f"u{n}" for n in range(20_000)]
    a = Assigner("checkout-2", weights=(1, 3))
    arms = a.assign(ids)
    assert arms.tolist() == Assigner("checkout-2", weights=(1, 3)).assign(ids).tolist()
    assert [a.arm_of(u) for u in ids[:500]] == arms[:500].tolist()
    share = float((arms == 1).mean())
    assert abs(share - 0.75) < 4 * np.sqrt(0.75 * 0.25 / len(ids))
    half = Assigner("checkout-2", weights=(1, 3), coverage=0.5).assign(ids)
    assert abs(float((half >= 0).mean()) - 0.5) < 0.02
    inside = half >= 0
    assert (half[inside] == arms[inside]).all()  # ramping coverage keeps every user's arm


def test_salts_assign_independently_and_the_check_catches_dependence() -> None:
    ids = [f"u{n}" for n in range(50_000)]
    a = Assigner("exp-1").assign(ids)
    b = Assigner("exp-2").assign(ids)
    _, p = independence(a, b)
    assert p > 0.001
    assert (a != b).any()
    # the same salt gives the same assignment: maximally dependent
    _, p_same = independence(a, Assigner("exp-1").assign(ids))
    assert p_same < 1e-100
    # a hand computation of the 2x2 statistic
    x = np.array([0] * 30 + [1] * 70)
    y = np.array([0] * 20 + [1] * 10 + [0] * 20 + [1] * 50)
    chi2, _ = independence(x, y)
    table = np.array([[20, 10], [20, 50]])
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    assert chi2 == pytest.approx(((table - expected) ** 2 / expected).sum())
