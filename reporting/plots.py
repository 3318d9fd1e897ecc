"""The exploration's PNGs, drawn from its summary (``reporting/stats.py``) and nothing else.

Like ``models/plots.py``: ``matplotlib.figure.Figure`` on the Agg canvas, no pyplot, so no
display is needed and matplotlib's global backend is left alone. :data:`PLOTS` names every
picture: its file name and the summary key it draws; :func:`draw_all` draws those whose
numbers exist and returns ``{kind: file name}``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
from matplotlib.figure import Figure

from models.plots import _save

COLOR: Final = "steelblue"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def plot_event_types(s: dict[str, Any], title: str) -> Figure:
    counts = s["event_types"]["counts"]
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    bars = ax.bar(list(counts), list(counts.values()), color=COLOR)
    ax.bar_label(bars, labels=[_pct(v) for v in s["event_types"]["shares"].values()], fontsize=8)
    ax.set(title=f"Event types ({title})", ylabel="events")
    return fig


def plot_users_by_events(s: dict[str, Any], title: str) -> Figure:
    h = s["users_by_events"]
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    edges = h["edges"]
    ax.bar(edges[:-1], h["counts"], width=np.diff(edges), align="edge", color=COLOR, edgecolor="white")
    ax.set(xscale="log", title=f"Interactions per user ({title})", xlabel="events per user (log bins)",
           ylabel="users")
    ax.axvline(h["median"], color="C1", linestyle="--", linewidth=1, label=f"median {h['median']:g}")
    ax.legend(fontsize=8)
    return fig


def plot_user_rank(s: dict[str, Any], title: str) -> Figure:
    r = s["user_rank"]
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    ax.plot(r["ranks"], r["counts"], marker=".", markersize=3, linewidth=0.8, color=COLOR, label="users")
    fit = r["fit"]
    if fit is not None:
        x = np.array([1, fit["users"]], dtype=float)
        ax.plot(x, fit["scale"] * x ** -fit["exponent"], color="C3", linestyle="--",
                label=f"fit: rank^-{fit['exponent']:.2f} (Pareto alpha {fit['pareto_alpha']:.2f})")
    if r["top_users"]:
        ax.axvline(r["top_users"], color="C1", linewidth=1,
                   label=f"top {100 * r['top']:g}% of users: {_pct(r['top_share'])} of events")
    ax.set(xscale="log", yscale="log", title=f"Events per user by rank ({title})", xlabel="user rank",
           ylabel="events")
    ax.legend(fontsize=8)
    return fig


def plot_item_long_tail(s: dict[str, Any], title: str) -> Figure:
    p = s["item_popularity"]
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    ax.plot(p["ranks"], p["counts"], color=COLOR)
    if p["top_items"]:
        views = "" if p["top_share_views"] is None else f", {_pct(p['top_share_views'])} of views"
        ax.axvline(p["top_items"], color="C1", linewidth=1,
                   label=f"top {100 * p['top']:g}% of items: {_pct(p['top_share_events'])} of events{views}")
        ax.legend(fontsize=8)
    ax.set(yscale="log", title=f"Item popularity, the long tail ({title})", xlabel="item rank", ylabel="events")
    return fig


def plot_category_segment(s: dict[str, Any], title: str) -> Figure:
    h = s["category_segment"]
    shares = np.array(h["row_shares"])
    fig = Figure(figsize=(6, 4.5))
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=max(float(shares.max()), 1e-9))
    for i in range(shares.shape[0]):
        for j in range(shares.shape[1]):
            ax.text(j, i, f"{100 * shares[i, j]:.0f}%", ha="center", va="center", fontsize=8,
                    color="white" if shares[i, j] > 0.5 * shares.max() else "black")
    ax.set_xticks(range(len(h["categories"])), h["categories"], rotation=30)
    ax.set_yticks(range(len(h["segments"])), h["segments"])
    ax.set(title=f"Category by latent segment ({title})", xlabel="category", ylabel="segment (share of its events)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


def plot_hours(s: dict[str, Any], title: str) -> Figure:
    h = s["hours"]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    hours = np.arange(24)
    utc = np.array(h["utc"], dtype=float)
    if h["local"] is not None:
        local = np.array(h["local"], dtype=float)
        ax.bar(hours, local / max(local.sum(), 1), color=COLOR, label="local hour (country's UTC offset)")
    ax.plot(hours, utc / max(utc.sum(), 1), color="C1", marker=".", label="UTC hour")
    ax.set(title=f"Activity by hour of day ({title})", xlabel="hour", ylabel="share of events", xticks=range(0, 24, 3))
    ax.legend(fontsize=8)
    return fig


def plot_price_by_category(s: dict[str, Any], title: str) -> Figure:
    prices = s["price_by_category"]
    stats = [{"label": c, "med": p["median"], "q1": p["p25"], "q3": p["p75"], "whislo": p["p5"], "whishi": p["p95"],
              "mean": p["mean"]} for c, p in prices.items()]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.bxp(stats, showfliers=False, showmeans=True)
    ax.set(yscale="log", title=f"Item price by category ({title})", ylabel="price, USD (box 25-75%, whiskers 5-95%)")
    return fig


def plot_funnel(s: dict[str, Any], title: str) -> Figure:
    f = s["funnel"]
    stages = [k for k, v in f["stages"].items() if v]
    counts = [f["stages"][k] for k in stages]
    fig = Figure(figsize=(6, 3.8))
    ax = fig.subplots()
    y = np.arange(len(stages))[::-1]
    ax.barh(y, counts, color=COLOR)
    ax.set_yticks(y, stages)
    rates = {"click": f["click_per_view"], "add_cart": f["cart_per_click"], "purchase": f["purchase_per_cart"]}
    for yi, stage, n in zip(y, stages, counts, strict=True):
        rate = rates.get(stage)
        ax.text(n, yi, f" {n:,}" + (f"  ({_pct(rate)} of the previous stage)" if rate is not None else ""),
                va="center", fontsize=8)
    ax.set(title=f"Funnel ({title})", xlabel="events", xlim=(0, max(counts) * 1.7 if counts else 1))
    return fig


def plot_sessions(s: dict[str, Any], title: str) -> Figure:
    ss = s["sessions"]
    fig = Figure(figsize=(9, 3.8))
    left, right = fig.subplots(1, 2)
    ev = ss["events"]
    left.bar(range(len(ev["counts"])), ev["counts"], color=COLOR)
    ticks = [i for i in range(len(ev["labels"])) if i % 10 == 0 or i == len(ev["labels"]) - 1]
    left.set_xticks(ticks, [ev["labels"][i] for i in ticks])
    left.set(title=f"Events per session ({title})", xlabel=f"events (median {ev['median']}, p90 {ev['p90']})",
             ylabel="sessions")
    edges = ss["duration_edges_s"]
    labels = [f"<{e:g}s" if e is not None else f">{edges[-2]:g}s" for e in edges[1:]]
    right.bar(range(len(labels)), ss["duration_counts"], color=COLOR)
    right.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
    right.set(title="Session duration (first to last event)", ylabel="sessions")
    return fig


#: kind -> (file name, summary key that must be present, drawing function)
PLOTS: Final[dict[str, tuple[str, str, Callable[[dict[str, Any], str], Figure]]]] = {
    "event_types": ("event_types.png", "event_types", plot_event_types),
    "users_by_events": ("users_by_events.png", "users_by_events", plot_users_by_events),
    "item_long_tail": ("item_long_tail.png", "item_popularity", plot_item_long_tail),
    "user_rank": ("user_rank.png", "user_rank", plot_user_rank),
    "category_segment": ("category_segment.png", "category_segment", plot_category_segment),
    "hours": ("hours.png", "hours", plot_hours),
    "price_by_category": ("price_by_category.png", "price_by_category", plot_price_by_category),
    "funnel": ("funnel.png", "funnel", plot_funnel),
    "sessions": ("sessions.png", "sessions", plot_sessions),
}


def draw_all(summary: dict[str, Any], out: Path, title: str) -> dict[str, str]:
    """Draw every plot whose numbers the summary has into ``out``; ``{kind: file name}``."""
    drawn: dict[str, str] = {}
    if not summary["events"]:
        return drawn
    for kind, (name, key, draw) in PLOTS.items():
        if summary.get(key) is not None:
            _save(draw(summary, title), out / name)
            drawn[kind] = name
    return drawn
