"""The best possible retriever, from the generator's ground truth.

A view of user u in a session on device d goes to item i with the generator's choice
probability (``producers/synthetic/behavior.py``: a share ``p_preferred`` picks a category by
the user's preferences, then an item by popularity within it; ``p_popular`` picks by global
popularity; the rest uniformly), and is clicked with probability ``P(click | u, i, d)``. The
probability that the user's next click is item i is proportional to their product, so ranking
the catalog by

    P(choose i | u) * P(click | u, i, d)

is the ranking no retriever can beat in expectation; its Recall@K is the ceiling the
Two-Tower is measured against. The world is rebuilt from the generator's seed and model
parameters (:func:`producers.synthetic.prepare.world_and_funnel`) and checked against the
published profiles, so a wrong seed is refused instead of producing a meaningless ceiling.
"""

from __future__ import annotations

import numpy as np

from events.profiles import GENDERS
from events.schema import CATEGORIES, COUNTRIES, DEVICES
from models.data import ExamplesError
from models.retrieval_data import Catalog, Profiles
from producers.synthetic.behavior import Funnel, linear_parts, sigmoid
from producers.synthetic.config import ModelParams
from producers.synthetic.world import World


def choice_probabilities(world: World, params: ModelParams, users: np.ndarray) -> np.ndarray:
    """(n, I) P(a view of user ``users[k]`` goes to item i), each row summing to 1."""
    it = world.items
    per_cat = np.bincount(it.category, weights=it.popularity, minlength=len(CATEGORIES))  # (C,)
    within = it.popularity / per_cat[it.category]  # (I,) popularity share within its category
    pref = world.users.pref[users][:, it.category]  # (n, I) the user's preference for each item's category
    n_items = len(it.popularity)
    return params.p_preferred * pref * within + params.p_popular * it.popularity + params.p_random / n_items


def click_probabilities(world: World, params: ModelParams, funnel: Funnel, users: np.ndarray,
                        devices: np.ndarray) -> np.ndarray:
    """(n, I) P(click | view of item i by user ``users[k]`` on ``devices[k]``)."""
    n_items = len(world.items.popularity)
    user = np.repeat(users, n_items)
    item = np.tile(np.arange(n_items), len(users))
    z_click, _, _, _ = linear_parts(world, params, user, item, np.repeat(devices, n_items))
    return sigmoid(funnel.click + z_click).reshape(len(users), n_items)


def oracle_scores(world: World, params: ModelParams, funnel: Funnel, users: np.ndarray,
                  devices: np.ndarray) -> np.ndarray:
    """(n, I) scores proportional to P(the next click of user k is item i), catalog order ``i{n}``."""
    return choice_probabilities(world, params, users) * click_probabilities(world, params, funnel, users, devices)


def user_numbers(user_ids: list[str]) -> np.ndarray:
    """``u17`` -> 17 (the generator's ids)."""
    try:
        return np.array([int(u[1:]) for u in user_ids], dtype=np.int64)
    except ValueError as e:
        msg = f"the oracle needs the generator's user ids (u<number>): {e}"
        raise ExamplesError(msg) from None


def check_world(world: World, profiles: Profiles, catalog: Catalog, seed: int) -> None:
    """Refuse a world whose observable attributes differ from the published profiles."""
    if catalog.item_ids != [f"i{n}" for n in range(len(world.items.price))]:
        msg = f"the world of seed {seed} has {len(world.items.price)} items; the catalog has {len(catalog)}"
        raise ExamplesError(msg)
    if not (np.array_equal(catalog.category, world.items.category) and np.allclose(catalog.price, world.items.price)):
        msg = f"the catalog is not the one of the generator's world of seed {seed}: pass the producer's --seed"
        raise ExamplesError(msg)
    for n in range(0, len(world.users.age), max(1, len(world.users.age) // 200)):
        p = profiles.users.get(f"u{n}")
        expected = (int(world.users.age[n]), GENDERS[world.users.gender[n]], COUNTRIES[world.users.country[n]],
                    DEVICES[world.users.device[n]])
        if p is None or (p["age"], p["gender"], p["country"], p["device"]) != expected:
            msg = f"user u{n}'s profile is not the one of the generator's world of seed {seed}: pass the producer's --seed"
            raise ExamplesError(msg)
