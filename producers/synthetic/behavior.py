"""Behaviour: which item a view goes to, how likely it converts, and how the purchase is rated.

For a view of item i by user u in a session on device d (n views at a time, all arrays (n,)):

    affinity       = log(5 * pref_u[cat_i]) + taste_u . taste_i
    logit p_click  = a_click + w_aff affinity + w_bias bias_u + w_q quality_i
                     + w_pop log_pop_z_i + w_price log_price_z_i + device_effect_d
    logit p_cart   = a_cart + (same terms, cart weights, no device)       P(add_cart | click)
    logit p_purch  = a_purchase + (same terms, purchase weights)          P(purchase | add_cart)

Everything a probability depends on is a per-user, per-item, per-user x category or
per-session quantity, so a model with id embeddings and windowed counts can learn it; there
is no per-event noise inside a probability. The intercepts ``a_*`` are calibrated by
bisection on a sample of views so the funnel rates hit their targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from events.schema import CATEGORIES, DEVICES
from producers.synthetic.config import ModelParams
from producers.synthetic.world import World, sample_cdf

Choice = Literal["preferred", "popular", "random", "slate"]
#: how a view's item was chosen; "slate": shown by a policy in a served session (producers/synthetic/serving.py)
CHOICES: Final[tuple[Choice, ...]] = ("preferred", "popular", "random", "slate")
STAGES: Final = ("click", "cart", "purchase")
#: purchase rating range [low, high] and centre per choice route (seed: 4-5, 3-5, 1-5; served items rate like random ones)
RATING_RANGE: Final = ((4, 5), (3, 5), (1, 5), (1, 5))
RATING_CENTRE: Final = (4.3, 3.8, 3.0, 3.0)
RATING_AFFINITY_ORIGIN: Final = 1.0  # affinity of a typical purchase; above it rates higher


@dataclass(frozen=True)
class Funnel:
    """Calibrated logit intercepts and what they imply."""

    click: float  # intercept of logit P(click | view)
    cart: float  # intercept of logit P(add_cart | click)
    purchase: float  # intercept of logit P(purchase | add_cart)
    events_per_view: float  # expected events per view (1 + clicks + carts + purchases)


@dataclass(frozen=True)
class ViewProbabilities:
    """True probabilities of n views; (n,) each."""

    click: np.ndarray  # P(click | view)
    cart: np.ndarray  # P(add_cart | click)
    purchase: np.ndarray  # P(purchase | add_cart)
    affinity: np.ndarray  # user-item affinity (logit units)


def draw_devices(world: World, params: ModelParams, user: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Session devices: the user's primary device, else uniform; (n,) index into DEVICES."""
    other = rng.integers(0, len(DEVICES), len(user))
    return np.where(rng.random(len(user)) < params.primary_device_share, world.users.device[user], other)


