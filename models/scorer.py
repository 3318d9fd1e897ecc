"""The batch scorer the features dataflow calls once per runtime batch.

``Scorer.load(path, expected_spec)`` reads and checks the artifact (a spec mismatch or a
corrupt file raises :class:`~models.artifact.ArtifactError` at start, never mid-stream);
``score(...)`` maps a batch of point-in-time count vectors plus event context to P(click):
:func:`features.spec.featurize`, the artifact's normalisation, one forward pass under
``torch.inference_mode()`` on one torch thread, sigmoid.

Batch invariance: on CPU, a GEMM may round a row differently depending on how many rows
the batch has (small or ragged batches take other kernels). Runtime batches differ between
a live run and a replay, so the scorer pads every batch to a multiple of ``pad_rows`` with
zero rows, which gives each event the same bits whatever the batch size (checked for 1 to
4,096 rows, 2026-11-22). The score of an event then depends on the event alone, and
replays write the same bytes.

Not thread-safe: the scorer reuses its input buffers between calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from events.schema import CATEGORIES, COUNTRIES, DEVICES
from features.spec import FeatureSpec, featurize
from models.artifact import ModelArtifact, load_artifact
from models.dlrm import FrozenDLRM


@dataclass(frozen=True)
class ScorerConfig:
    """How the scorer runs; the defaults suit a 2-core machine shared with Kafka and Bytewax."""

    threads: int = 1  # torch intra-op threads (process-wide); 2 gave p99 spikes of 10-160 ms (2026-11-22)
    pad_rows: int = 16  # pad each batch to a multiple of this many rows (batch-invariant scores)

    def __post_init__(self) -> None:
        if self.threads < 1:
            msg = f"ScorerConfig.threads must be >= 1, got {self.threads}"
            raise ValueError(msg)
        if self.pad_rows < 1:
            msg = f"ScorerConfig.pad_rows must be >= 1, got {self.pad_rows}"
            raise ValueError(msg)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """P = 1 / (1 + exp(-logit)) in float64, rounded to float32.

    Not ``torch.sigmoid``: its vectorised loop computes the last few elements of a tensor
    with scalar code that can differ by one ulp, which would make a score depend on the
    event's position in the batch. In float64 such a difference almost never survives the
    rounding to float32.

    >>> sigmoid(np.array([0.0, 2.0], dtype=np.float32)).tolist()
    [0.5, 0.8807970881462097]
    """
    return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)


class Scorer:
    """P(click) for batches of views, from a model artifact.

    Attributes:
        version: the artifact's version id (12 hex digits), for the score records.
        spec: the feature spec the model was trained on (equal to the flow's).
        artifact: the loaded artifact (config, metrics, split, ...).
    """

    def __init__(self, artifact: ModelArtifact, config: ScorerConfig | None = None) -> None:
        self.config = config or ScorerConfig()
        torch.set_num_threads(self.config.threads)
        self.artifact = artifact
        self.version = artifact.version
        self.spec = artifact.spec
        self._forward = FrozenDLRM(artifact.build_model())
        self._normaliser = artifact.normaliser
        self._dense = np.zeros((0, artifact.config.num_dense), dtype=np.float32)  # (capacity, N) padded input
        self._sparse = np.zeros((0, artifact.config.num_sparse), dtype=np.int64)  # (capacity, F) padded input

    @classmethod
    def load(cls, path: str | Path, expected_spec: FeatureSpec, config: ScorerConfig | None = None) -> Scorer:
        """Load and check an artifact; raises ArtifactError naming the problem."""
        return cls(load_artifact(path, expected_spec), config)

    def _buffers(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Input buffers of at least ``rows`` rows whose padding rows are zero."""
        if rows > len(self._dense):
            self._dense = np.zeros((rows, self._dense.shape[1]), dtype=np.float32)
            self._sparse = np.zeros((rows, self._sparse.shape[1]), dtype=np.int64)
        return self._dense[:rows], self._sparse[:rows]

    def score_features(self, dense: np.ndarray, sparse: np.ndarray) -> np.ndarray:
        """P(click) (B,) float32 from featurized, not yet normalised inputs (B, N) / (B, F)."""
        b = len(dense)
        if b == 0:
            return np.empty(0, dtype=np.float32)
        padded = -(-b // self.config.pad_rows) * self.config.pad_rows
        dense_buf, sparse_buf = self._buffers(padded)
        self._normaliser.apply(dense, out=dense_buf[:b])
        sparse_buf[:b] = sparse
        dense_buf[b:] = 0.0
        sparse_buf[b:] = 0
        with torch.inference_mode():
            logits = self._forward(torch.from_numpy(dense_buf), torch.from_numpy(sparse_buf))  # (padded,)
        return sigmoid(logits.numpy()[:b])

    def score(
        self,
        counts: np.ndarray,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        categories: Sequence[str],
        countries: Sequence[str],
        devices: Sequence[str],
        ts_ms: np.ndarray,
        prices: np.ndarray,
    ) -> np.ndarray:
        """P(click) for a batch of views, (B,) float32; the same inputs give the same bytes.

        Args:
            counts: (B, spec.count_len) integer point-in-time counts (FeatureSpec layout).
            user_ids, item_ids, categories, countries, devices: B strings each.
            ts_ms: (B,) event times, epoch ms UTC (the hour-of-day feature).
            prices: (B,) prices in USD, > 0.
        """
        if len(counts) == 0:
            return np.empty(0, dtype=np.float32)
        dense, sparse = featurize(
            self.spec, counts, user_ids, item_ids, categories, countries, devices, ts_ms, prices  # type: ignore[arg-type]
        )
        return self.score_features(dense, sparse)


def _zipf_weights(n: int, exponent: float) -> np.ndarray:
    """Sampling weights (n,) proportional to ``rank ** -exponent``, summing to 1."""
    w = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return w / w.sum()


USERS, ITEMS = 10_000, 5_000  # the generator's default world
_USER_WEIGHTS = _zipf_weights(USERS, 1.0)  # top 20% of users make ~83% of the views, as the generator's users do
_ITEM_WEIGHTS = _zipf_weights(ITEMS, 0.5)  # top 10% of items get ~32% of the views (generator: 30%)


def random_views(n: int, rng: np.random.Generator, spec: FeatureSpec | None = None) -> dict[str, Any]:
    """A synthetic batch of ``n`` views as keyword arguments of :meth:`Scorer.score`.

    For benchmarks and tests, shaped like the generator's default stream: random counts
    (0-39); ids from 10,000 users and 5,000 items with heavy-tailed activity (Zipf weights,
    so a batch repeats the busy users' and popular items' ids as real traffic does); the
    schema's categories, countries and devices; times within one day; lognormal prices.

    >>> batch = random_views(3, np.random.default_rng(0))
    >>> batch["counts"].shape, len(batch["user_ids"])
    ((3, 36), 3)
    """
    spec = spec or FeatureSpec()
    return {
        "counts": rng.integers(0, 40, (n, spec.count_len)),
        "user_ids": [f"u{i}" for i in rng.choice(USERS, n, p=_USER_WEIGHTS)],
        "item_ids": [f"i{i}" for i in rng.choice(ITEMS, n, p=_ITEM_WEIGHTS)],
        "categories": [CATEGORIES[i] for i in rng.integers(0, len(CATEGORIES), n)],
        "countries": [COUNTRIES[i] for i in rng.integers(0, len(COUNTRIES), n)],
        "devices": [DEVICES[i] for i in rng.integers(0, len(DEVICES), n)],
        "ts_ms": 1_732_233_600_000 + rng.integers(0, 86_400_000, n),
        "prices": rng.lognormal(4.0, 1.0, n),
    }
