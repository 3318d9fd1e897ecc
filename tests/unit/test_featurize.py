"""featurize() against a plain per-row reference written here, so the bucket-id cache can never change a result.

The reference hashes every id of every row with ``zlib.crc32`` and computes each dense
value with ``math`` on Python floats, row by row, from the documented count layout
``counts[k, h, t]`` (kind, horizon, event type). Batches repeat ids heavily (as real
traffic does), mix in ids never seen before, and reuse the same ids under other bucket
counts, so cache hits, misses, emptying and per-bucket-count separation are all exercised.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import features.spec as fs
from features.spec import FeatureSpec, clear_bucket_cache, featurize, stable_hash_column

ODD_IDS = ["", "ü-1", "用户-7", "🙂", "u" * 300, "u42 ", "U42", "u42"]  # empty, non-ASCII, long, near-duplicates


def reference(spec: FeatureSpec, batch: dict) -> tuple[np.ndarray, np.ndarray]:
    """Row by row: crc32 of each UTF-8 id modulo its bucket count, math.* for the dense values."""
    n_h, n_t = len(spec.horizons), 4
    p = spec.priors
    dense, sparse = [], []
    for r in range(len(batch["user_ids"])):
        c = [float(v) for v in batch["counts"][r]]

        def at(kind: int, h: int, t: int, c: list[float] = c) -> float:
            return c[(kind * n_h + h) * n_t + t]

        row = []
        for kind in range(3):  # user, item, user_cat
            for h in range(n_h):
                views, clicks, carts, purchases = (at(kind, h, t) for t in range(n_t))
                row.append(math.log1p(views))
                row.append((clicks + p.ctr.mean * p.ctr.strength) / (views + p.ctr.strength))
                row.append((carts + p.cart_per_click.mean * p.cart_per_click.strength) / (clicks + p.cart_per_click.strength))
                row.append((purchases + p.purchase_per_view.mean * p.purchase_per_view.strength) / (views + p.purchase_per_view.strength))
        row += [(at(2, h, 0) + 1.0) / (at(0, h, 0) + 5.0) for h in range(n_h)]  # user_cat views share
        price = float(batch["prices"][r])
        row.append(math.log(price))
        dense.append(row)
        small = spec.small_buckets
        sparse.append(
            [
                zlib.crc32(batch["user_ids"][r].encode("utf-8")) % spec.user_buckets,
                zlib.crc32(batch["item_ids"][r].encode("utf-8")) % spec.item_buckets,
                zlib.crc32(batch["categories"][r].encode("utf-8")) % small,
                zlib.crc32(batch["countries"][r].encode("utf-8")) % small,
                zlib.crc32(batch["devices"][r].encode("utf-8")) % small,
                int(batch["ts_ms"][r]) // 3_600_000 % 24,
                min(max(math.floor(math.log2(max(price, 1.0))), 0), spec.price_buckets - 1),
            ]
        )
    return np.array(dense, dtype=np.float64).astype(np.float32).reshape(-1, 40), np.array(sparse, dtype=np.int64).reshape(-1, 7)


def make_batch(n: int, rng: np.random.Generator, n_users: int = 300, n_items: int = 200) -> dict:
    """n views with heavy-tailed (Zipf-like) ids, some odd ids, and a few ids never used before."""
    users = [f"u{i}" for i in np.minimum(rng.zipf(1.5, n), n_users)]
    items = [f"i{i}" for i in np.minimum(rng.zipf(1.3, n), n_items)]
    for r in rng.choice(n, size=min(n, 5), replace=False):
        users[r] = ODD_IDS[int(rng.integers(len(ODD_IDS)))]
        items[r] = f"fresh-{rng.integers(10**12)}"
    return {
        "counts": rng.integers(0, 60, (n, 36)) * (rng.random((n, 36)) < 0.7),  # many zeros
        "user_ids": users,
        "item_ids": items,
        "categories": [str(x) for x in rng.choice(["Electronics", "Clothing", "Home", "Sports", "Books", "Garden"], n)],
        "countries": [str(x) for x in rng.choice(["US", "UK", "DE", "FR", "JP", "ZZ"], n)],
        "devices": [str(x) for x in rng.choice(["mobile", "desktop", "tablet"], n)],
        "ts_ms": 1_767_225_600_000 + rng.integers(0, 3 * 86_400_000, n),
        "prices": rng.lognormal(3.5, 2.0, n),  # below 1 and above 2**16 too
    }


def assert_same(spec: FeatureSpec, batch: dict) -> None:
    dense, sparse = featurize(spec, *batch.values())
    ref_dense, ref_sparse = reference(spec, batch)
    assert dense.dtype == np.float32 and sparse.dtype == np.int64
    assert dense.shape == ref_dense.shape and sparse.shape == ref_sparse.shape
    assert dense.tobytes() == ref_dense.tobytes()  # bit for bit
    assert sparse.tobytes() == ref_sparse.tobytes()


@pytest.mark.parametrize("n", [1, 7, 64, 1024])
def test_featurize_equals_the_reference_cold_warm_and_shuffled(n):
    rng = np.random.default_rng(n)
    spec = FeatureSpec()
    batches = [make_batch(n, rng) for _ in range(4)]
    clear_bucket_cache()
    for batch in batches:  # first sight: mostly misses
        assert_same(spec, batch)
    for batch in batches:  # again: every id cached
        assert_same(spec, batch)
    order = rng.permutation(n)
    shuffled = {k: v[order] if isinstance(v, np.ndarray) else [v[i] for i in order] for k, v in batches[0].items()}
    assert_same(spec, shuffled)


def test_other_bucket_counts_never_get_cached_buckets_of_the_default():
    rng = np.random.default_rng(1)
    small = FeatureSpec(user_buckets=1_000, item_buckets=97, small_buckets=7)
    batch = make_batch(256, rng)
    clear_bucket_cache()
    for spec in (FeatureSpec(), small, FeatureSpec(), small):
        assert_same(spec, batch)


def test_the_cache_stays_bounded_and_exact_when_ids_outnumber_it(monkeypatch):
    monkeypatch.setattr(fs, "BUCKET_CACHE_ENTRIES", 50)
    rng = np.random.default_rng(2)
    spec = FeatureSpec()
    clear_bucket_cache()
    for _ in range(20):
        batch = make_batch(40, rng, n_users=5_000, n_items=5_000)
        assert_same(spec, batch)
        for buckets, cache in fs._bucket_cache.items():
            assert len(cache) <= 50 + 40, buckets  # the limit plus one batch


def test_the_number_of_cached_bucket_counts_is_bounded(monkeypatch):
    monkeypatch.setattr(fs, "BUCKET_CACHE_TABLES", 2)
    rng = np.random.default_rng(3)
    batch = make_batch(30, rng)
    clear_bucket_cache()
    for buckets in (10, 11, 12, 13, 10, 14):
        assert_same(FeatureSpec(user_buckets=buckets, item_buckets=buckets + 100, small_buckets=buckets + 3), batch)
        assert len(fs._bucket_cache) <= 2


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12), max_size=40),
    st.integers(min_value=1, max_value=70_000),
)
def test_stable_hash_column_equals_per_value_crc32(values, buckets):
    values = values + values[::2]  # repeats, served from the cache
    expected = [zlib.crc32(v.encode("utf-8")) % buckets for v in values]
    for _ in range(2):  # the first call may miss, the second hits
        got = stable_hash_column(values, buckets)
        assert got.dtype == np.int64 and got.tolist() == expected


def test_a_non_string_id_fails_instead_of_hashing_something_else():
    clear_bucket_cache()
    stable_hash_column(["5"], 64)  # "5" is cached; the int 5 must not be served its bucket
    with pytest.raises(AttributeError):
        stable_hash_column([5], 64)  # type: ignore[list-item]
