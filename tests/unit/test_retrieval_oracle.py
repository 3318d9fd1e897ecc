"""The oracle retriever against a brute-force computation on a tiny world."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from models.data import ExamplesError
from models.retrieval_data import Catalog, Profiles
from models.retrieval_oracle import check_world, choice_probabilities, click_probabilities, oracle_scores
from producers.synthetic.behavior import choose_items, probabilities
from producers.synthetic.catalog import profile_records
from producers.synthetic.config import ModelParams
from producers.synthetic.prepare import world_and_funnel

PARAMS = ModelParams(users=30, items=40, calibration_views=2000)


def test_choice_probabilities_are_the_generators_choice_frequencies():
    world, _ = world_and_funnel(3, PARAMS)
    rng = np.random.default_rng(0)
    draws = 200_000
    for user in (0, 7):
        items, _ = choose_items(world, PARAMS, np.full(draws, user), rng)
        observed = np.bincount(items, minlength=40) / draws
        expected = choice_probabilities(world, PARAMS, np.array([user]))[0]
        assert expected.sum() == pytest.approx(1.0)
        assert np.abs(observed - expected).max() < 0.004  # 200k draws: binomial sd < 0.0012


def test_click_probabilities_and_scores_are_the_generators_per_pair():
    world, funnel = world_and_funnel(3, PARAMS)
    users, devices = np.array([2, 5]), np.array([0, 2])
    got = click_probabilities(world, PARAMS, funnel, users, devices)
    for k, (u, d) in enumerate(zip(users, devices)):
        for i in range(40):
            p = probabilities(world, PARAMS, funnel, np.array([u]), np.array([i]), np.array([d])).click[0]
            assert got[k, i] == pytest.approx(p, rel=1e-12)
    assert np.allclose(oracle_scores(world, PARAMS, funnel, users, devices),
                       choice_probabilities(world, PARAMS, users) * got)


def test_a_world_of_another_seed_is_refused():
    world, _ = world_and_funnel(3, PARAMS)
    users, items = profile_records(world, 0)
    profiles = Profiles({k.decode(): orjson.loads(v) for k, v in zip(users.keys, users.values)},
                        {k.decode(): orjson.loads(v) for k, v in zip(items.keys, items.values)})
    catalog = Catalog.from_profiles(profiles)
    check_world(world, profiles, catalog, 3)
    other, _ = world_and_funnel(4, PARAMS)
    with pytest.raises(ExamplesError, match="pass the producer's --seed"):
        check_world(other, profiles, catalog, 4)
