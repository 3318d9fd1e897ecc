"""Who gets which arm: a salted hash of ``user_id`` into weighted buckets (GrowthBook's hash v2).

A user's bucket is a number n in [0, 1) computed from the experiment's salt and the user id
alone, so the assignment is deterministic (the same user gets the same arm in every process,
run and language that implements the hash) and needs no stored table. The scheme is
GrowthBook's SDK hash, version 2 (``packages/sdk-js/src/util.ts``; the build-your-own-SDK spec,
https://docs.growthbook.io/lib/build-your-own):

    fnv1a32(s)   32-bit FNV-1a over the string's characters (offset basis 0x811c9dc5,
                 prime 0x01000193, xor then multiply, mod 2**32)
    n            fnv1a32(str(fnv1a32(salt + user_id))) % 10000 / 10000

Arm i owns ``[cum_i, cum_i + coverage * w_i)``, where ``w`` are the weights normalised to sum 1
and ``cum_i`` the sum of the weights before it; a user whose n falls in no range (coverage
< 1) is not in the experiment. Ramping coverage up keeps every user in the arm they had.
The salt defaults to the experiment's name: a new salt re-randomises, and two experiments
with different salts assign independently (version 1, which appended the salt, correlated
experiments with similar keys; :func:`independence` is the check). Characters are hashed as
their code points, which equal JavaScript's UTF-16 code units for the Basic Multilingual
Plane: keep ids and salts to it (the generator's ids are ASCII).

>>> growthbook_hash("seed", "a"), growthbook_hash("", "a", version=1), growthbook_hash("abc", "def", version=99)
(0.0505, 0.22, None)
>>> Assigner("exp-1", weights=(0.5, 0.5)).arm_of("u17")
1
>>> bucket_ranges(3, coverage=0.2, weights=(0.2, 0.3, 0.5))
[(0.0, 0.04), (0.2, 0.26), (0.5, 0.6)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
MASK32 = 0xFFFFFFFF
HASH_VERSION = 2  # the version this project assigns with


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a of ``text``'s code points.

    >>> hex(fnv1a32(""))
    '0x811c9dc5'
    """
    h = FNV_OFFSET
    for ch in text:
        h = ((h ^ ord(ch)) * FNV_PRIME) & MASK32
    return h


def growthbook_hash(salt: str, value: str, version: int = HASH_VERSION) -> float | None:
    """GrowthBook's bucket of ``value`` under ``salt``: a float in [0, 1), None for an unknown version.

    Version 1 (``fnv1a32(value + salt) % 1000 / 1000``) is here for its test vectors only.
    """
    if version == 2:
        return fnv1a32(str(fnv1a32(salt + value))) % 10_000 / 10_000
    if version == 1:
        return fnv1a32(value + salt) % 1000 / 1000
    return None