def choose_items(
    world: World, params: ModelParams, user: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pick an item per view: ``(item (n,), choice (n,) index into CHOICES)``."""
    n = len(user)
    r_route, r_cat, r_item = rng.random(n), rng.random(n), rng.random(n)
    choice = np.searchsorted([params.p_preferred, params.p_preferred + params.p_popular], r_route, side="right")
    item = sample_cdf(world.popularity_cdf, r_item)  # the popular route
    rand = choice == 2
    item[rand] = np.minimum((r_item[rand] * params.items).astype(np.int64), params.items - 1)
    pref = np.flatnonzero(choice == 0)
    cat = np.minimum((world.pref_cdf[user[pref]] <= r_cat[pref, None]).sum(axis=1), len(CATEGORIES) - 1)
    for c in range(len(CATEGORIES)):
        rows = pref[cat == c]
        item[rows] = world.category_items[c][sample_cdf(world.category_cdf[c], r_item[rows])]
    return item, choice.astype(np.int8)


def _linear(weights: tuple[float, ...], terms: np.ndarray) -> np.ndarray:
    """The non-intercept part of a stage's logit: ``terms @ weights``; (n,)."""
    return terms @ np.asarray(weights, dtype=np.float64)


def linear_parts(
    world: World, params: ModelParams, user: np.ndarray, item: np.ndarray, device: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Logits without intercepts for click, cart and purchase, and the affinity; (n,) each."""
    u, it = world.users, world.items
    aff = np.log(5.0 * u.pref[user, it.category[item]]) + np.einsum("nk,nk->n", u.taste[user], it.taste[item])
    # (n, 5) in LOGIT_TERMS order: affinity, user bias, quality, log popularity z, log price z
    terms = np.stack([aff, u.bias[user], it.quality[item], it.log_pop_z[item], it.log_price_z[item]], axis=1)
    device_effect = np.array([0.0, params.desktop_effect, params.tablet_effect])  # DEVICES order
    z_click = _linear(params.click_weights, terms) + device_effect[device]
    return z_click, _linear(params.cart_weights, terms), _linear(params.purchase_weights, terms), aff


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function, elementwise.

    >>> sigmoid(np.array([0.0])).tolist()
    [0.5]
    """
    return 1.0 / (1.0 + np.exp(-z))


def probabilities(
    world: World, params: ModelParams, funnel: Funnel, user: np.ndarray, item: np.ndarray, device: np.ndarray
) -> ViewProbabilities:
    """True funnel probabilities of views."""
    z_click, z_cart, z_purchase, aff = linear_parts(world, params, user, item, device)
    return ViewProbabilities(
        click=sigmoid(funnel.click + z_click),
        cart=sigmoid(funnel.cart + z_cart),
        purchase=sigmoid(funnel.purchase + z_purchase),
        affinity=aff,
    )


def solve_intercept(z: np.ndarray, weight: np.ndarray, target: float) -> float:
    """The a with ``sum(weight * sigmoid(a + z)) / sum(weight) == target`` (bisection).

    >>> round(solve_intercept(np.zeros(4), np.ones(4), 0.25), 6)
    -1.098612
    """
    lo, hi = -30.0, 30.0
    total = float(weight.sum())
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if float((weight * sigmoid(mid + z)).sum()) / total < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def calibrate(world: World, params: ModelParams, rng: np.random.Generator) -> Funnel:
    """Calibrate the three intercepts on ``params.calibration_views`` views drawn like real ones.

    Users are drawn by activity, so the rates hold for the event stream, not per user.
    """
    n = params.calibration_views
    user = sample_cdf(world.activity_cdf, rng.random(n))
    device = draw_devices(world, params, user, rng)
    item, _ = choose_items(world, params, user, rng)
    z_click, z_cart, z_purchase, _ = linear_parts(world, params, user, item, device)
    a_click = solve_intercept(z_click, np.ones(n), params.click_rate)
    p_click = sigmoid(a_click + z_click)
    a_cart = solve_intercept(z_cart, p_click, params.cart_rate)
    p_cart = sigmoid(a_cart + z_cart)
    a_purchase = solve_intercept(z_purchase, p_click * p_cart, params.purchase_rate)
    p_purchase = sigmoid(a_purchase + z_purchase)
    per_view = 1.0 + p_click * (1.0 + p_cart * (1.0 + p_purchase))
    return Funnel(a_click, a_cart, a_purchase, float(per_view.mean()))


def ratings(params: ModelParams, choice: np.ndarray, affinity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Purchase ratings 1..5: preferred items rate 4-5, popular 3-5, random 1-5, higher with affinity."""
    lo = np.array([r[0] for r in RATING_RANGE])[choice]
    hi = np.array([r[1] for r in RATING_RANGE])[choice]
    centre = np.array(RATING_CENTRE)[choice] + params.rating_affinity * (affinity - RATING_AFFINITY_ORIGIN)
    raw = np.rint(centre + rng.normal(0.0, params.rating_noise, len(choice)))
    return np.clip(raw, lo, hi).astype(np.int8)
