"""Train the DLRM on the backfill's point-in-time examples: ``python -m models.train``.

Examples::

    python -m models.train                                   # data/examples.jsonl -> artifacts/dlrm.pt
    python -m models.train --examples data/examples.jsonl --epochs 3 --seed 7 --out /tmp/m.pt

The examples are split by event time into three consecutive parts
(:class:`models.data.TimeSplit`): training (the earliest 80% of the time range by
default), validation (the next ``--val-fraction``, default 10%) and test (the last
``--test-fraction``, default 10%). Training reads the first two only: dense features are
standardised with statistics of the training part, the model minimises BCE-with-logits
with Adam, and validation loss and AUC are measured ``--evals-per-epoch`` times per epoch;
training stops after ``--patience`` evaluations without improvement of the monitored
metric and keeps the best weights. Because validation chose those weights (and the
epoch), its AUC is optimistic; the test part, never read here, gives ``models.evaluate``
an unbiased range. The artifact records the three parts' bounds. Runs are deterministic
for a given ``--seed`` and ``--threads`` (same artifact version id).

Why 10% + 10%: on half a day of default generated history (1.78M views) each held-out part
spans 72 minutes and holds ~190k-215k views, so an AUC on it has a standard error of about
0.001, while training keeps 80% of the range. Smaller data sets (tests, the demo's
minutes of history) may want larger fractions: each part must hold both labels.

:func:`train` does the same from Python and returns the artifact; :func:`fit` is the
optimisation loop, shared with the logistic-regression baseline.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from common.config_cli import config_parser, option, require_field, run_cli
from features.spec import FeatureSpec
from models.artifact import ModelArtifact, save_artifact
from models.data import Examples, ExamplesError, Normaliser, TimeSplit, load_examples
from models.dlrm import DLRM, DLRMConfig
from models.metrics import log_loss, roc_auc

Log = Callable[[str], None]
_DEFAULT_MODEL = DLRMConfig()


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; CLI flags map 1:1 to fields (``--batch-size``)."""

    examples: str = option("data/examples.jsonl", "backfill examples JSONL")
    out: str = option("artifacts/dlrm.pt", "artifact path, written atomically")
    seed: int = option(0, "seed of the model init and the data order")
    epochs: int = option(8, "passes over the training part, at most (early stopping may end sooner)")
    batch_size: int = option(1024, "examples per optimiser step")
    lr: float = option(3e-3, "learning rate")
    optimizer: Literal["adam", "adagrad"] = option("adam", "adam or adagrad")
    weight_decay: float = option(1e-5, "L2 penalty applied by the optimiser (Adam: added to the gradient)")
    val_fraction: float = option(0.1, "fraction of the examples' time range, just before the test part, that validates (early stopping)")
    test_fraction: float = option(0.1, "last fraction of the examples' time range, held out for models.evaluate (never read in training)")
    label_wait_s: float = option(120.0, "views this close to the newest example are in no part: their clicks may "
                                 "lie after the end of the history (generator: 1 s + Exp(10 s) after the view)")
    patience: int = option(3, "validation passes without improvement before stopping")
    monitor: Literal["auc", "loss"] = option("auc", "validation metric for early stopping and the kept weights")
    evals_per_epoch: int = option(2, "validation passes per epoch")
    max_examples: int | None = option(None, "read only the first N (earliest) examples; unset reads all")
    threads: int = option(1, "torch threads; a run is reproducible for a fixed value")
    log_every_s: float = option(5.0, "seconds between progress lines")
    embedding_dim: int = option(_DEFAULT_MODEL.embedding_dim, "D, the embedding dimension")
    bottom_mlp: tuple[int, ...] = option(_DEFAULT_MODEL.bottom_mlp, "bottom MLP widths; the last equals D")
    top_mlp: tuple[int, ...] = option(_DEFAULT_MODEL.top_mlp, "top MLP widths; the last is 1")

    def __post_init__(self) -> None:
        c = "TrainConfig"
        require_field(self.epochs >= 1, c, "epochs", ">= 1", self.epochs)
        require_field(self.batch_size >= 1, c, "batch_size", ">= 1", self.batch_size)
        require_field(self.lr > 0 and math.isfinite(self.lr), c, "lr", "a positive number", self.lr)
        require_field(self.optimizer in ("adam", "adagrad"), c, "optimizer", "adam or adagrad", self.optimizer)
        require_field(self.weight_decay >= 0, c, "weight_decay", ">= 0", self.weight_decay)
        require_field(0.0 < self.val_fraction < 1.0, c, "val_fraction", "in (0, 1)", self.val_fraction)
        require_field(0.0 < self.test_fraction < 1.0, c, "test_fraction", "in (0, 1)", self.test_fraction)
        room = f"< 1 - val_fraction = {1.0 - self.val_fraction:g} (a training part must remain)"
        require_field(self.val_fraction + self.test_fraction < 1.0, c, "test_fraction", room, self.test_fraction)
        require_field(self.label_wait_s >= 0, c, "label_wait_s", ">= 0", self.label_wait_s)
        require_field(self.patience >= 1, c, "patience", ">= 1", self.patience)
        require_field(self.monitor in ("auc", "loss"), c, "monitor", "'auc' or 'loss'", self.monitor)
        require_field(self.evals_per_epoch >= 1, c, "evals_per_epoch", ">= 1", self.evals_per_epoch)
        require_field(self.max_examples is None or self.max_examples >= 1, c, "max_examples", ">= 1", self.max_examples)
        require_field(self.threads >= 1, c, "threads", ">= 1", self.threads)
        require_field(self.log_every_s > 0, c, "log_every_s", "> 0", self.log_every_s)
        object.__setattr__(self, "bottom_mlp", tuple(self.bottom_mlp))
        object.__setattr__(self, "top_mlp", tuple(self.top_mlp))
        self.model_config(FeatureSpec())  # widths are checked by DLRMConfig

    def model_config(self, spec: FeatureSpec) -> DLRMConfig:
        return DLRMConfig.for_spec(spec, embedding_dim=self.embedding_dim, bottom_mlp=self.bottom_mlp, top_mlp=self.top_mlp)


