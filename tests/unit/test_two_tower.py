"""The Two-Tower retriever: shapes, gradients, the loss, learning a planted answer, artifact, index, oracle."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from models.artifact import ArtifactError
from models.evaluate_retrieval import EvaluateRetrievalConfig, evaluate_retrieval
from models.retrieval_artifact import load_retrieval_artifact, require_catalog, save_retrieval_artifact
from models.retrieval_index import ItemIndex
from models.train_retrieval import RetrievalTrainConfig, train_retrieval
from models.train_retrieval import main as train_main
from models.two_tower import TwoTower, TwoTowerConfig, in_batch_loss
from tests.retrieval_fixtures import liked, write_planted


def user_batch(b: int, config: TwoTowerConfig, rng: np.random.Generator) -> list[torch.Tensor]:
    return [torch.from_numpy(rng.integers(0, config.user_buckets, b)), torch.from_numpy(rng.integers(18, 71, b)),
            torch.from_numpy(rng.integers(0, config.genders, b)), torch.from_numpy(rng.integers(0, config.countries, b)),
            torch.from_numpy(rng.integers(0, config.devices, b)), torch.from_numpy(rng.integers(0, 24, b)),
            torch.from_numpy(rng.integers(-1, config.item_buckets, (b, 20))),
            torch.from_numpy(rng.integers(0, 9, (b, 5, 4)).astype(np.float32))]


def item_batch(b: int, config: TwoTowerConfig, rng: np.random.Generator) -> list[torch.Tensor]:
    return [torch.from_numpy(rng.integers(0, config.item_buckets, b)), torch.from_numpy(rng.integers(0, 5, b)),
            torch.from_numpy(rng.integers(0, config.price_buckets, b)),
            torch.from_numpy(rng.integers(0, 50, (b, 12)).astype(np.float32))]


@pytest.mark.parametrize("config", [TwoTowerConfig(), TwoTowerConfig.seed_notebook()], ids=["default", "seed"])
def test_towers_give_unit_vectors_and_every_weight_gets_a_gradient(config):
    rng = np.random.default_rng(0)
    model = TwoTower(config)
    users, items = model.users(*user_batch(8, config, rng)), model.items(*item_batch(8, config, rng))
    assert users.shape == items.shape == (8, config.output_dim)
    assert torch.allclose(users.norm(dim=1), torch.ones(8), atol=1e-5)
    in_batch_loss(users, items, torch.zeros(8), torch.arange(8), config.temperature).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert config.output_dim == (128 if config.embedding_dim == 64 else TwoTowerConfig().output_dim)


def test_the_loss_corrects_for_popularity_and_ignores_accidental_hits():
    torch.manual_seed(0)
    u, i = torch.nn.functional.normalize(torch.randn(4, 8), dim=1), torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    keys, log_q = torch.arange(4), torch.log(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    # Yi et al. (2019) eq. 3: every score of item j minus log q_j, then softmax over the batch
    expected = torch.nn.functional.cross_entropy(u @ i.T / 0.1 - log_q[None, :], keys)
    assert torch.isclose(in_batch_loss(u, i, log_q, keys, 0.1), expected)
    # so a frequent item costs a row less as a negative than a rare one with the same score
    rows = torch.nn.functional.cross_entropy(u @ i.T / 0.1 - log_q[None, :], keys, reduction="none")
    plain = torch.nn.functional.cross_entropy(u @ i.T / 0.1, keys, reduction="none")
    assert rows[3] > plain[3] and rows[0] < plain[0]  # row 3's positive is the most frequent item
    # rows 0 and 1 have the same positive item: each is not the other's negative
    dup = torch.tensor([7, 7, 2, 3])
    logits = u @ i.T / 0.1
    logits[0, 1] = logits[1, 0] = float("-inf")
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(4))
    assert torch.isclose(in_batch_loss(u, i, torch.zeros(4), dup, 0.1), expected)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    paths = write_planted(folder)
    cfg = RetrievalTrainConfig(examples=str(paths["examples"]), users=str(paths["users"]), items=str(paths["items"]),
                               out=str(folder / "tt.pt"), epochs=8, batch_size=128, patience=3, lr=5e-3, threads=1,
                               seed=3, log_every_s=60)
    artifact = train_retrieval(cfg, log=lambda line: None)
    return paths, cfg, artifact


def test_training_learns_planted_user_item_pairs(planted, tmp_path):
    _, cfg, _ = planted
    report = evaluate_retrieval(EvaluateRetrievalConfig(
        examples=cfg.examples, users=cfg.users, items=cfg.items, model=cfg.out, out=str(tmp_path), pictures=False),
        log=lambda line: None)
    r = report["results"]
    # 80 items, each user clicks 4: a random order finds the click in the top 10 1 time in 8
    assert r["two-tower"]["recall@10"] > 0.8 > 3 * r["random"]["recall@10"]
    assert r["two-tower"]["recall@10"] > r["popularity"]["recall@10"] + 0.3
    assert (tmp_path / "retrieval.json").exists() and (tmp_path / "retrieval_recall.png").exists()


def test_training_is_deterministic_for_a_seed(planted, tmp_path):
    _, cfg, artifact = planted
    again = train_retrieval(RetrievalTrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "again.pt")}),
                            log=lambda line: None)
    assert again.version == artifact.version


def test_the_artifact_round_trips_and_refuses_what_does_not_fit(planted, tmp_path):
    _, cfg, artifact = planted
    loaded = load_retrieval_artifact(cfg.out)
    assert loaded.version == artifact.version and loaded.item_ids == artifact.item_ids
    assert np.array_equal(loaded.embeddings, artifact.embeddings)
    with pytest.raises(ArtifactError, match="not the artifact's"):
        require_catalog(loaded, [*loaded.item_ids[:-1], "i999"], "items.jsonl")
    broken = tmp_path / "broken.pt"
    save_retrieval_artifact(dataclasses.replace(artifact, embeddings=artifact.embeddings[:10]), broken)
    with pytest.raises(ArtifactError, match=r"embeddings \(10, 64\) for 80 items"):
        load_retrieval_artifact(broken)
    (tmp_path / "garbage.pt").write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="not readable"):
        load_retrieval_artifact(tmp_path / "garbage.pt")


def test_the_index_returns_what_exact_scoring_returns(planted):
    _, _, artifact = planted
    rng = np.random.default_rng(5)
    queries = artifact.embeddings[rng.choice(len(artifact.embeddings), 16)] + rng.normal(0, 0.1, (16, 64)).astype(np.float32)
    exact = ItemIndex(artifact.embeddings, artifact.item_ids)
    scores, rows = exact.search(queries, 10)
    brute = np.argsort(-(queries @ artifact.embeddings.T), axis=1, kind="stable")[:, :10]
    assert np.array_equal(np.sort(rows, axis=1), np.sort(brute, axis=1))
    assert np.allclose(scores[:, 0], (queries @ artifact.embeddings.T).max(axis=1), atol=1e-5)
    _, approx = ItemIndex(artifact.embeddings, artifact.item_ids, kind="hnsw").search(queries, 10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx, rows)]) > 0.9


def test_a_bad_flag_and_examples_without_history_get_one_line(tmp_path, capsys):
    assert train_main(["--batch-size", "1"]) == 2
    assert capsys.readouterr().err.strip().endswith("must be >= 2 (in-batch negatives), got 1")
    paths = write_planted(tmp_path, views=200)
    text = paths["examples"].read_text().replace('"history"', '"old"')
    paths["examples"].write_text(text)
    assert train_main(["--examples", str(paths["examples"]), "--users", str(paths["users"]), "--items",
                       str(paths["items"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "record 1: no 'history'" in err


def test_planted_fixture_likes():
    assert liked(1, 80) == [7, 8, 9, 10]
