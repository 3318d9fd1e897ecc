"""The Two-Tower retriever: a user tower and an item tower whose dot product ranks the catalog.

Notation: B queries (or items) per batch, D the output dimension, E an embedding dimension,
R recent items per user, C = 5 categories.

    user tower   [user id (hashed) | age | gender | country | device | hour   each (B, E)
                  | mean item-id embedding of the R recent items             (B, E)
                  | log1p of the per-category counts, category view shares   (B, 4C + C)]
                 -> MLP -> L2 normalise                                      (B, D)
    item tower   [item id (hashed) | category | price bucket                 each (B, E)
                  | log1p of the item's point-in-time counts                 (B, 12)]
                 -> MLP -> L2 normalise                                      (B, D)
    score(u, i) = <u, i> / temperature

The recent items are embedded with the item tower's id table: a user who viewed items lands
near them by construction, and the table gets trained from both sides. The user tower sees
nothing of the item it is asked to retrieve (not its category, nor the user's counts in it):
only who the user is, where and when it asks, and what it did before.

Training (``models/train_retrieval.py``) uses in-batch softmax with the logQ correction of
Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item Recommendations",
RecSys 2019: :func:`in_batch_loss`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from events.schema import CATEGORIES, COUNTRIES, DEVICES
from models.retrieval_data import AGE_BUCKETS, PRICE_BUCKETS

N_CATEGORIES = len(CATEGORIES)
N_ITEM_COUNTS = 12  # 3 horizons x 4 event types (features/spec.py)


@dataclass(frozen=True)
class TwoTowerConfig:
    """Sizes of the two towers; the defaults suit the generator's 10,000 users and 5,000 items."""

    user_buckets: int = 16_384  # hash buckets of the user id table
    item_buckets: int = 8_192  # hash buckets of the item id table (shared by the recent items)
    embedding_dim: int = 32  # E: every embedding table
    user_mlp: tuple[int, ...] = (128,)  # hidden widths of the user tower
    item_mlp: tuple[int, ...] = (128,)  # hidden widths of the item tower
    output_dim: int = 64  # D
    temperature: float = 0.1  # tau: scores are <u, i> / tau (0.05 and 0.07 retrieved less, 2026-12-04)
    age_buckets: int = AGE_BUCKETS  # ages in years index this table directly
    genders: int = 4  # M, F, O and "no profile"
    countries: int = len(COUNTRIES)
    devices: int = len(DEVICES)
    categories: int = N_CATEGORIES
    price_buckets: int = PRICE_BUCKETS

    def __post_init__(self) -> None:
        for name in ("user_buckets", "item_buckets", "embedding_dim", "output_dim", "age_buckets", "genders",
                     "countries", "devices", "categories", "price_buckets"):
            if getattr(self, name) < 1:
                msg = f"TwoTowerConfig.{name} must be >= 1, got {getattr(self, name)}"
                raise ValueError(msg)
        if not self.temperature > 0:
            msg = f"TwoTowerConfig.temperature must be > 0, got {self.temperature}"
            raise ValueError(msg)
        object.__setattr__(self, "user_mlp", tuple(self.user_mlp))
        object.__setattr__(self, "item_mlp", tuple(self.item_mlp))

    @classmethod
    def seed_notebook(cls) -> TwoTowerConfig:
        """The seed notebook's sizes: embeddings 64, output 128, age/gender/country 100/3/5, category/price 5/100."""
        return cls(embedding_dim=64, output_dim=128, user_mlp=(256,), item_mlp=(256,), age_buckets=100, genders=3,
                   countries=5, categories=5, price_buckets=100)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TwoTowerConfig:
        return cls(**d)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class TwoTower(nn.Module):
    """Both towers; :meth:`users` and :meth:`items` embed batches into the unit sphere."""

    def __init__(self, config: TwoTowerConfig):
        super().__init__()
        c, e = config, config.embedding_dim
        self.config = config
        self.user_id = nn.Embedding(c.user_buckets, e)
        self.age = nn.Embedding(c.age_buckets, e)
        self.gender = nn.Embedding(c.genders, e)
        self.country = nn.Embedding(c.countries, e)
        self.device = nn.Embedding(c.devices, e)
        self.hour = nn.Embedding(24, e)
        self.item_id = nn.Embedding(c.item_buckets, e)  # items and the users' recent items
        self.category = nn.Embedding(c.categories, e)
        self.price = nn.Embedding(c.price_buckets, e)
        user_in = 7 * e + N_CATEGORIES * 4 + N_CATEGORIES
        self.user_tower = mlp([user_in, *c.user_mlp, c.output_dim])
        self.item_tower = mlp([3 * e + N_ITEM_COUNTS, *c.item_mlp, c.output_dim])
        for table in (self.user_id, self.age, self.gender, self.country, self.device, self.hour, self.item_id,
                      self.category, self.price):
            nn.init.normal_(table.weight, std=0.05)

    def users(self, user_bucket: torch.Tensor, age: torch.Tensor, gender: torch.Tensor, country: torch.Tensor,
              device: torch.Tensor, hour: torch.Tensor, recent_buckets: torch.Tensor,
              category_counts: torch.Tensor) -> torch.Tensor:
        """(B, D) unit vectors. ``recent_buckets`` (B, R) item-id buckets, -1 padded; counts (B, C, 4)."""
        mask = (recent_buckets >= 0).unsqueeze(-1).float()  # (B, R, 1)
        recent = self.item_id(recent_buckets.clamp(min=0)) * mask  # (B, R, E)
        recent_mean = recent.sum(1) / mask.sum(1).clamp(min=1.0)  # (B, E)
        views = category_counts[:, :, 0]  # (B, C)
        shares = views / views.sum(1, keepdim=True).clamp(min=1.0)  # (B, C)
        dense = torch.cat([torch.log1p(category_counts).flatten(1), shares], dim=1)  # (B, 5C)
        x = torch.cat([self.user_id(user_bucket), self.age(age.clamp(0, self.config.age_buckets - 1)),
                       self.gender(gender), self.country(country), self.device(device), self.hour(hour),
                       recent_mean, dense], dim=1)  # (B, 7E + 5C)
        return F.normalize(self.user_tower(x), dim=1)  # (B, D)

    def items(self, item_bucket: torch.Tensor, category: torch.Tensor, price_bucket: torch.Tensor,
              item_counts: torch.Tensor) -> torch.Tensor:
        """(B, D) unit vectors; ``item_counts`` (B, 12) point-in-time counts."""
        x = torch.cat([self.item_id(item_bucket), self.category(category), self.price(price_bucket),
                       torch.log1p(item_counts)], dim=1)  # (B, 3E + 12)
        return F.normalize(self.item_tower(x), dim=1)  # (B, D)


def in_batch_loss(users: torch.Tensor, items: torch.Tensor, log_q: torch.Tensor, item_keys: torch.Tensor,
                  temperature: float) -> torch.Tensor:
    """Sampled softmax over the batch with logQ correction and accidental hits removed.

    ``users``/``items`` (B, D): row i is a positive pair. ``log_q`` (B,): log of the
    probability that item i appears in a batch (its frequency among positives); subtracting it
    from every score of column i makes popular items no cheaper to rank high than rare ones
    (Yi et al. 2019, eq. 3). ``item_keys`` (B,): equal keys mark the same item; another row's
    copy of a row's own positive is not a negative for it (masked to -inf).

    >>> u = torch.eye(2); i = torch.eye(2)
    >>> float(in_batch_loss(u, i, torch.zeros(2), torch.tensor([0, 1]), 1.0)) < float(
    ...     in_batch_loss(u, i.flip(0), torch.zeros(2), torch.tensor([0, 1]), 1.0))
    True
    """
    logits = users @ items.T / temperature - log_q.unsqueeze(0)  # (B, B)
    same = item_keys.unsqueeze(0) == item_keys.unsqueeze(1)  # (B, B)
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(users)))
