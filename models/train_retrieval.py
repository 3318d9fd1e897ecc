"""Train the Two-Tower retriever: ``python -m models.train_retrieval``.

Examples::

    python -m models.train_retrieval --examples data/examples.jsonl \\
        --users data/history.users.jsonl --items data/history.items.jsonl --out artifacts/two_tower.pt
    python -m models.train_retrieval --users topic:users --items topic:items     # profiles from the topics

Positives are the clicked views of the backfill's examples, each with the point-in-time
inputs of its view (``models/retrieval_data.py``). The examples are split by event time
exactly as for the DLRM (:class:`models.data.TimeSplit`: training earliest, validation, test
latest); training reads the training part, and after every epoch measures Recall@50 on the
validation part's clicks against the whole catalog (item embeddings with the popularity as of
the validation start); it stops after ``--patience`` epochs without improvement and keeps the
best weights. The loss is in-batch softmax with the logQ correction of Yi et al. (2019)
(:func:`models.two_tower.in_batch_loss`), q = each item's share of the training positives.
Runs are deterministic for a given ``--seed`` and ``--threads``.

The artifact (``models/retrieval_artifact.py``) holds both towers and the catalog's item
embeddings with the popularity as of the end of the examples, for serving.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from common.config_cli import config_parser, option, require_field, run_cli
from models.artifact import ArtifactError
from models.data import ExamplesError, TimeSplit
from models.retrieval_artifact import RetrievalArtifact, save_retrieval_artifact
from models.retrieval_data import (
    Catalog,
    Profiles,
    Queries,
    hashed,
    load_profiles,
    load_queries,
    price_bucket,
    user_inputs,
)
from models.retrieval_metrics import ranking_metrics, ranks_in_chunks
from models.two_tower import TwoTower, TwoTowerConfig, in_batch_loss

Log = Callable[[str], None]
_DEFAULT = TwoTowerConfig()


@dataclass(frozen=True)
class RetrievalTrainConfig:
    """A retriever training run; CLI flags map 1:1 to fields."""

    examples: str = option("data/examples.jsonl", "backfill examples JSONL (rows with 'history')")
    users: str = option("data/history.users.jsonl", "user profiles JSONL, or topic:NAME to read a topic")
    items: str = option("data/history.items.jsonl", "the catalog JSONL, or topic:NAME to read a topic")
    out: str = option("artifacts/two_tower.pt", "artifact path, written atomically")
    seed: int = option(0, "seed of the model init and the batch order")
    epochs: int = option(8, "passes over the training clicks, at most (early stopping may end sooner)")
    batch_size: int = option(2048, "clicks per step: the in-batch softmax has batch_size - 1 negatives")
    lr: float = option(1e-3, "Adam learning rate")
    val_fraction: float = option(0.1, "fraction of the time range, before the test part, for early stopping")
    test_fraction: float = option(0.1, "last fraction of the time range, held out for evaluation")
    patience: int = option(2, "epochs without a better validation Recall@50 before stopping")
    logq: bool = option(True, "subtract log(item frequency) from in-batch scores (Yi et al. 2019)")
    temperature: float = option(_DEFAULT.temperature, "score = <u, i> / temperature")
    embedding_dim: int = option(_DEFAULT.embedding_dim, "E, every embedding table")
    output_dim: int = option(_DEFAULT.output_dim, "D, the towers' output")
    threads: int = option(2, "torch threads; a run is reproducible for a fixed value")
    max_examples: int | None = option(None, "read only the first N (earliest) examples")
    log_every_s: float = option(5.0, "seconds between progress lines")

    def __post_init__(self) -> None:
        c = "RetrievalTrainConfig"
        require_field(self.epochs >= 1, c, "epochs", ">= 1", self.epochs)
        require_field(self.batch_size >= 2, c, "batch_size", ">= 2 (in-batch negatives)", self.batch_size)
        require_field(self.lr > 0 and math.isfinite(self.lr), c, "lr", "a positive number", self.lr)
        require_field(0 < self.val_fraction < 1, c, "val_fraction", "in (0, 1)", self.val_fraction)
        require_field(0 < self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1, c, "test_fraction",
                      "in (0, 1 - val_fraction)", self.test_fraction)
        require_field(self.patience >= 1, c, "patience", ">= 1", self.patience)
        require_field(self.temperature > 0, c, "temperature", "> 0", self.temperature)
        require_field(self.threads >= 1, c, "threads", ">= 1", self.threads)
        require_field(self.max_examples is None or self.max_examples >= 1, c, "max_examples", ">= 1", self.max_examples)
        require_field(self.log_every_s > 0, c, "log_every_s", "> 0", self.log_every_s)
        self.model_config()  # sizes are checked there

    def model_config(self) -> TwoTowerConfig:
        return TwoTowerConfig(embedding_dim=self.embedding_dim, output_dim=self.output_dim, temperature=self.temperature)


class Encoder:
    """Tensors of queries and items for a model config, built once per data set."""

    def __init__(self, config: TwoTowerConfig, queries: Queries, catalog: Catalog, profiles: Profiles):
        self.config, self.queries, self.catalog = config, queries, catalog
        users = user_inputs(queries, profiles, config.user_buckets)
        self.item_buckets = np.array([hashed(i, config.item_buckets) for i in catalog.item_ids], dtype=np.int64)  # (I,)
        recent = np.where(queries.recent >= 0, self.item_buckets[np.maximum(queries.recent, 0)], -1)  # (N, R)
        self.user_cols = [torch.from_numpy(a) for a in (users.user_bucket, users.age, users.gender, users.country,
                                                        users.device, users.hour, recent)]
        self.user_counts = torch.from_numpy(users.category_counts)  # (N, C, 4)
        self.price_buckets = price_bucket(catalog.price)  # (I,)

    def users(self, model: TwoTower, rows: np.ndarray) -> torch.Tensor:
        """(len(rows), D) user embeddings of those queries."""
        idx = torch.from_numpy(rows)
        user_bucket, age, gender, country, device, hour, recent = (c[idx] for c in self.user_cols)
        return model.users(user_bucket, age, gender, country, device, hour, recent, self.user_counts[idx])

    def positives(self, model: TwoTower, rows: np.ndarray) -> torch.Tensor:
        """(len(rows), D) embeddings of the queries' viewed items, with the popularity of each view."""
        items = self.queries.item_index[rows]
        return model.items(torch.from_numpy(self.item_buckets[items]), torch.from_numpy(self.catalog.category[items]),
                           torch.from_numpy(self.price_buckets[items]),
                           torch.from_numpy(self.queries.item_counts[rows]))

    def catalog_embeddings(self, model: TwoTower, as_of_ms: int) -> np.ndarray:
        """(I, D) float32 item embeddings with every item's popularity as of ``as_of_ms``."""
        with torch.inference_mode():
            out = model.items(torch.from_numpy(self.item_buckets), torch.from_numpy(self.catalog.category),
                              torch.from_numpy(self.price_buckets),
                              torch.from_numpy(self.catalog.popularity_at(self.queries, as_of_ms)))
        return out.numpy()

    def user_embeddings(self, model: TwoTower, rows: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """(len(rows), D) float32, without gradients."""
        out = np.empty((len(rows), self.config.output_dim), dtype=np.float32)
        with torch.inference_mode():
            for a in range(0, len(rows), chunk):
                out[a:a + chunk] = self.users(model, rows[a:a + chunk]).numpy()
        return out


def catalog_ranks(encoder: Encoder, model: TwoTower, rows: np.ndarray, as_of_ms: int) -> np.ndarray:
    """Ranks of the clicked items of queries ``rows`` in the whole catalog, as of ``as_of_ms``."""
    model.eval()
    items = encoder.catalog_embeddings(model, as_of_ms)  # (I, D)
    users = encoder.user_embeddings(model, rows)  # (n, D)
    targets = encoder.queries.item_index[rows]
    return ranks_in_chunks(lambda r: users[r] @ items.T, targets)


def train_retrieval(cfg: RetrievalTrainConfig, log: Log = print) -> RetrievalArtifact:
    """Train, early-stop on validation Recall@50, save and return the artifact."""
    t0 = time.monotonic()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    profiles = load_profiles(cfg.users, cfg.items)
    catalog = Catalog.from_profiles(profiles)
    queries = load_queries(cfg.examples, catalog, profiles, max_examples=cfg.max_examples)
    split = TimeSplit.from_fractions(queries.ts, cfg.val_fraction, cfg.test_fraction)
    train_mask, val_mask, _ = split.masks(queries.ts)
    train_rows = np.flatnonzero(train_mask & queries.positive)
    val_rows = np.flatnonzero(val_mask & queries.positive)
    if len(train_rows) < cfg.batch_size or not len(val_rows):
        msg = (f"{len(train_rows)} training and {len(val_rows)} validation clicks in {cfg.examples}: too few for "
               f"batches of {cfg.batch_size} (generate a longer history or lower --batch-size)")
        raise ExamplesError(msg)
    log(f"train_retrieval: {len(queries):,} views, {len(catalog):,} items, {len(profiles.users):,} user profiles; "
        f"clicks: {len(train_rows):,} train / {len(val_rows):,} validation ({time.monotonic() - t0:.1f} s)")
    config = cfg.model_config()
    model = TwoTower(config)
    encoder = Encoder(config, queries, catalog, profiles)
    counts = np.bincount(queries.item_index[train_rows], minlength=len(catalog)).astype(np.float64)
    log_q = torch.from_numpy(np.log(np.maximum(counts, 0.5) / len(train_rows)).astype(np.float32))  # (I,)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {}
    best_state: dict[str, torch.Tensor] = {}
    last_log, bad = time.monotonic(), 0
    steps_per_epoch = len(train_rows) // cfg.batch_size
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = rng.permutation(train_rows)
        loss_sum = 0.0
        for step in range(steps_per_epoch):
            rows = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            items = queries.item_index[rows]
            q = log_q[items] if cfg.logq else torch.zeros(len(rows))
            loss = in_batch_loss(encoder.users(model, rows), encoder.positives(model, rows), q,
                                 torch.from_numpy(items), config.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach())
            if time.monotonic() - last_log >= cfg.log_every_s:
                last_log = time.monotonic()
                log(f"train_retrieval: epoch {epoch} step {step + 1}/{steps_per_epoch} loss {loss_sum / (step + 1):.4f}")
        metrics = ranking_metrics(catalog_ranks(encoder, model, val_rows, split.val_start_ms))
        entry = {"epoch": epoch, "train_loss": loss_sum / max(steps_per_epoch, 1),
                 "val_recall@50": metrics["recall@50"], "val_recall@100": metrics["recall@100"],
                 "val_mrr": metrics["mrr"], "seconds": round(time.monotonic() - t0, 1)}
        history.append(entry)
        log(f"train_retrieval: epoch {epoch}: loss {entry['train_loss']:.4f}, validation Recall@50 "
            f"{entry['val_recall@50']:.4f}, Recall@100 {entry['val_recall@100']:.4f} ({entry['seconds']:.0f} s)")
        if not best or entry["val_recall@50"] > best["val_recall@50"] + 1e-5:
            best, bad = entry, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                log(f"train_retrieval: no better validation Recall@50 for {bad} epochs: stopping, keeping epoch "
                    f"{best['epoch']}")
                break
    model.load_state_dict(best_state)
    model.eval()
    end_ms = int(queries.ts.max()) + 1
    artifact = RetrievalArtifact(
        config=config, state_dict=best_state, item_ids=catalog.item_ids, category=catalog.category,
        price=catalog.price, embeddings=encoder.catalog_embeddings(model, end_ms), embeddings_as_of=end_ms,
        split=split.to_dict(), metrics={"validation": best}, history=history, train_config=asdict(cfg))
    version = save_retrieval_artifact(artifact, cfg.out)
    log(f"train_retrieval: wrote {cfg.out} (version {version}) in {time.monotonic() - t0:.0f} s; best epoch "
        f"{best['epoch']}, validation Recall@50 {best['val_recall@50']:.4f}")
    return artifact


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(RetrievalTrainConfig, "models.train_retrieval",
                           "Train the Two-Tower retriever on the features flow's backfill examples and the profiles.")
    return run_cli(parser, argv, RetrievalTrainConfig,
                   lambda cfg: train_retrieval(cfg, log=lambda line: print(line, flush=True)),
                   (ExamplesError, ArtifactError, OSError))


if __name__ == "__main__":
    sys.exit(main())
