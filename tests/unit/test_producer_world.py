"""The world: rank-based skew solved for its targets, users and items drawn as specified."""

from __future__ import annotations

import numpy as np
import pytest

from events.schema import CATEGORIES
from producers.synthetic.config import ConfigError, ModelParams
from producers.synthetic.world import (
    build_world,
    category_mass,
    expected_view_share,
    solve_exponent,
    top_share,
    zipf_weights,
)

SMALL = ModelParams(users=2000, items=1000, calibration_views=20_000)


@pytest.mark.parametrize(("n", "top", "target"), [(10_000, 0.2, 0.8), (500, 0.1, 0.3), (1000, 0.05, 0.5)])
def test_solved_exponent_meets_the_share(n, top, target):
    s = solve_exponent(lambda s: top_share(zipf_weights(n, s), top), target)
    assert top_share(zipf_weights(n, s), top) == pytest.approx(target, abs=1e-6)


def test_top_share_counts_the_largest_entries_whatever_their_order():
    w = np.array([1.0, 8.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert top_share(w, 0.1) == pytest.approx(0.8)
    assert top_share(w, 0.2) == pytest.approx(0.9)


def test_unreachable_share_names_the_range():
    with pytest.raises(ConfigError, match="out of reach"):
        solve_exponent(lambda s: top_share(zipf_weights(100, s), 0.5), 0.2)


def test_world_is_deterministic_per_seed():
    a = build_world(SMALL, np.random.default_rng(1))
    b = build_world(SMALL, np.random.default_rng(1))
    c = build_world(SMALL, np.random.default_rng(2))
    assert np.array_equal(a.users.pref, b.users.pref) and np.array_equal(a.items.price, b.items.price)
    assert not np.array_equal(a.items.price, c.items.price)


def test_users_and_items_follow_the_spec():
    w = build_world(SMALL, np.random.default_rng(3))
    u, it = w.users, w.items
    assert u.age.min() >= 18 and u.age.max() <= 70
    shares = np.bincount(u.country, minlength=5) / len(u.country)
    assert shares == pytest.approx([0.4, 0.2, 0.15, 0.15, 0.1], abs=0.03)
    # most preference mass on the segment's category
    assert (u.pref.argmax(axis=1) == u.segment).mean() > 0.7
    assert np.allclose(u.pref.sum(axis=1), 1.0)
    assert np.all(np.bincount(it.category, minlength=len(CATEGORIES)) == len(it.category) // len(CATEGORIES))
    assert np.all(it.price >= 0.01) and np.array_equal(it.price, np.round(it.price, 2))
    assert np.median(it.price) == pytest.approx(np.exp(4.0), rel=0.15)  # lognormal(4, 1)
    assert top_share(u.activity, 0.2) == pytest.approx(0.8, abs=1e-6)


def test_item_exponent_is_solved_on_the_choice_mix_not_on_popularity_alone():
    w = build_world(SMALL, np.random.default_rng(4))
    views = expected_view_share(w.items.popularity, w.items.category, category_mass(w.users), SMALL)
    assert views.sum() == pytest.approx(1.0)
    assert top_share(views, 0.1) == pytest.approx(0.3, abs=1e-6)
    assert top_share(w.items.popularity, 0.1) > 0.3  # the random and category routes flatten it
