"""PNG plots of an experiment report (matplotlib's Agg canvas through ``Figure``; no pyplot).

* :func:`plot_ctr`: the seed notebook's two charts, CTR per arm as bars and with 95% intervals
  (the user-level interval, the impression-level one beside it, the true CTR as a marker);
* :func:`plot_lift`: the CTR lift over time with its fixed-horizon 95% interval, the running
  confidence sequence and the true lift;
* :func:`plot_pvalues`: the fixed-horizon and the always-valid p-values over time, with alpha.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from models.plots import _save

P_FLOOR = 1e-10  # p-values below are drawn at this floor, so alpha stays readable on the log axis


def plot_ctr(report: dict[str, Any], path: str | Path) -> Path:
    arms = report["arms"]
    names = [a["arm"] for a in arms]
    ctr = [100 * a["ctr"] for a in arms]
    fig = Figure(figsize=(11, 4))
    ax0, ax1 = fig.subplots(1, 2)
    bars = ax0.bar(names, ctr, color=["steelblue", "coral", "seagreen", "orchid"][: len(arms)])
    ax0.bar_label(bars, fmt="%.2f%%")
    ax0.set_ylabel("CTR (%)")
    ax0.set_title("Click-through rate per arm")
    for i, a in enumerate(arms):
        lo, hi = a["ctr_ci"]
        ax1.errorbar([i - 0.08], [100 * a["ctr"]], yerr=[[100 * (a["ctr"] - lo)], [100 * (hi - a["ctr"])]], fmt="o",
                     capsize=5, color="black", label="user-level (delta method)" if i == 0 else None)
        lo, hi = a["ctr_impression_ci"]
        ax1.errorbar([i + 0.08], [100 * a["ctr"]], yerr=[[100 * (a["ctr"] - lo)], [100 * (hi - a["ctr"])]], fmt="s",
                     capsize=5, color="grey", label="impression-level (binomial)" if i == 0 else None)
        if a["true_ctr"] is not None:
            ax1.plot([i], [100 * a["true_ctr"]], "r*", markersize=12, label="true CTR" if i == 0 else None)
    ax1.set_xticks(range(len(arms)), names)
    ax1.set_xlim(-0.5, len(arms) - 0.5)
    ax1.set_ylabel("CTR (%)")
    ax1.set_title(f"{100 * (1 - report['alpha']):g}% confidence intervals")
    ax1.legend(fontsize=8)
    return _save(fig, path)


def _times(looks: list[dict[str, Any]]) -> list[datetime]:
    return [datetime.fromtimestamp(r["ts_ms"] / 1000, tz=UTC) for r in looks]


def plot_lift(report: dict[str, Any], path: str | Path) -> Path:
    comps = report["comparisons"]
    fig = Figure(figsize=(7, 3.6 * len(comps)))
    axes = fig.subplots(len(comps), 1, squeeze=False)[:, 0]
    for ax, c in zip(axes, comps, strict=True):
        looks = c["sequential"]["looks"]
        t = _times(looks)
        ax.plot(t, [r["lift"] for r in looks], color="black", label="lift (treatment - control CTR)")
        ax.fill_between(t, [r["ci"][0] for r in looks], [r["ci"][1] for r in looks], alpha=0.25,
                        label=f"fixed-horizon {100 * (1 - report['alpha']):g}% interval")
        ax.plot(t, [r["cs_running"][0] for r in looks], "--", color="darkorange", label="confidence sequence (always valid)")
        ax.plot(t, [r["cs_running"][1] for r in looks], "--", color="darkorange")
        if looks and "true_lift" in looks[0]:
            ax.plot(t, [r["true_lift"] for r in looks], ":", color="red", label="true lift")
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_title(f"{c['treatment']} vs {c['control']}: CTR lift over time")
        ax.set_ylabel("absolute CTR lift")
        ax.legend(fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
    return _save(fig, path)


def plot_pvalues(report: dict[str, Any], path: str | Path) -> Path:
    comps = report["comparisons"]
    fig = Figure(figsize=(7, 3.2 * len(comps)))
    axes = fig.subplots(len(comps), 1, squeeze=False)[:, 0]
    for ax, c in zip(axes, comps, strict=True):
        looks = c["sequential"]["looks"]
        t = _times(looks)
        ax.plot(t, [max(r["p"], P_FLOOR) for r in looks], color="black", label="fixed-horizon p (valid at one planned look)")
        ax.plot(t, [max(r["p_always_valid_running"], P_FLOOR) for r in looks], color="darkorange",
                label="always-valid p (any look)")
        ax.axhline(report["alpha"], color="red", linestyle=":", label=f"alpha = {report['alpha']:g}")
        ax.set_yscale("log")
        ax.set_ylim(P_FLOOR / 2, 1.5)
        ax.set_title(f"{c['treatment']} vs {c['control']}: p-value over time")
        ax.set_ylabel(f"p-value (shown >= {P_FLOOR:g})")
        ax.legend(fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
    return _save(fig, path)
