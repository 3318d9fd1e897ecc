"""PNG plots of an evaluation: ROC curves, calibration, the training curve.

Uses ``matplotlib.figure.Figure`` directly (the Agg canvas, no pyplot), so importing this
module neither needs a display nor changes matplotlib's global backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

MAX_POINTS = 2_000  # ROC points drawn per curve; the AUC is computed on all of them


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= MAX_POINTS:
        return x, y
    idx = np.unique(np.linspace(0, len(x) - 1, MAX_POINTS).astype(np.int64))
    return x[idx], y[idx]


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], path: str | Path) -> Path:
    """ROC curves, one per scorer: ``{name: (fpr, tpr, auc)}``."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    for name, (fpr, tpr, auc) in curves.items():
        x, y = _thin(np.asarray(fpr), np.asarray(tpr))
        ax.plot(x, y, label=f"{name} (AUC {auc:.4f})", linestyle="--" if name == "oracle" else "-")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, label="random (AUC 0.5)")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test range", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_calibration(bins: Mapping[str, Sequence[Mapping[str, float]]], path: str | Path) -> Path:
    """Observed click rate against mean predicted probability per bucket, one line per model."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, label="perfect calibration")
    for name, entries in bins.items():
        pred = [b["mean_predicted"] for b in entries]
        obs = [b["observed"] for b in entries]
        ax.plot(pred, obs, marker="o", markersize=4, label=name)
    ax.set(xlabel="mean predicted P(click)", ylabel="observed click rate", title="Calibration, test range", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def plot_training_curve(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Train / validation loss and validation AUC against examples seen, from the artifact's history."""
    fig = Figure(figsize=(8, 4))
    loss_ax, auc_ax = fig.subplots(1, 2)
    seen = [h["examples_seen"] for h in history]
    trained = [(h["examples_seen"], h["train_loss"]) for h in history if h.get("train_loss") is not None]
    if trained:
        loss_ax.plot(*zip(*trained, strict=True), marker=".", label="train loss (since the previous pass)")
    loss_ax.plot(seen, [h["val_loss"] for h in history], marker=".", label="validation loss")
    loss_ax.set(xlabel="examples seen", ylabel="BCE", title="Loss")
    loss_ax.legend(fontsize=8)
    auc_ax.plot(seen, [h["val_auc"] for h in history], marker=".", color="C2")
    auc_ax.set(xlabel="examples seen", ylabel="AUC", title="Validation AUC")
    return _save(fig, path)


def plot_recall_at_k(curves: Mapping[str, Mapping[int, float]], path: str | Path) -> Path:
    """Recall@K against K, one line per retriever: ``{name: {K: recall}}``."""
    fig = Figure(figsize=(6, 4.5))
    ax = fig.subplots()
    for name, points in curves.items():
        ks = sorted(points)
        ax.plot(ks, [points[k] for k in ks], marker=".", label=name, linestyle="--" if name == "oracle" else "-")
    ax.set(xlabel="K (items retrieved of the whole catalog)", ylabel="Recall@K (clicked item retrieved)",
           title="Retrieval, test range", xscale="log")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_embedding_map(xy: np.ndarray, labels: Sequence[str], title: str, path: str | Path) -> Path:
    """A 2-D map of embeddings (t-SNE), one colour per label."""
    fig = Figure(figsize=(6, 5.5))
    ax = fig.subplots()
    names = sorted(set(labels))
    for i, name in enumerate(names):
        mask = np.array([label == name for label in labels])
        ax.scatter(xy[mask, 0], xy[mask, 1], s=4, alpha=0.6, color=f"C{i}", label=name)
    ax.set(title=title, xticks=[], yticks=[])
    ax.legend(fontsize=8, markerscale=3)
    return _save(fig, path)