@dataclass(frozen=True)
class Tensors:
    """Model-ready rows: normalised dense (N, n_dense) float32, sparse (N, F) int64, labels (N,) float32."""

    dense: torch.Tensor
    sparse: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    @classmethod
    def build(cls, normaliser: Normaliser, dense: np.ndarray, sparse: np.ndarray, y: np.ndarray) -> Tensors:
        return cls(
            dense=torch.from_numpy(normaliser.apply(dense)),
            sparse=torch.from_numpy(np.ascontiguousarray(sparse, dtype=np.int64)),
            y=torch.from_numpy(np.asarray(y, dtype=np.float32)),
        )


@dataclass
class FitResult:
    """What :func:`fit` observed; the model passed in holds the best weights afterwards."""

    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per validation pass
    best: dict[str, Any] = field(default_factory=dict)  # the history entry of the kept weights
    stopped_early: bool = False
    seconds: float = 0.0


def predict_logits(model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], data: Tensors, chunk: int = 16_384) -> np.ndarray:
    """Logits (N,) float32 of a model over ``data``, in chunks, without gradients."""
    if isinstance(model, nn.Module):
        model.eval()
    out = np.empty(len(data), dtype=np.float32)
    with torch.inference_mode():
        for a in range(0, len(data), chunk):
            out[a : a + chunk] = model(data.dense[a : a + chunk], data.sparse[a : a + chunk]).numpy()
    return out


def validate(model: nn.Module, data: Tensors) -> tuple[float, float]:
    """(log-loss, AUC) of ``model`` on ``data``."""
    p = 1.0 / (1.0 + np.exp(-predict_logits(model, data).astype(np.float64)))
    y = data.y.numpy()
    return log_loss(y, p), roc_auc(y, p)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _improved(entry: dict[str, Any], best: dict[str, Any], monitor: str) -> bool:
    if not best:
        return True
    if monitor == "auc":
        return entry["val_auc"] > best["val_auc"] + 1e-5
    return entry["val_loss"] < best["val_loss"] - 1e-6


