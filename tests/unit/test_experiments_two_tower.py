"""The two-tower policy: the tower's top k, the user's history point in time, the world's catalog only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from experiments.design import ExperimentDesign
from experiments.model_policies import TwoTowerPolicy
from experiments.policies import Context, Observed
from experiments.simulate import SimWorld, simulate
from models.retrieval_artifact import RetrievalArtifact, save_retrieval_artifact
from models.retrieval_data import hashed, price_bucket
from models.two_tower import TwoTower, TwoTowerConfig
from producers.synthetic.config import ModelParams

MODEL = ModelParams(users=500, items=120, calibration_views=5000)
CONFIG = TwoTowerConfig(user_buckets=512, item_buckets=256, embedding_dim=8, user_mlp=(16,), item_mlp=(16,),
                        output_dim=8)


@pytest.fixture(scope="module")
def sim() -> SimWorld:
    return SimWorld(seed=5, model=MODEL, warmup_events=5000)


def artifact_for(sim: SimWorld, seed: int = 0) -> RetrievalArtifact:
    """An untrained tower with its catalog's embeddings: the policy's wiring, not the model's quality."""
    torch.manual_seed(seed)
    model = TwoTower(CONFIG).eval()
    items = sim.world.items
    n = len(items.price)
    with torch.inference_mode():
        emb = model.items(torch.tensor([hashed(f"i{i}", CONFIG.item_buckets) for i in range(n)]),
                          torch.from_numpy(items.category.astype(np.int64)),
                          torch.from_numpy(price_bucket(items.price)), torch.zeros(n, 12)).numpy()
    return RetrievalArtifact(CONFIG, model.state_dict(), [f"i{i}" for i in range(n)], items.category.astype(np.int64),
                             items.price, emb, 0, {})


def test_slates_are_the_towers_top_k_from_the_history_before_the_session(sim):
    policy = TwoTowerPolicy(artifact_for(sim), sim.world)
    t = 1_767_225_600_000
    policy.observe(Observed(np.array([3, 3, 3, 3]), np.array([7, 9, 7, 11]), np.array([0, 0, 1, 0], np.int8),
                            np.array([t - 3000, t - 2000, t - 1000, t + 5000])))  # the last one is after the session
    recent, counts = policy._history(3, t)
    assert recent == [7, 9]  # distinct, newest first; the event after t is not seen
    cat = sim.world.items.category
    assert counts.sum() == 3 and counts[cat[7], 1] == 1
    ctx = Context.at(np.array([t]), np.array([1]), np.array([2]))
    slate = policy.slates(np.array([3]), ctx, 5, None)[0]
    # brute force: the same inputs through the tower, every item scored
    w = sim.world.users
    recent_b = torch.full((1, 20), -1, dtype=torch.int64)
    recent_b[0, :2] = torch.tensor([hashed("i7", CONFIG.item_buckets), hashed("i9", CONFIG.item_buckets)])
    with torch.inference_mode():
        u = policy.tower.users(torch.tensor([hashed("u3", CONFIG.user_buckets)]), torch.tensor([int(w.age[3])]),
                               torch.tensor([int(w.gender[3]) + 1]), torch.tensor([2]), torch.tensor([1]),
                               torch.tensor([(t // 3_600_000) % 24]), recent_b, torch.from_numpy(counts[None]))
    scores = (u.numpy() @ policy.index.index.reconstruct_n(0, len(cat)).T)[0]
    assert slate.tolist() == np.argsort(-scores, kind="stable")[:5].tolist()


def test_an_artifact_of_another_world_is_refused(sim):
    other = SimWorld(seed=6, model=MODEL, warmup_events=0)
    with pytest.raises(ValueError, match="trained on another catalog"):
        TwoTowerPolicy(artifact_for(other), sim.world)


def test_the_two_tower_arm_runs_offline_from_an_artifact_file(sim, tmp_path):
    path = tmp_path / "tt.pt"
    save_retrieval_artifact(artifact_for(sim), path)
    design = ExperimentDesign("tt", arms=(("control", "popularity"), ("treatment", "two-tower")), retriever=str(path))
    run = simulate(design, sim, seed=1, duration_s=120)
    assert set(np.unique(run.data.arm).tolist()) == {0, 1} and run.data.truth is not None
    with pytest.raises(ValueError, match="does not exist"):
        simulate(ExperimentDesign("tt2", arms=design.arms, retriever=str(tmp_path / "none.pt")), sim, seed=1,
                 duration_s=10)
