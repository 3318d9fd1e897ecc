"""Baselines the DLRM must beat, trained on the same training range.

* item popularity: an item's number of views in the training range (unseen items score 0);
  a ranking signal, not a probability, so it has AUC and ranking metrics but no log-loss;
* logistic regression on the same inputs as the DLRM: the normalised dense features plus a
  one-hot encoding of every sparse bucket (user, item, category, country, device, hour,
  price bucket). One weight per bucket is an ``nn.Embedding(rows, 1)``, which is exactly a
  linear layer over the one-hot columns without building them. It trains with the DLRM's
  loop (:func:`models.train.fit`): BCE, Adam, early stopping on the validation range.

>>> item_popularity(["a", "b", "a"], ["a", "c"]).tolist()
[2.0, 0.0]
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from models.train import Log, Prepared, TrainConfig, fit


def item_popularity(train_item_ids: Sequence[str], item_ids: Sequence[str]) -> np.ndarray:
    """Views of each item in ``item_ids`` counted over ``train_item_ids``: (N,) float64."""
    views = Counter(train_item_ids)
    return np.array([views.get(i, 0) for i in item_ids], dtype=np.float64)


class LogisticRegression(nn.Module):
    """``logit = w . dense + sum_f v_f[sparse_f] + b``: a linear model over dense + one-hot features.

    Notation: B batch, N dense features, F sparse features.

    >>> lr = LogisticRegression(3, (4, 2))
    >>> lr(torch.zeros(2, 3), torch.tensor([[3, 1], [0, 0]])).tolist()
    [0.0, 0.0]
    """

    row_offsets: torch.Tensor  # (F,) buffer: each feature's first row in ``one_hot``

    def __init__(self, num_dense: int, sparse_cardinalities: Sequence[int]) -> None:
        super().__init__()
        self.dense = nn.Linear(num_dense, 1)
        self.one_hot = nn.Embedding(sum(sparse_cardinalities), 1)
        starts = [0, *itertools.accumulate(sparse_cardinalities)][:-1]
        self.register_buffer("row_offsets", torch.tensor(starts, dtype=torch.int64), persistent=False)  # (F,)
        with torch.no_grad():
            self.dense.weight.zero_()
            self.dense.bias.zero_()
            self.one_hot.weight.zero_()

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        """Logits (B,) for dense (B, N) float32 and sparse (B, F) int64."""
        linear = self.dense(dense).squeeze(1)  # (B,)
        weights = self.one_hot(sparse + self.row_offsets).squeeze(2)  # (B, F)
        return linear + weights.sum(dim=1)  # (B,)


def fit_logistic_regression(data: Prepared, cfg: TrainConfig, log: Log = print) -> LogisticRegression:
    """Train the logistic regression on ``data.train``, early-stopping on ``data.val``.

    Uses ``cfg``'s seed, batch size, patience and threads with a higher learning rate (a
    linear model tolerates it) and the same L2 penalty.
    """
    torch.manual_seed(cfg.seed)
    model = LogisticRegression(data.train.dense.shape[1], data.cardinalities)
    fit(model, data.train, data.val, replace(cfg, lr=max(cfg.lr, 1e-2)), log, name="logreg")
    return model.eval()