def fit(model: nn.Module, train: Tensors, val: Tensors, cfg: TrainConfig, log: Log = print, name: str = "dlrm") -> FitResult:
    """Minimise BCE-with-logits on ``train``; validate, early-stop and keep the best weights.

    The data order comes from ``numpy.random.default_rng(cfg.seed)``; seed torch before
    building the model for a fully reproducible run.
    """
    rng = np.random.default_rng(cfg.seed)
    opt = _optimizer(model, cfg)
    loss_fn = nn.BCEWithLogitsLoss()
    n, bs = len(train), cfg.batch_size
    steps = math.ceil(n / bs)
    eval_at = {math.ceil(steps * (i + 1) / cfg.evals_per_epoch) for i in range(cfg.evals_per_epoch)}
    result = FitResult()
    best_state: dict[str, torch.Tensor] = {}
    t0 = last_log = time.monotonic()
    seen, global_step, bad = 0, 0, 0
    loss_sum, loss_n = 0.0, 0

    def record(epoch: int, step: int) -> dict[str, Any]:
        val_loss, val_auc = validate(model, val)
        elapsed = time.monotonic() - t0
        entry = {
            "epoch": epoch,
            "step": global_step,
            "examples_seen": seen,
            "train_loss": loss_sum / loss_n if loss_n else None,
            "val_loss": val_loss,
            "val_auc": val_auc,
            "elapsed_s": round(elapsed, 3),
        }
        result.history.append(entry)
        train_loss = "-" if entry["train_loss"] is None else f"{entry['train_loss']:.4f}"
        log(
            f"{name} epoch {epoch}/{cfg.epochs} step {step}/{steps} train_loss {train_loss} "
            f"val_loss {val_loss:.4f} val_auc {val_auc:.4f} {seen / max(elapsed, 1e-9):,.0f} ex/s"
        )
        return entry

    record(0, 0)  # the untrained model: what a random model scores
    result.best, best_state = result.history[0], {k: v.clone() for k, v in model.state_dict().items()}
    for epoch in range(1, cfg.epochs + 1):
        order = torch.from_numpy(rng.permutation(n))
        for step in range(1, steps + 1):
            model.train()
            idx = order[(step - 1) * bs : step * bs]  # (b,)
            logits = model(train.dense[idx], train.sparse[idx])  # (b,)
            loss = loss_fn(logits, train.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(idx)
            global_step += 1
            loss_sum, loss_n = loss_sum + loss.item() * len(idx), loss_n + len(idx)
            if step in eval_at:
                entry = record(epoch, step)
                loss_sum, loss_n = 0.0, 0
                last_log = time.monotonic()
                if _improved(entry, result.best, cfg.monitor):
                    result.best, bad = entry, 0
                    best_state = {k: v.clone() for k, v in model.state_dict().items()}
                else:
                    bad += 1
                if bad >= cfg.patience:
                    result.stopped_early = True
                    break
            elif time.monotonic() - last_log >= cfg.log_every_s:
                last_log = time.monotonic()
                rate = seen / (last_log - t0)
                log(f"{name} epoch {epoch}/{cfg.epochs} step {step}/{steps} train_loss {loss_sum / loss_n:.4f} {rate:,.0f} ex/s")
        if result.stopped_early:
            log(f"{name} early stop: no {cfg.monitor} improvement in {cfg.patience} evaluations")
            break
    model.load_state_dict(best_state)
    result.seconds = time.monotonic() - t0
    return result


@dataclass(frozen=True)
class Prepared:
    """Examples featurized, split by time and normalised: what both the DLRM and the baselines train on.

    Only the training and validation parts become tensors; the test part is a mask, for
    evaluation to build its rows from (:meth:`rows`).
    """

    split: TimeSplit  # the three parts' bounds
    normaliser: Normaliser  # fitted on the training rows
    train: Tensors  # normalised training rows
    val: Tensors  # normalised validation rows
    train_mask: np.ndarray  # (N,) bool over the examples
    val_mask: np.ndarray  # (N,) bool
    test_mask: np.ndarray  # (N,) bool
    dense: np.ndarray  # (N, n_dense) float32 featurized, not normalised (the scorer normalises)
    sparse: np.ndarray  # (N, F) int64 bucket ids
    y: np.ndarray  # (N,) int8 click labels
    cardinalities: tuple[int, ...]  # rows per sparse feature

    def rows(self, mask: np.ndarray) -> Tensors:
        """The rows under ``mask`` (N,) bool, normalised with the training statistics."""
        return Tensors.build(self.normaliser, self.dense[mask], self.sparse[mask], self.y[mask])


def prepare(examples: Examples, spec: FeatureSpec, split: TimeSplit) -> Prepared:
    """Featurize, split by ``split``'s bounds and normalise with the training part's statistics.

    Raises:
        ExamplesError: a part of the split holds no example.
    """
    train_mask, val_mask, test_mask = split.masks(examples.ts)
    dense, sparse = examples.featurize(spec)
    normaliser = Normaliser.fit(dense[train_mask])
    y = examples.click
    return Prepared(
        split=split,
        normaliser=normaliser,
        train=Tensors.build(normaliser, dense[train_mask], sparse[train_mask], y[train_mask]),
        val=Tensors.build(normaliser, dense[val_mask], sparse[val_mask], y[val_mask]),
        train_mask=train_mask,
        val_mask=val_mask,
        test_mask=test_mask,
        dense=dense,
        sparse=sparse,
        y=y,
        cardinalities=tuple(spec.sparse_cardinalities),
    )


def require_both_labels(part: str, y: np.ndarray) -> None:
    """Raise ExamplesError unless ``y`` (0/1 labels of one part) holds both labels: AUC and BCE need them."""
    clicks = int(np.sum(y))
    if clicks in (0, len(y)):
        msg = f"the {part} part has {clicks} clicks in {len(y)} views; it needs both labels (AUC and BCE are degenerate)"
        raise ExamplesError(msg)


def train(cfg: TrainConfig, examples: Examples | None = None, spec: FeatureSpec | None = None, log: Log = print) -> ModelArtifact:
    """Train a DLRM and write its artifact to ``cfg.out``; returns the artifact.

    Args:
        cfg: the run's settings.
        examples: already-loaded examples; None reads ``cfg.examples``.
        spec: the flow's feature spec (default ``FeatureSpec()``).
        log: where progress lines go.
    """
    spec = spec or FeatureSpec()
    torch.set_num_threads(cfg.threads)
    t0 = time.monotonic()
    if examples is None:
        examples = load_examples(cfg.examples, cfg.max_examples, spec)
    split = TimeSplit.from_fractions(examples.ts, cfg.val_fraction, cfg.test_fraction, round(cfg.label_wait_s * 1000))
    data = prepare(examples, spec, split)
    require_both_labels("training", data.train.y.numpy())
    require_both_labels("validation", data.val.y.numpy())
    n_test = int(data.test_mask.sum())
    log(
        f"loaded {len(examples):,} examples in {time.monotonic() - t0:.1f}s: {len(data.train):,} train / "
        f"{len(data.val):,} validation from ts {data.split.val_start_ms} / {n_test:,} test from ts "
        f"{data.split.test_start_ms} (held out for models.evaluate), {len(examples) - int(data.train_mask.sum() + data.val_mask.sum()) - n_test:,} "
        f"in the last {cfg.label_wait_s:g} s left out (labels incomplete), "
        f"click rate {float(data.train.y.mean()):.3f} / {float(data.val.y.mean()):.3f}"
    )
    torch.manual_seed(cfg.seed)
    model = DLRM(cfg.model_config(spec))
    result = fit(model, data.train, data.val, cfg, log)
    best = result.best
    metrics = {
        "val_auc": best["val_auc"],
        "val_loss": best["val_loss"],
        "best_epoch": best["epoch"],
        "best_step": best["step"],
        "initial_val_auc": result.history[0]["val_auc"],
        "n_train": len(data.train),
        "n_val": len(data.val),
        "n_test": n_test,
        "train_click_rate": float(data.train.y.mean()),
        "val_click_rate": float(data.val.y.mean()),
        "stopped_early": result.stopped_early,
        "train_seconds": round(result.seconds, 3),
    }
    artifact = ModelArtifact(
        config=model.config,
        spec=spec,
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        normaliser=data.normaliser,
        split=data.split.to_dict(),
        metrics=metrics,
        history=result.history,
        train_config={**asdict(cfg), "bottom_mlp": list(cfg.bottom_mlp), "top_mlp": list(cfg.top_mlp)},
    )
    version = save_artifact(artifact, cfg.out)
    log(
        f"wrote {cfg.out} version {version}: val_auc {best['val_auc']:.4f} val_loss {best['val_loss']:.4f} "
        f"(epoch {best['epoch']}, step {best['step']}) in {time.monotonic() - t0:.1f}s"
    )
    return artifact


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(TrainConfig, "models.train", "Train the DLRM on the features flow's backfill examples.")
    return run_cli(parser, argv, TrainConfig, lambda cfg: train(cfg, log=lambda line: print(line, flush=True)), (ExamplesError, OSError))


if __name__ == "__main__":
    sys.exit(main())
