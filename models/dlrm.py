"""DLRM (Naumov et al. 2019, arXiv 1906.00091) as in facebookresearch/dlrm and TorchRec.

The architecture follows ``dlrm_s_pytorch.py`` (``DLRM_Net``) and TorchRec's ``DLRM``:

* bottom MLP over the dense features, ``Linear -> ReLU`` for every layer including the
  last, whose width must equal the embedding dimension D;
* one embedding table per sparse feature, single-hot (``nn.Embedding`` is the
  one-index-per-bag case of the reference's ``EmbeddingBag(mode="sum")``);
* pairwise dot interaction over ``[bottom output] + embeddings``: the strict lower triangle
  of ``T T^T`` (pairs i > j, no self-dot), concatenated with the bottom output, so the
  top MLP input width is ``D + (F+1)F/2``;
* top MLP to one logit: ReLU between layers, none after the last. The model returns
  logits (train with ``BCEWithLogitsLoss``; apply a sigmoid when scoring);
* initialisation as ``dlrm_s_pytorch.py``: Linear weights ``N(0, sqrt(2/(m+n)))``, biases
  ``N(0, sqrt(1/m))`` (m outputs, n inputs), embedding rows ``U(-sqrt(1/rows), +sqrt(1/rows))``.

Sparse ids arrive already hashed into buckets by :func:`features.spec.featurize`, so each
table has exactly the bucket count of its feature in :class:`features.spec.FeatureSpec`:
user_id 16,384, item_id 8,192, category / country / device 64 each, hour 24, price
bucket 16 (``FeatureSpec().sparse_cardinalities``).

>>> cfg = DLRMConfig()
>>> cfg.num_dense, cfg.sparse_cardinalities
(40, (16384, 8192, 64, 64, 64, 24, 16))
>>> cfg.top_input_width  # D + C(F+1, 2) = 16 + 28
44
>>> DLRMConfig.seed_notebook().top_input_width  # 64 + C(11, 2)
119
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as nnf

from features.spec import FeatureSpec

_DEFAULT_SPEC = FeatureSpec()


@dataclass(frozen=True)
class DLRMConfig:
    """Shape of a DLRM. The defaults fit :class:`FeatureSpec` ``()`` and stay cheap to score.

    Default widths: the whole features + scoring flow must reach 80,000 events/s on one
    core, so the forward pass gets a budget of well under 3 µs per event at batch 1024 on
    one thread (``python -m benchmarks.bench_model`` measures it). D = 16 is the Criteo
    Kaggle reference dimension; 40 dense inputs need no 512-wide bottom MLP.
    """

    num_dense: int = len(_DEFAULT_SPEC.dense_names)  # dense inputs per event
    sparse_cardinalities: tuple[int, ...] = tuple(_DEFAULT_SPEC.sparse_cardinalities)  # rows per table
    embedding_dim: int = 16  # D: width of every embedding and of the bottom MLP output
    bottom_mlp: tuple[int, ...] = (64, 16)  # output widths of the bottom layers; last == D
    top_mlp: tuple[int, ...] = (64, 32, 1)  # output widths of the top layers; last == 1 (logit)

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; keep the dataclass hashable and exact.
        object.__setattr__(self, "sparse_cardinalities", tuple(int(c) for c in self.sparse_cardinalities))
        object.__setattr__(self, "bottom_mlp", tuple(int(w) for w in self.bottom_mlp))
        object.__setattr__(self, "top_mlp", tuple(int(w) for w in self.top_mlp))
        d, bottom, top, tables = self.embedding_dim, self.bottom_mlp, self.top_mlp, self.sparse_cardinalities
        rules = [
            ("num_dense", self.num_dense >= 1, "be >= 1"),
            ("sparse_cardinalities", bool(tables) and min(tables) >= 1, "be non-empty positive row counts"),
            ("embedding_dim", d >= 1, "be >= 1"),
            ("bottom_mlp", bool(bottom) and min(bottom) >= 1, "be non-empty positive widths"),
            (
                "bottom_mlp",
                bool(bottom) and bottom[-1] == d,
                f"end at the embedding dimension {d} (the dot interaction pairs the bottom output with the embeddings)",
            ),
            ("top_mlp", bool(top) and min(top) >= 1 and top[-1] == 1, "be positive widths ending in 1 (one logit)"),
        ]
        for name, ok, requirement in rules:
            if not ok:
                msg = f"DLRMConfig.{name} must {requirement}, got {getattr(self, name)!r}"
                raise ValueError(msg)

    @property
    def num_sparse(self) -> int:
        """F, the number of sparse features (embedding tables)."""
        return len(self.sparse_cardinalities)

    @property
    def num_pairs(self) -> int:
        """C(F+1, 2): dot products between distinct vectors among bottom output + F embeddings."""
        return (self.num_sparse + 1) * self.num_sparse // 2

    @property
    def top_input_width(self) -> int:
        """D + C(F+1, 2), the width fed to the top MLP."""
        return self.embedding_dim + self.num_pairs

    @classmethod
    def for_spec(cls, spec: FeatureSpec, **overrides: Any) -> DLRMConfig:
        """The default widths with inputs taken from a feature spec."""
        fields = {"num_dense": len(spec.dense_names), "sparse_cardinalities": tuple(spec.sparse_cardinalities)}
        return cls(**{**fields, **overrides})

    @classmethod
    def seed_notebook(cls) -> DLRMConfig:
        """The exploratory notebook's model: 13 dense, 10 x 100-row tables, D 64, 512-256-64 / 512-256-1."""
        return cls(
            num_dense=13,
            sparse_cardinalities=(100,) * 10,
            embedding_dim=64,
            bottom_mlp=(512, 256, 64),
            top_mlp=(512, 256, 1),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DLRMConfig:
        return cls(**d)


def _reference_linear(n_in: int, n_out: int) -> nn.Linear:
    """``nn.Linear`` initialised as ``dlrm_s_pytorch.create_mlp``: W ~ N(0, sqrt(2/(m+n))), b ~ N(0, sqrt(1/m))."""
    layer = nn.Linear(n_in, n_out)
    with torch.no_grad():
        layer.weight.normal_(0.0, math.sqrt(2.0 / (n_out + n_in)))
        layer.bias.normal_(0.0, math.sqrt(1.0 / n_out))
    return layer


def _mlp(n_in: int, widths: tuple[int, ...], relu_on_last: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, n_out in enumerate(widths):
        layers.append(_reference_linear(n_in, n_out))
        if relu_on_last or i < len(widths) - 1:
            layers.append(nn.ReLU())
        n_in = n_out
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    """Deep Learning Recommendation Model returning one click logit per event.

    Notation:
        B: batch size (events).
        N: number of dense features (``config.num_dense``).
        F: number of sparse features, one embedding table each.
        D: embedding dimension, also the bottom MLP's output width.
        P: C(F+1, 2) distinct pairs among the F+1 interacting vectors.

    Args:
        config: the model's shape; built with the reference initialisation, seeded by the
            caller's ``torch.manual_seed``.

    >>> _ = torch.manual_seed(0)
    >>> model = DLRM(DLRMConfig())
    >>> dense = torch.zeros(3, 40)
    >>> sparse = torch.zeros(3, 7, dtype=torch.int64)
    >>> model(dense, sparse).shape
    torch.Size([3])
    """

    pair_index: torch.Tensor  # (P,) buffer: the strict lower triangle's flat indices in (F+1, F+1)

    def __init__(self, config: DLRMConfig) -> None:
        super().__init__()
        self.config = config
        d = config.embedding_dim
        self.bottom = _mlp(config.num_dense, config.bottom_mlp, relu_on_last=True)
        tables = [nn.Embedding(rows, d) for rows in config.sparse_cardinalities]
        with torch.no_grad():
            for table in tables:
                bound = math.sqrt(1.0 / table.num_embeddings)
                table.weight.uniform_(-bound, bound)
        self.embeddings = nn.ModuleList(tables)
        self.top = _mlp(config.top_input_width, config.top_mlp, relu_on_last=False)
        n = config.num_sparse + 1
        rows, cols = torch.tril_indices(n, n, offset=-1)  # pairs i > j: strict lower triangle
        self.register_buffer("pair_index", rows * n + cols, persistent=False)  # (P,)

    def interact(self, x: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        """Dot interaction: ``cat(x, strict-lower-triangle(T T^T))`` with T = [x; embeddings].

        Args:
            x: bottom MLP output, (B, D).
            embedded: embeddings, (B, F, D).

        Returns:
            (B, D + P) top MLP input.
        """
        b = x.shape[0]
        t = torch.cat([x.unsqueeze(1), embedded], dim=1)  # (B, F+1, D)
        z = torch.bmm(t, t.transpose(1, 2))  # (B, F+1, F+1)
        pairs = z.reshape(b, -1).index_select(1, self.pair_index)  # (B, P)
        return torch.cat([x, pairs], dim=1)  # (B, D + P)

    def embed(self, sparse: torch.Tensor) -> torch.Tensor:
        """Look up every sparse feature in its own table: (B, F) int64 -> (B, F, D)."""
        looked_up = [table(sparse[:, f]) for f, table in enumerate(self.embeddings)]  # F x (B, D)
        return torch.stack(looked_up, dim=1)  # (B, F, D)

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        """Click logits.

        Args:
            dense: (B, N) float32, normalised dense features.
            sparse: (B, F) int64 bucket ids, column f in ``[0, sparse_cardinalities[f])``.

        Returns:
            (B,) float32 logits; ``torch.sigmoid`` gives P(click).
        """
        x = self.bottom(dense)  # (B, D)
        embedded = self.embed(sparse)  # (B, F, D)
        r = self.interact(x, embedded)  # (B, D + P)
        return self.top(r).squeeze(1)  # (B,)


class FrozenDLRM:
    """An inference snapshot of a :class:`DLRM`: the same arithmetic with less per-call overhead.

    ``nn.Module`` dispatch and one lookup per table cost more than the maths at batch 64
    (~120 µs per call, 2026-11-22). The snapshot keeps the weights as plain tensors,
    concatenates the F tables into one (B, F) -> (B, F, D) gather with per-table row
    offsets, and calls the same functional ops in the same order, so its logits equal
    ``DLRM.forward`` bit for bit. Later changes to the module's weights are not seen.

    >>> _ = torch.manual_seed(0)
    >>> model = DLRM(DLRMConfig()).eval()
    >>> dense, sparse = torch.randn(5, 40), torch.randint(0, 16, (5, 7))
    >>> with torch.inference_mode():
    ...     torch.equal(FrozenDLRM(model)(dense, sparse), model(dense, sparse))
    True
    """

    def __init__(self, model: DLRM) -> None:
        with torch.no_grad():
            self.bottom = [(m.weight.detach().clone(), m.bias.detach().clone()) for m in model.bottom if isinstance(m, nn.Linear)]
            self.top = [(m.weight.detach().clone(), m.bias.detach().clone()) for m in model.top if isinstance(m, nn.Linear)]
            tables = [t.weight.detach() for t in model.embeddings if isinstance(t, nn.Embedding)]  # F x (rows, D)
            self.table = torch.cat(tables)  # (sum of rows, D)
        starts = [0, *itertools.accumulate(model.config.sparse_cardinalities)][:-1]
        self.row_offsets = torch.tensor(starts, dtype=torch.int64)  # (F,)
        self.pair_index = model.pair_index.clone()  # (P,)

    def __call__(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        """Click logits (B,) for dense (B, N) float32 and sparse (B, F) int64, as ``DLRM.forward``."""
        x = dense
        for w, b in self.bottom:
            x = nnf.relu(nnf.linear(x, w, b))  # (B, D) after the last layer
        embedded = nnf.embedding(sparse + self.row_offsets, self.table)  # (B, F, D)
        t = torch.cat([x.unsqueeze(1), embedded], dim=1)  # (B, F+1, D)
        z = torch.bmm(t, t.transpose(1, 2))  # (B, F+1, F+1)
        r = torch.cat([x, z.reshape(x.shape[0], -1).index_select(1, self.pair_index)], dim=1)  # (B, D + P)
        for w, b in self.top[:-1]:
            r = nnf.relu(nnf.linear(r, w, b))  # (B, hidden)
        w, b = self.top[-1]
        return nnf.linear(r, w, b).squeeze(1)  # (B,)
