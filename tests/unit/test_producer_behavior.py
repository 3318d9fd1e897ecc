"""Behaviour: the choice mix, calibrated intercepts, the signal inside the probabilities, ratings."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from models.metrics import roc_auc
from producers.synthetic.behavior import (
    CHOICES,
    calibrate,
    choose_items,
    draw_devices,
    probabilities,
    ratings,
    sigmoid,
    solve_intercept,
)
from producers.synthetic.config import ModelParams
from producers.synthetic.world import build_world, sample_cdf

PARAMS = ModelParams(users=2000, items=1000, calibration_views=50_000)


@pytest.fixture(scope="module")
def world():
    return build_world(PARAMS, np.random.default_rng(11))


def views(world, params, n, seed):
    rng = np.random.default_rng(seed)
    user = sample_cdf(world.activity_cdf, rng.random(n))
    device = draw_devices(world, params, user, rng)
    item, choice = choose_items(world, params, user, rng)
    return user, item, device, choice


def test_choice_mix_and_routes(world):
    user, item, _, choice = views(world, PARAMS, 100_000, 1)
    mix = np.bincount(choice, minlength=3) / len(choice)
    assert mix == pytest.approx([0.6, 0.3, 0.1], abs=0.01)
    # the preferred route picks the category the user prefers, the random one ignores it
    pref_of_item = world.users.pref[user, world.items.category[item]]
    assert pref_of_item[choice == 0].mean() > pref_of_item[choice == 2].mean() + 0.2


def test_intercepts_hit_the_funnel_targets_on_fresh_views(world):
    funnel = calibrate(world, PARAMS, np.random.default_rng(2))
    user, item, device, _ = views(world, PARAMS, 100_000, 3)
    p = probabilities(world, PARAMS, funnel, user, item, device)
    assert p.click.mean() == pytest.approx(0.6, abs=0.01)
    assert (p.click * p.cart).sum() / p.click.sum() == pytest.approx(0.5, abs=0.01)
    assert (p.click * p.cart * p.purchase).sum() / (p.click * p.cart).sum() == pytest.approx(1 / 3, abs=0.01)
    assert funnel.events_per_view == pytest.approx(2.0, abs=0.02)


def test_click_signal_comes_from_affinity_not_noise(world):
    funnel = calibrate(world, PARAMS, np.random.default_rng(2))
    user, item, device, _ = views(world, PARAMS, 50_000, 4)
    p = probabilities(world, PARAMS, funnel, user, item, device)
    again = probabilities(world, PARAMS, funnel, user, item, device)
    assert np.array_equal(p.click, again.click)  # no per-event noise in the truth
    clicks = np.random.default_rng(5).random(len(user)) < p.click
    assert roc_auc(clicks, p.affinity) > 0.65
    flat = replace(PARAMS, click_weights=(0.0,) * 5, desktop_effect=0.0, tablet_effect=0.0)
    p_flat = probabilities(world, flat, calibrate(world, flat, np.random.default_rng(2)), user, item, device)
    assert np.ptp(p_flat.click) < 1e-9


def test_solve_intercept_weights_the_average():
    z = np.array([-2.0, 0.0, 2.0])
    a = solve_intercept(z, np.array([1.0, 0.0, 3.0]), 0.7)
    assert (sigmoid(a + z[0]) + 3 * sigmoid(a + z[2])) / 4 == pytest.approx(0.7, abs=1e-9)


def test_ratings_stay_in_each_routes_range():
    rng = np.random.default_rng(6)
    choice = np.repeat(np.arange(len(CHOICES)), 10_000)
    r = ratings(PARAMS, choice, rng.normal(1.0, 1.0, len(choice)), rng)
    ranges = {c: (r[choice == i].min(), r[choice == i].max()) for i, c in enumerate(CHOICES)}
    assert ranges == {"preferred": (4, 5), "popular": (3, 5), "random": (1, 5), "slate": (1, 5)}
    high = ratings(PARAMS, np.full(5000, 2), np.full(5000, 3.0), rng).mean()
    low = ratings(PARAMS, np.full(5000, 2), np.full(5000, -1.0), rng).mean()
    assert high > low + 0.5