def _fnv_columns(h: np.ndarray, chars: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Continue FNV-1a hashes ``h`` (n,) uint64 over the rows of ``chars`` (n, L), each up to its length."""
    for col in range(chars.shape[1]):
        live = col < lengths
        step = ((h ^ chars[:, col]) * FNV_PRIME) & MASK32
        h = np.where(live, step, h)
    return h


def growthbook_hash_many(salt: str, values: Sequence[str]) -> np.ndarray:
    """:func:`growthbook_hash` (version 2) of many values at once: (n,) float64, vectorised.

    >>> growthbook_hash_many("seed", ["a", "b"]).tolist()
    [0.0505, 0.2696]
    """
    n = len(values)
    if n == 0:
        return np.zeros(0)
    codes = [[ord(c) for c in v] for v in values]
    lengths = np.array([len(c) for c in codes], dtype=np.int64)
    chars = np.zeros((n, int(lengths.max()) if n else 0), dtype=np.uint64)
    for row, c in enumerate(codes):
        chars[row, : len(c)] = c
    h = _fnv_columns(np.full(n, fnv1a32(salt), dtype=np.uint64), chars, lengths)
    # the decimal text of each first hash (at most 10 digits), most significant digit first
    digits = np.zeros((n, 10), dtype=np.uint64)
    ndig = np.ones(n, dtype=np.int64)
    rest = h.copy()
    for d in range(10):
        digits[:, 9 - d] = rest % 10
        rest //= 10
        ndig = np.where(rest > 0, d + 2, ndig)
    # left-align the digits of each row
    shift = 10 - ndig
    cols = (np.arange(10)[None, :] + shift[:, None]).clip(max=9)
    aligned = np.take_along_axis(digits, cols, axis=1) + ord("0")
    h2 = _fnv_columns(np.full(n, FNV_OFFSET, dtype=np.uint64), aligned, ndig)
    return (h2 % 10_000).astype(np.float64) / 10_000


def bucket_ranges(arms: int, coverage: float = 1.0, weights: Sequence[float] | None = None) -> list[tuple[float, float]]:
    """The bucket range of each arm: ``[cum_i, cum_i + coverage * w_i)`` with the weights normalised.

    Unlike GrowthBook's SDK, which falls back to equal weights when they do not sum to 1,
    weights here are relative (``(1, 3)`` means 25/75) and a bad one is an error.
    """
    if arms < 1:
        raise ValueError(f"an experiment needs at least one arm, got {arms}")
    if not 0.0 <= coverage <= 1.0:
        raise ValueError(f"coverage must be between 0 and 1, got {coverage}")
    w = np.ones(arms) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != arms or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be {arms} non-negative numbers with a positive sum, got {tuple(w.tolist())}")
    w = w / w.sum()
    starts = np.concatenate([[0.0], np.cumsum(w)[:-1]])
    return [(round(float(s), 4), round(float(s + coverage * wi), 4)) for s, wi in zip(starts, w, strict=True)]


def choose_arm(n: float, ranges: Sequence[tuple[float, float]]) -> int:
    """The arm whose range holds ``n``, or -1 when none does.

    >>> choose_arm(0.5, [(0.0, 0.25), (0.5, 0.75)]), choose_arm(0.4, [(0.0, 0.25), (0.5, 0.75)])
    (1, -1)
    """
    for arm, (lo, hi) in enumerate(ranges):
        if lo <= n < hi:
            return arm
    return -1


@dataclass(frozen=True)
class Assigner:
    """Assigns users to arms by :func:`growthbook_hash` under ``salt``; -1 means not in the experiment."""

    salt: str
    weights: tuple[float, ...] = (0.5, 0.5)  # relative share of each arm
    coverage: float = 1.0  # share of users in the experiment at all

    def __post_init__(self) -> None:
        bucket_ranges(len(self.weights), self.coverage, self.weights)  # validates

    @property
    def ranges(self) -> list[tuple[float, float]]:
        return bucket_ranges(len(self.weights), self.coverage, self.weights)

    def arm_of(self, user_id: str) -> int:
        """One user's arm (index into the weights), -1 when excluded."""
        n = growthbook_hash(self.salt, user_id)
        assert n is not None
        return choose_arm(n, self.ranges)

    def assign(self, user_ids: Sequence[str]) -> np.ndarray:
        """(n,) int8 arm of every user, -1 when excluded; equal to :meth:`arm_of` of each."""
        n = growthbook_hash_many(self.salt, user_ids)
        arm = np.full(len(n), -1, dtype=np.int8)
        for i, (lo, hi) in enumerate(self.ranges):
            arm[(n >= lo) & (n < hi)] = i
        return arm


def independence(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Pearson chi-square test that two experiments' arms (two-arm, same users) are independent.

    ``a`` and ``b`` (n,) hold 0/1 arms of the same users (excluded users, -1, are dropped);
    returns ``(chi2, p)`` from the 2x2 table, without continuity correction.
    """
    keep = (a >= 0) & (b >= 0)
    table = np.zeros((2, 2), dtype=np.int64)
    np.add.at(table, (a[keep].astype(np.int64), b[keep].astype(np.int64)), 1)
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)
