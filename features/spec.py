"""What the model sees: the point-in-time count layout and how counts become model inputs.

The features flow attaches to every accepted event a vector of raw integer counts, as of
the event's time (see ``features/README.md`` for the exact semantics):

    counts[k, h, t]   k = entity kind (user, item, user_cat)
                      h = horizon (5m, 1h, 24h by default)
                      t = event type (view, click, add_cart, purchase)

flattened in that order (:meth:`FeatureSpec.count_index`). Counts are integers, so the
vector computed live and the one computed in a backfill compare bit for bit.

:func:`featurize` turns counts plus the event's context into the DLRM's inputs, the same
way in training and in serving:

* dense (float32): per kind and horizon ``log1p(views)`` and three smoothed ratios (CTR,
  add-to-cart per click, purchase per view), the share of the user's views that fall in
  the item's category, and ``log(price)``;
* sparse (int64): hashed user and item ids, category, country, device, hour of day (UTC)
  and a log2 price bucket.

A :class:`FeatureSpec` is stored in every model artifact; :meth:`FeatureSpec.diff` names
what differs when an artifact does not fit the flow.

>>> spec = FeatureSpec()
>>> spec.count_len, len(spec.dense_names), len(spec.sparse_names)
(36, 40, 7)
>>> spec.count_index("item", "1h", "click")
17
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import numpy as np

from events.schema import EVENT_TYPE_INDEX, EVENT_TYPES

KINDS: Final = ("user", "item", "user_cat")
N_TYPES: Final = len(EVENT_TYPES)


@dataclass(frozen=True)
class Horizon:
    """A sawtooth window: the last ``length_ms``, with its start rounded down to ``hop_ms``.

    For an event at time t the window covers ``[floor((t - length_ms) / hop_ms) * hop_ms, t]``
    (Chronon's sawtooth), so state is a few tiles per horizon instead of raw events.
    """

    name: str
    length_ms: int
    hop_ms: int

    def start(self, t_ms: int) -> int:
        """First millisecond covered for an event at ``t_ms``.

        >>> Horizon("5m", 300_000, 60_000).start(1_000_000)
        660000
        """
        return (t_ms - self.length_ms) // self.hop_ms * self.hop_ms


DEFAULT_HORIZONS: Final = (
    Horizon("5m", 300_000, 60_000),
    Horizon("1h", 3_600_000, 300_000),
    Horizon("24h", 86_400_000, 3_600_000),
)


@dataclass(frozen=True)
class Prior:
    """Beta prior for a smoothed ratio: ``(num + mean * strength) / (den + strength)``.

    With ``strength`` pseudo-observations a tiny count gives a ratio near ``mean``
    instead of 0 or 1.

    >>> Prior(0.5, 4.0).smooth(0, 0), Prior(0.5, 4.0).smooth(1, 1)
    (0.5, 0.6)
    """

    mean: float
    strength: float

    def smooth(self, num: float, den: float) -> float:
        return (num + self.mean * self.strength) / (den + self.strength)


@dataclass(frozen=True)
class Priors:
    """Priors of the smoothed ratios, set near the generator's funnel (view .5, click .3,
    add_cart .15, purchase .05 of all events, i.e. CTR .6, cart per click .5, purchase per
    view .1)."""

    ctr: Prior = Prior(0.6, 5.0)  # clicks / views
    cart_per_click: Prior = Prior(0.5, 5.0)  # add_carts / clicks
    purchase_per_click: Prior = Prior(0.167, 5.0)  # purchases / clicks
    purchase_per_view: Prior = Prior(0.1, 5.0)  # purchases / views


@dataclass(frozen=True)
class FeatureSpec:
    """The feature layout a model was trained on; it must equal the flow's to load."""

    horizons: tuple[Horizon, ...] = DEFAULT_HORIZONS
    window_ms: int = 60_000  # tumbling window and item tile length
    item_delay_ms: int = 6_000  # item counts cover closed windows ending >= this before the event
    priors: Priors = field(default_factory=Priors)
    user_buckets: int = 16_384  # hash buckets of the user-id embedding table
    item_buckets: int = 8_192  # hash buckets of the item-id embedding table
    small_buckets: int = 64  # buckets of category, country and device (no collisions among the known values)
    price_buckets: int = 16  # floor(log2(price)) clipped to [0, price_buckets)
    version: int = 1  # bump when featurize() changes meaning

    @property
    def count_len(self) -> int:
        return len(KINDS) * len(self.horizons) * N_TYPES

    def count_index(self, kind: str, horizon: str, event_type: str) -> int:
        k = KINDS.index(kind)
        h = [x.name for x in self.horizons].index(horizon)
        return (k * len(self.horizons) + h) * N_TYPES + EVENT_TYPE_INDEX[event_type]

    @property
    def dense_names(self) -> list[str]:
        names = []
        for kind in KINDS:
            for h in self.horizons:
                p = f"{kind}_{h.name}"
                names += [f"{p}_log_views", f"{p}_ctr", f"{p}_cart_per_click", f"{p}_purchase_per_view"]
        names += [f"user_cat_{h.name}_view_share" for h in self.horizons]
        names.append("log_price")
        return names

    @property
    def sparse_names(self) -> list[str]:
        return ["user_id", "item_id", "category", "country", "device", "hour", "price_bucket"]

    @property
    def sparse_cardinalities(self) -> list[int]:
        s = self.small_buckets
        return [self.user_buckets, self.item_buckets, s, s, s, 24, self.price_buckets]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        priors = Priors(**{k: Prior(**v) for k, v in d["priors"].items()})
        horizons = tuple(Horizon(**h) for h in d["horizons"])
        return cls(**{**d, "horizons": horizons, "priors": priors})

    def diff(self, other: FeatureSpec) -> list[str]:
        """Readable differences, e.g. ``["window_ms: 60000 != 30000"]``; empty when equal."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {mine[k]!r} != {theirs.get(k)!r}" for k in mine if mine[k] != theirs.get(k)]


def stable_hash(value: str, buckets: int) -> int:
    """A process-independent hash bucket (crc32; Python's hash() is salted per process).

    The reference for one value; :func:`featurize` gets the same numbers for whole columns
    through a cache (:func:`stable_hash_column`).

    >>> stable_hash("u42", 16_384)
    4574
    """
    return zlib.crc32(value.encode()) % buckets


# Bucket ids already computed, one dict {value: stable_hash(value, buckets)} per bucket count.
# Why: crc32 of a Python str costs an encode() plus a C call per row, while a stream repeats
# the same users, items, categories, countries and devices over and over, and a dict lookup
# of an id seen before is cheaper (about two thirds of the per-row hashing, 2026-11-22);
# functools.lru_cache and hashing unique values only (np.unique sorts strings) are slower
# than hashing per row. A batch of ids never seen before costs up to twice the per-row
# hashing (the misses are hashed and stored one by one); a stream pays that only until its
# ids are cached.
# Bound: a dict is emptied before it takes new ids once it holds BUCKET_CACHE_ENTRIES, so
# it never holds more than that plus one batch: about 8 MB per bucket count at 2^16 ids of
# up to 17 characters (tracemalloc, keys included), under ~17 MB for the user and item
# tables together (category, country and device share a third, tiny one). 2^16 covers the
# default world (10,000 users, 5,000 items) several times over, so in steady state every
# lookup hits; with more distinct ids, the hot ids of heavy-tailed traffic come back within
# a few batches of an emptying. At most BUCKET_CACHE_TABLES bucket counts are kept
# (featurize uses three). A cached value is the crc32 result itself, so a hit can never
# change an output. Safe under the GIL: a concurrent emptying only turns hits into misses.
BUCKET_CACHE_ENTRIES: Final = 1 << 16
BUCKET_CACHE_TABLES: Final = 8
_bucket_cache: dict[int, dict[str, int]] = {}


def clear_bucket_cache() -> None:
    """Forget every cached bucket id (benchmarks use it to time the all-miss case)."""
    _bucket_cache.clear()


def stable_hash_column(values: Sequence[str], buckets: int) -> np.ndarray:
    """``stable_hash(v, buckets)`` of every value, (len(values),) int64, through the bucket-id cache."""
    cache = _bucket_cache.get(buckets)
    if cache is None:
        if len(_bucket_cache) >= BUCKET_CACHE_TABLES:
            _bucket_cache.clear()
        cache = _bucket_cache.setdefault(buckets, {})
    try:  # the steady state: every id seen before, one C-level pass
        return np.fromiter(map(cache.__getitem__, values), dtype=np.int64, count=len(values))
    except KeyError:
        pass
    # Hash only the ids the cache lacks (a batch of a growing stream has a few new ones),
    # then take the C-level pass again.
    missing = set(values).difference(cache)
    if len(cache) + len(missing) > BUCKET_CACHE_ENTRIES:
        cache.clear()
        missing = set(values)
    for v in missing:
        cache[v] = zlib.crc32(v.encode()) % buckets
    return np.fromiter(map(cache.__getitem__, values), dtype=np.int64, count=len(values))


def featurize(
    spec: FeatureSpec,
    counts: np.ndarray,
    user_ids: list[str],
    item_ids: list[str],
    categories: list[str],
    countries: list[str],
    devices: list[str],
    ts_ms: np.ndarray,
    prices: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs for a batch: ``(dense (B, n_dense) float32, sparse (B, n_sparse) int64)``.

    ``counts`` is ``(B, spec.count_len)``; the other arguments are per-event context.
    """
    counts = np.asarray(counts, dtype=np.float64)
    b = counts.shape[0]
    if counts.ndim != 2 or counts.shape[1] != spec.count_len:
        msg = f"counts must have shape (B, {spec.count_len}), got {counts.shape}"
        raise ValueError(msg)
    c = counts.reshape(b, len(KINDS), len(spec.horizons), N_TYPES)  # (B, K, H, T)
    views, clicks, carts, purchases = (c[..., i] for i in range(N_TYPES))  # (B, K, H) each
    p = spec.priors
    per_kind = np.stack(
        [
            np.log1p(views),
            (clicks + p.ctr.mean * p.ctr.strength) / (views + p.ctr.strength),
            (carts + p.cart_per_click.mean * p.cart_per_click.strength) / (clicks + p.cart_per_click.strength),
            (purchases + p.purchase_per_view.mean * p.purchase_per_view.strength)
            / (views + p.purchase_per_view.strength),
        ],
        axis=-1,
    )  # (B, K, H, 4)
    user_views = views[:, KINDS.index("user")]  # (B, H)
    user_cat_views = views[:, KINDS.index("user_cat")]  # (B, H)
    n_categories = 5.0
    share = (user_cat_views + 1.0) / (user_views + n_categories)  # (B, H)
    prices = np.asarray(prices, dtype=np.float64)
    dense = np.concatenate([per_kind.reshape(b, -1), share, np.log(prices)[:, None]], axis=1)

    s = spec.small_buckets
    hour = (np.asarray(ts_ms, dtype=np.int64) // 3_600_000) % 24
    price_bucket = np.clip(np.floor(np.log2(np.maximum(prices, 1.0))), 0, spec.price_buckets - 1)
    sparse = np.empty((b, len(spec.sparse_names)), dtype=np.int64)
    sparse[:, 0] = stable_hash_column(user_ids, spec.user_buckets)
    sparse[:, 1] = stable_hash_column(item_ids, spec.item_buckets)
    sparse[:, 2] = stable_hash_column(categories, s)
    sparse[:, 3] = stable_hash_column(countries, s)
    sparse[:, 4] = stable_hash_column(devices, s)
    sparse[:, 5] = hour
    sparse[:, 6] = price_bucket
    return dense.astype(np.float32), sparse


def price_bucket(price: float, buckets: int = 16) -> int:
    """The sparse price bucket of one price (``floor(log2(price))`` clipped).

    >>> price_bucket(55.0), price_bucket(0.5)
    (5, 0)
    """
    return int(min(max(math.floor(math.log2(max(price, 1.0))), 0), buckets - 1))
