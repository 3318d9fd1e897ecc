"""The ground-truth world: users, items and their latent parameters, with skew met by construction.

Notation (shapes in comments): U users, I items, C = 5 categories, K latent dimensions.

Skew is rank based, not drawn: the user at activity rank r gets weight ``r ** -s_u`` and
the item at popularity rank r gets ``r ** -s_i`` (ranks shuffled over ids), with the
exponents solved by bisection so that the top ``user_top`` of users carry ``user_share`` of
the activity and the top ``item_top`` of items get ``item_share`` of the views *after* the
preferred / popular / random choice mix (:func:`expected_view_share`). Random Pareto draws
would miss the targets by a seed-dependent margin.

>>> w = zipf_weights(1000, solve_exponent(lambda s: top_share(zipf_weights(1000, s), 0.2), 0.8))
>>> round(top_share(w, 0.2), 4)
0.8
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from events.schema import CATEGORIES, COUNTRIES, DEVICES
from producers.synthetic.config import ConfigError, ModelParams

SEGMENTS: Final = ("Tech", "Fashion", "Home", "Sports", "Books")  # segment k prefers CATEGORIES[k]
GENDERS: Final = ("M", "F", "O")
GENDER_P: Final = (0.49, 0.49, 0.02)
COUNTRY_P: Final = (0.4, 0.2, 0.15, 0.15, 0.1)  # in COUNTRIES order
UTC_OFFSET_H: Final = (-5, 0, 1, 1, 9)  # standard time, in COUNTRIES order
DEVICE_P: Final = (0.6, 0.3, 0.1)  # primary device, in DEVICES order
assert len(SEGMENTS) == len(CATEGORIES) and len(COUNTRY_P) == len(COUNTRIES) == len(UTC_OFFSET_H)
assert len(DEVICE_P) == len(DEVICES)


def zipf_weights(n: int, s: float) -> np.ndarray:
    """Weights ``r ** -s`` for ranks r = 1..n, normalised to sum 1; shape (n,)."""
    w = np.arange(1, n + 1, dtype=np.float64) ** -s
    return w / w.sum()


def top_share(weights: np.ndarray, top: float) -> float:
    """Share of the total carried by the largest ``ceil(top * n)`` weights.

    >>> top_share(np.array([1.0, 1.0, 2.0, 4.0]), 0.25)
    0.5
    """
    k = max(1, int(np.ceil(top * len(weights) - 1e-9)))
    w = np.sort(np.asarray(weights, dtype=np.float64))[::-1]
    total = w.sum()
    return float(w[:k].sum() / total) if total > 0 else 0.0


def solve_exponent(share_of: Callable[[float], float], target: float, hi: float = 12.0) -> float:
    """Bisect for the exponent s at which the increasing function ``share_of(s)`` hits ``target``."""
    lo_share, hi_share = share_of(0.0), share_of(hi)
    if not lo_share <= target <= hi_share:
        msg = f"share {target:g} is out of reach; this world allows {lo_share:.3f} to {hi_share:.3f}"
        raise ConfigError(msg)
    lo = 0.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if share_of(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Users:
    """Per-user attributes, indexed by user number n (``user_id`` = ``u{n}``)."""

    age: np.ndarray  # (U,) int, years 18..70
    gender: np.ndarray  # (U,) index into GENDERS
    country: np.ndarray  # (U,) index into COUNTRIES
    segment: np.ndarray  # (U,) index into SEGMENTS == index of the segment's category
    device: np.ndarray  # (U,) primary device, index into DEVICES
    pref: np.ndarray  # (U, C) category preference, rows sum to 1
    bias: np.ndarray  # (U,) logit units
    taste: np.ndarray  # (U, K) latent taste
    activity: np.ndarray  # (U,) share of sessions, sums to 1


@dataclass(frozen=True)
class Items:
    """Per-item attributes, indexed by item number n (``item_id`` = ``i{n}``)."""

    category: np.ndarray  # (I,) index into CATEGORIES
    price: np.ndarray  # (I,) USD, rounded to cents, >= 0.01
    popularity: np.ndarray  # (I,) rank-based weight, sums to 1
    quality: np.ndarray  # (I,) logit units
    taste: np.ndarray  # (I, K) latent taste
    log_pop_z: np.ndarray  # (I,) standardised log popularity
    log_price_z: np.ndarray  # (I,) standardised log price


@dataclass(frozen=True)
class World:
    """Users, items and the lookup tables item choice needs."""

    users: Users
    items: Items
    user_exponent: float  # s_u of the activity weights
    item_exponent: float  # s_i of the popularity weights
    category_items: tuple[np.ndarray, ...]  # per category: item numbers, (I_c,)
    category_cdf: tuple[np.ndarray, ...]  # per category: cumulative popularity within it, (I_c,)
    popularity_cdf: np.ndarray  # (I,) cumulative global popularity
    pref_cdf: np.ndarray  # (U, C) cumulative category preference
    activity_cdf: np.ndarray  # (U,) cumulative activity


def category_mass(users: Users) -> np.ndarray:
    """Expected share of preferred-route views per category: sum_u activity_u pref_u; (C,)."""
    return users.activity @ users.pref


def expected_view_share(
    popularity: np.ndarray, category: np.ndarray, cat_mass: np.ndarray, params: ModelParams
) -> np.ndarray:
    """Expected share of views per item under the choice mix; (I,), sums to 1.

    preferred: category ~ pref_u, then by popularity within it; popular: by global
    popularity; random: uniform.
    """
    per_cat = np.bincount(category, weights=popularity, minlength=len(CATEGORIES))
    within = popularity / per_cat[category]
    return (
        params.p_preferred * cat_mass[category] * within
        + params.p_popular * popularity
        + params.p_random / len(popularity)
    )


def build_world(params: ModelParams, rng: np.random.Generator) -> World:
    """Draw users and items and solve both skew exponents; deterministic for a given ``rng``."""
    n_users, n_items, n_cat, k = params.users, params.items, len(CATEGORIES), params.latent_dim
    # latent tastes: N(0, v) per coordinate with v chosen so that taste_u . taste_i has sd latent_sd
    taste_sd = np.sqrt(params.latent_sd / np.sqrt(k))
    segment = rng.integers(0, n_cat, n_users)
    alpha = np.full((n_users, n_cat), params.pref_alpha)
    alpha[np.arange(n_users), segment] += params.pref_segment_alpha
    pref = np.maximum(_dirichlet_rows(alpha, rng), 1e-4)  # floor keeps log(5 * pref) finite
    pref /= pref.sum(axis=1, keepdims=True)
    user_s = solve_exponent(lambda s: top_share(zipf_weights(n_users, s), params.user_top), params.user_share)
    activity = zipf_weights(n_users, user_s)[rng.permutation(n_users)]
    users = Users(
        age=rng.integers(18, 71, n_users),
        gender=rng.choice(len(GENDERS), n_users, p=GENDER_P),
        country=rng.choice(len(COUNTRIES), n_users, p=COUNTRY_P),
        segment=segment,
        device=rng.choice(len(DEVICES), n_users, p=DEVICE_P),
        pref=pref,
        bias=rng.normal(0.0, params.user_bias_sd, n_users),
        taste=rng.normal(0.0, taste_sd, (n_users, k)),
        activity=activity,
    )
    category = rng.permutation(np.arange(n_items) % n_cat)  # 20% per category, as in the seed
    price = np.maximum(np.round(rng.lognormal(params.price_mu, params.price_sigma, n_items), 2), 0.01)
    rank = rng.permutation(n_items)  # item n has popularity rank rank[n] + 1
    mass = category_mass(users)

    def view_share(s: float) -> float:
        return top_share(expected_view_share(zipf_weights(n_items, s)[rank], category, mass, params), params.item_top)

    try:
        item_s = solve_exponent(view_share, params.item_share)
    except ConfigError as e:
        msg = f"--item-share {params.item_share:g} cannot be met with this choice mix: {e}"
        raise ConfigError(msg) from None
    popularity = zipf_weights(n_items, item_s)[rank]
    log_pop, log_price = np.log(popularity), np.log(price)
    items = Items(
        category=category,
        price=price,
        popularity=popularity,
        quality=rng.normal(0.0, params.item_quality_sd, n_items),
        taste=rng.normal(0.0, taste_sd, (n_items, k)),
        log_pop_z=(log_pop - log_pop.mean()) / max(log_pop.std(), 1e-12),
        log_price_z=(log_price - log_price.mean()) / max(log_price.std(), 1e-12),
    )
    category_items = tuple(np.flatnonzero(category == c) for c in range(n_cat))
    category_cdf = tuple(_cdf(popularity[idx]) for idx in category_items)
    return World(
        users=users,
        items=items,
        user_exponent=user_s,
        item_exponent=item_s,
        category_items=category_items,
        category_cdf=category_cdf,
        popularity_cdf=_cdf(popularity),
        pref_cdf=np.cumsum(pref, axis=1),
        activity_cdf=_cdf(activity),
    )


def _dirichlet_rows(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One Dirichlet draw per row of ``alpha`` (U, C), via normalised gamma variates."""
    g = rng.gamma(alpha)
    return g / g.sum(axis=1, keepdims=True)


def _cdf(weights: np.ndarray) -> np.ndarray:
    """Cumulative weights normalised so the last entry is exactly 1."""
    if len(weights) == 0:
        return np.zeros(0)
    c = np.cumsum(weights)
    return c / c[-1]


def sample_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Indices drawn by inverse CDF for uniforms ``u`` in [0, 1); shape of ``u``.

    >>> sample_cdf(np.array([0.5, 1.0]), np.array([0.1, 0.7])).tolist()
    [0, 1]
    """
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)
