"""The DLRM module: shapes, the dot interaction, config checks, gradients, initialisation."""

from __future__ import annotations

import math

import pytest
import torch

from features.spec import FeatureSpec
from models.dlrm import DLRM, DLRMConfig, FrozenDLRM


def _inputs(cfg: DLRMConfig, b: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    dense = torch.randn(b, cfg.num_dense, generator=g)
    sparse = torch.stack([torch.randint(0, rows, (b,), generator=g) for rows in cfg.sparse_cardinalities], dim=1)
    return dense, sparse


@pytest.mark.parametrize("cfg", [DLRMConfig(), DLRMConfig.seed_notebook()], ids=["default", "seed_notebook"])
@pytest.mark.parametrize("b", [1, 7, 64])
def test_output_and_intermediate_shapes(cfg, b):
    torch.manual_seed(0)
    model = DLRM(cfg)
    dense, sparse = _inputs(cfg, b)
    f, d = len(cfg.sparse_cardinalities), cfg.embedding_dim
    assert model.bottom(dense).shape == (b, d)
    assert model.embed(sparse).shape == (b, f, d)
    assert model.interact(model.bottom(dense), model.embed(sparse)).shape == (b, d + (f + 1) * f // 2)
    assert model(dense, sparse).shape == (b,)


def test_default_config_follows_the_feature_spec():
    spec = FeatureSpec()
    cfg = DLRMConfig()
    assert cfg.num_dense == len(spec.dense_names) == 40
    assert list(cfg.sparse_cardinalities) == spec.sparse_cardinalities
    custom = FeatureSpec(user_buckets=1000)
    assert DLRMConfig.for_spec(custom).sparse_cardinalities[0] == 1000


def test_seed_notebook_config_matches_the_notebook():
    cfg = DLRMConfig.seed_notebook()
    model = DLRM(cfg)
    assert (cfg.num_dense, cfg.sparse_cardinalities, cfg.embedding_dim) == (13, (100,) * 10, 64)
    widths = [m.out_features for m in model.bottom if isinstance(m, torch.nn.Linear)]
    assert widths == [512, 256, 64]
    top = [m for m in model.top if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in top] == [512, 256, 1]
    assert top[0].in_features == 64 + math.comb(11, 2)


@pytest.mark.parametrize("cfg", [DLRMConfig(), DLRMConfig.seed_notebook()], ids=["default", "seed_notebook"])
def test_top_input_width_is_d_plus_pairs_without_the_diagonal(cfg):
    f = len(cfg.sparse_cardinalities)
    top_first = next(m for m in DLRM(cfg).top if isinstance(m, torch.nn.Linear))
    assert top_first.in_features == cfg.embedding_dim + math.comb(f + 1, 2)
    assert cfg.top_input_width == top_first.in_features


def test_interaction_equals_brute_force_dot_products_of_distinct_pairs():
    cfg = DLRMConfig(sparse_cardinalities=(5, 6, 7), embedding_dim=4, bottom_mlp=(8, 4), num_dense=3)
    model = DLRM(cfg)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, generator=g)
    emb = torch.randn(2, 3, 4, generator=g)
    out = model.interact(x, emb)
    for b in range(2):
        vectors = [x[b]] + [emb[b, f] for f in range(3)]
        expected = [float(x[b, i]) for i in range(4)]
        # each unordered pair once, never a vector with itself
        pairs = [float(torch.dot(vectors[i], vectors[j])) for i in range(len(vectors)) for j in range(i)]
        expected += pairs
        assert out[b].tolist() == pytest.approx(expected, rel=1e-5, abs=1e-6)
        self_dots = [float(torch.dot(v, v)) for v in vectors]
        assert not any(any(abs(s - p) < 1e-7 for p in pairs) for s in self_dots)


def test_bottom_mlp_must_end_at_the_embedding_dimension():
    with pytest.raises(ValueError, match=r"bottom_mlp must end at the embedding dimension 16.*\(64, 32\)"):
        DLRMConfig(bottom_mlp=(64, 32))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"top_mlp": (64, 2)}, "top_mlp"),
        ({"sparse_cardinalities": ()}, "sparse_cardinalities"),
        ({"num_dense": 0}, "num_dense"),
        ({"embedding_dim": 0, "bottom_mlp": (0,)}, "embedding_dim"),
    ],
)
def test_other_config_errors_name_the_field(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        DLRMConfig(**kwargs)


def test_config_round_trips_through_a_dict():
    cfg = DLRMConfig.seed_notebook()
    assert DLRMConfig.from_dict(cfg.to_dict()) == cfg


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    cfg = DLRMConfig()
    model = DLRM(cfg)
    dense, sparse = _inputs(cfg, 256)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(dense, sparse), torch.rand(256).round())
    loss.backward()
    names = [name for name, _ in model.named_parameters()]
    assert sum(n.startswith("embeddings.") for n in names) == len(cfg.sparse_cardinalities)
    assert any(n.startswith("bottom.") for n in names) and any(n.startswith("top.") for n in names)
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name
    for f, table in enumerate(model.embeddings):  # used rows get gradient, unused rows none
        used = torch.unique(sparse[:, f])
        assert (table.weight.grad[used].abs().sum(dim=1) > 0).all()
        unused = torch.ones(table.num_embeddings, dtype=torch.bool)
        unused[used] = False
        assert table.weight.grad[unused].abs().sum() == 0


def test_initialisation_follows_the_reference():
    torch.manual_seed(0)
    model = DLRM(DLRMConfig.seed_notebook())
    first = model.bottom[0]  # 13 -> 512
    assert first.weight.std().item() == pytest.approx(math.sqrt(2 / (512 + 13)), rel=0.08)
    assert first.weight.mean().item() == pytest.approx(0.0, abs=0.01)
    second = model.bottom[2]  # 512 -> 256, 131k weights
    assert second.weight.std().item() == pytest.approx(math.sqrt(2 / (256 + 512)), rel=0.03)
    assert first.bias.std().item() == pytest.approx(math.sqrt(1 / 512), rel=0.15)
    top_mid = model.top[2]  # 512 -> 256
    assert top_mid.bias.std().item() == pytest.approx(math.sqrt(1 / 256), rel=0.2)
    table = model.embeddings[0].weight  # 100 rows: U(-0.1, 0.1)
    assert table.abs().max().item() <= 0.1
    assert table.std().item() == pytest.approx(0.1 / math.sqrt(3), rel=0.08)
    users = DLRM(DLRMConfig()).embeddings[0].weight  # 16,384 rows
    assert users.abs().max().item() <= math.sqrt(1 / 16_384)
    assert users.abs().max().item() > 0.95 * math.sqrt(1 / 16_384)


def test_frozen_snapshot_is_bitwise_equal_to_the_module():
    torch.manual_seed(1)
    for cfg in (DLRMConfig(), DLRMConfig.seed_notebook()):
        model = DLRM(cfg).eval()
        dense, sparse = _inputs(cfg, 300, seed=5)
        with torch.inference_mode():
            assert torch.equal(FrozenDLRM(model)(dense, sparse), model(dense, sparse))
