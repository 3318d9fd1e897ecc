"""The Two-Tower artifact: both towers, the catalog's item embeddings, and how they were made.

One ``torch.save`` dict (``torch.load(weights_only=True)`` reads it), written atomically like
the DLRM's (:func:`models.artifact.write_payload`):

* ``format`` ``recstream-two-tower``, ``format_version``, ``version`` (12 hex digits of the
  weights' sha256), ``created_at``;
* ``config``: :class:`~models.two_tower.TwoTowerConfig`; ``state_dict``: the weights;
* ``catalog``: the item ids in index order, their categories and prices, and ``embeddings``
  (I, D) float32: the item tower's output for every item with its popularity as of
  ``embeddings_as_of`` (epoch ms, the end of the training data): what a serving index loads;
* ``split``, ``metrics``, ``history``, ``train_config``: as for the DLRM.

A file that is not this artifact, or whose weights do not fit its config or its recorded
version, or whose embeddings do not fit its catalog, fails at load with the difference named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.artifact import ArtifactError, read_payload, weights_version, write_payload
from models.two_tower import TwoTower, TwoTowerConfig

FORMAT = "recstream-two-tower"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class RetrievalArtifact:
    """A trained Two-Tower with its catalog embeddings and training record."""

    config: TwoTowerConfig
    state_dict: dict[str, torch.Tensor]
    item_ids: list[str]  # catalog order: row n of ``embeddings`` is item_ids[n]
    category: np.ndarray  # (I,) int64 index into CATEGORIES
    price: np.ndarray  # (I,) float64
    embeddings: np.ndarray  # (I, D) float32 unit vectors
    embeddings_as_of: int  # epoch ms: the item popularity the embeddings were computed with
    split: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    train_config: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""

    @cached_property
    def version(self) -> str:
        """The weights' content hash (computed once: it reads every weight)."""
        return weights_version(self.state_dict)

    def build_model(self) -> TwoTower:
        model = TwoTower(self.config)
        model.load_state_dict(self.state_dict)
        return model.eval()


def save_retrieval_artifact(artifact: RetrievalArtifact, path: str | Path) -> str:
    """Write atomically; returns the version id."""
    payload: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "version": artifact.version,
        "created_at": artifact.created_at or datetime.now(UTC).isoformat(timespec="seconds"),
        "config": artifact.config.to_dict(),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in artifact.state_dict.items()},
        "catalog": {"item_ids": list(artifact.item_ids), "category": torch.from_numpy(artifact.category),
                    "price": torch.from_numpy(artifact.price), "embeddings": torch.from_numpy(artifact.embeddings),
                    "embeddings_as_of": artifact.embeddings_as_of},
        "split": dict(artifact.split), "metrics": dict(artifact.metrics), "history": list(artifact.history),
        "train_config": dict(artifact.train_config),
    }
    write_payload(payload, Path(path))
    return payload["version"]


def load_retrieval_artifact(path: str | Path) -> RetrievalArtifact:
    """Read and check; raises ArtifactError naming the problem."""
    path = Path(path)
    payload = read_payload(path, FORMAT, FORMAT_VERSION, "python -m models.train_retrieval")
    try:
        catalog = payload["catalog"]
        artifact = RetrievalArtifact(
            config=TwoTowerConfig.from_dict(payload["config"]), state_dict=payload["state_dict"],
            item_ids=list(catalog["item_ids"]), category=catalog["category"].numpy(), price=catalog["price"].numpy(),
            embeddings=catalog["embeddings"].numpy(), embeddings_as_of=int(catalog["embeddings_as_of"]),
            split=payload["split"], metrics=payload["metrics"], history=payload["history"],
            train_config=payload["train_config"], created_at=payload["created_at"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        msg = f"model artifact {path} is malformed ({type(e).__name__}: {e})"
        raise ArtifactError(msg) from None
    if artifact.version != payload["version"]:
        msg = f"model artifact {path} is corrupt: weights hash to {artifact.version}, recorded {payload['version']}"
        raise ArtifactError(msg)
    shape = artifact.embeddings.shape
    if shape != (len(artifact.item_ids), artifact.config.output_dim):
        msg = (f"model artifact {path} is inconsistent: embeddings {shape} for {len(artifact.item_ids)} items of "
               f"dimension {artifact.config.output_dim}")
        raise ArtifactError(msg)
    try:
        artifact.build_model()
    except RuntimeError as e:
        msg = f"model artifact {path}: weights do not fit the config ({str(e)[:300]})"
        raise ArtifactError(msg) from None
    return artifact


def require_catalog(artifact: RetrievalArtifact, item_ids: list[str], where: str) -> None:
    """Refuse a catalog that is not the artifact's, naming the first difference."""
    if artifact.item_ids == item_ids:
        return
    extra = sorted(set(item_ids) - set(artifact.item_ids))[:3]
    missing = sorted(set(artifact.item_ids) - set(item_ids))[:3]
    msg = (f"the catalog of {where} ({len(item_ids)} items) is not the artifact's ({len(artifact.item_ids)} items): "
           f"not in the artifact {extra}, only in the artifact {missing}" if extra or missing else
           f"the catalog of {where} lists the artifact's items in another order")
    raise ArtifactError(msg)
