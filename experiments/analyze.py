"""``python -m experiments.analyze``: the report of an A/B experiment from its events (and its truth).

Examples::

    python -m experiments.analyze --experiment homepage --events data/exp.jsonl --truth data/exp.truth.jsonl
    python -m experiments.analyze --experiment homepage --events topic:interactions --truth topic:interactions-truth

Reads the served events of the experiment (schema version 2: ``experiment``, ``arm``,
``slate_id``, ``position``), and writes to ``--out`` (default ``reports/experiments``):
``<experiment>.json`` (every number), ``<experiment>.txt`` (the table below, also printed),
``<experiment>_ctr.png`` (CTR per arm with 95% intervals), ``<experiment>_lift.png`` (the lift
over time with its fixed-horizon interval and the sequential bound) and
``<experiment>_pvalue.png`` (the p-values over time). With ``--truth`` the report states the
true lift and whether the interval covers it. docs/experiments.md explains every number.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.config_cli import config_parser, option, require_field, run_cli
from experiments.analysis import AnalysisSettings, analyze
from experiments.data import DataError, ExperimentData, load
from experiments.design import parse_weights


@dataclass(frozen=True)
class AnalyzeConfig:
    """What to read and how; CLI flags map 1:1 to fields."""

    experiment: str = option("", "the experiment's name, as on its events (required)")
    events: str = option("data/experiment.jsonl", "the events: a JSONL file, or topic:NAME (e.g. topic:interactions)")
    truth: str | None = option(None, "the truth records: a JSONL file or topic:NAME (e.g. topic:interactions-truth); "
                               "gives the true lift")
    control: str | None = option(None, "the control arm; default: the arm named control, else the first alphabetically")
    weights: str | None = option(None, "planned relative arm sizes, control first, e.g. 1,1 (the SRM check); default: equal")
    alpha: float = option(0.05, "significance level; intervals are 1 - alpha")
    planned_users: int | None = option(None, "planned users per arm for the power analysis; default: the control's users")
    target_lift: float = option(0.05, "relative CTR lift the power analysis asks about")
    tuning_users: int | None = option(None, "N* of the confidence sequence (users of both arms at which it is "
                                      "tightest); default: 2 x the planned users")
    looks: int = option(30, "sequential looks, evenly spaced in event time")
    max_sessions_per_user: int = option(10, "count each user's first N served sessions only, 0 for all "
                                        "(a few very active users would otherwise carry the result; docs/experiments.md)")
    out: str = option("reports/experiments", "folder of the report files")

    def __post_init__(self) -> None:
        require_field(bool(self.experiment), "AnalyzeConfig", "experiment", "a name", self.experiment)
        require_field(0 < self.alpha < 0.5, "AnalyzeConfig", "alpha", "in (0, 0.5)", self.alpha)
        require_field(self.planned_users is None or self.planned_users >= 2, "AnalyzeConfig", "planned_users", ">= 2",
                      self.planned_users)
        require_field(self.tuning_users is None or self.tuning_users >= 2, "AnalyzeConfig", "tuning_users", ">= 2",
                      self.tuning_users)
        require_field(self.looks >= 1, "AnalyzeConfig", "looks", ">= 1", self.looks)
        require_field(self.max_sessions_per_user >= 0, "AnalyzeConfig", "max_sessions_per_user", ">= 0 (0: all)",
                      self.max_sessions_per_user)
        if self.weights is not None:
            parse_weights(self.weights)

    @property
    def settings(self) -> AnalysisSettings:
        return AnalysisSettings(self.alpha, self.planned_users, self.target_lift, self.tuning_users, self.looks,
                                self.max_sessions_per_user)


def table(report: dict[str, Any]) -> str:
    """The report as readable text: per arm, per comparison, the checks and the verdict."""
    pct = 100 * (1 - report["alpha"])
    head = (f"{'arm':<14}{'users':>8}{'views':>9}{'clicks':>9}{'CTR':>9}  {f'{pct:g}% CI (users)':<19}"
            f"{'conversion':>11}{'rev/user':>10}{'true CTR':>10}")
    cap = report["sessions"]["max_per_user"]
    counted = (f"each user's first {cap} served sessions: {report['sessions']['counted']} of {report['sessions']['served']} "
               f"sessions, {report['sessions']['views_counted']} of {report['sessions']['views_served']} views"
               if cap else f"every served session ({report['sessions']['served']})")
    lines = [f"experiment {report['experiment']} ({counted})", head, "-" * len(head)]
    for a in report["arms"]:
        true = "" if a["true_ctr"] is None else f"{a['true_ctr']:.4f}"
        lines.append(f"{a['arm']:<14}{a['users']:>8}{a['impressions']:>9}{a['clicks']:>9}{a['ctr']:>9.4f}  "
                     f"[{a['ctr_ci'][0]:.4f}, {a['ctr_ci'][1]:.4f}]  {a['conversion']:>10.4f}{a['revenue_per_user']:>10.2f}"
                     f"{true:>10}")
    srm = report["srm"]
    lines.append(f"sample ratio: chi2 {srm['chi2']:.3f}, p {srm['p']:.3g} ({'ALARM' if srm['alarm'] else 'ok'} at "
                 f"{srm['threshold']})")
    for c in report["comparisons"]:
        u, imp = c["ctr"]["user_level"], c["ctr"]["impression_level"]
        lines += [
            "",
            f"{c['treatment']} vs {c['control']} (CTR)",
            f"  absolute lift  {u['absolute']:+.4f}  [{u['absolute_ci'][0]:+.4f}, {u['absolute_ci'][1]:+.4f}]",
            f"  relative lift  {100 * u['relative']:+.2f}%  [{100 * u['relative_ci'][0]:+.2f}%, {100 * u['relative_ci'][1]:+.2f}%]",
            f"  user-level test (delta method)      z {u['z']:+.3f}  p {u['p']:.4g}",
            (f"  impression-level z-test (the seed's) z {imp['z']:+.3f}  p {imp['p']:.4g}  "
             f"CI [{imp['absolute_ci'][0]:+.4f}, {imp['absolute_ci'][1]:+.4f}]"),
            f"  why they differ: {c['ctr']['why_they_differ']}",
        ]
        for metric in ("conversion", "revenue_per_user"):
            m = c[metric]
            lines.append(f"  {metric:<18}{m['control']:.4f} -> {m['treatment']:.4f}  lift {m['absolute']:+.4f} "
                         f"[{m['absolute_ci'][0]:+.4f}, {m['absolute_ci'][1]:+.4f}]  p {m['p']:.4g}")
        pw = c["power"]
        lines.append(f"  power: {pw['planned_users_per_arm']} users per arm detect {100 * pw['mde_relative']:.2f}% "
                     f"(MDE at 80% power); a {100 * pw['target_lift_relative']:g}% lift has power "
                     f"{pw['power_at_target']:.2f} and needs {math.ceil(pw['users_per_arm_for_target'])} users per arm")
        seq = c["sequential"]
        if seq["looks"]:
            last = seq["looks"][-1]
            lines.append(f"  sequential ({len(seq['looks'])} looks, N* = {seq['tuning_users']}): confidence sequence "
                         f"[{last['cs_running'][0]:+.4f}, {last['cs_running'][1]:+.4f}], always-valid p "
                         f"{last['p_always_valid_running']:.4g}")
        t = c.get("true_lift")
        if t is not None:
            lines.append(f"  true lift {t['absolute']:+.4f} absolute: "
                         f"{'covered' if t['covered_absolute'] else 'NOT covered'} by the user-level interval, "
                         f"{'covered' if t['covered_by_impression_ci'] else 'not covered'} by the impression-level one; "
                         f"{100 * t['relative']:+.2f}% relative: "
                         f"{'covered' if t['covered_relative'] else 'NOT covered'} by the user-level interval")
    lines += ["", "verdict: " + report["verdict"]]
    return "\n".join(lines)


def write_report(data: ExperimentData, settings: AnalysisSettings, out: Path) -> dict[str, Any]:
    """Analyse, then write the JSON, the table and the plots into ``out``; returns the report."""
    from experiments.plots import plot_ctr, plot_lift, plot_pvalues

    report = analyze(data, settings)
    out.mkdir(parents=True, exist_ok=True)
    name = data.experiment
    report["files"] = {
        "json": str(out / f"{name}.json"), "table": str(out / f"{name}.txt"),
        "ctr_png": str(plot_ctr(report, out / f"{name}_ctr.png")),
        "lift_png": str(plot_lift(report, out / f"{name}_lift.png")),
        "pvalue_png": str(plot_pvalues(report, out / f"{name}_pvalue.png")),
    }
    (out / f"{name}.json").write_text(json.dumps(report, indent=2, default=_plain) + "\n")
    (out / f"{name}.txt").write_text(table(report) + "\n")
    return report


def _plain(x: Any) -> Any:
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    raise TypeError(f"cannot write {type(x).__name__} as JSON")


def run(cfg: AnalyzeConfig) -> dict[str, Any]:
    weights = parse_weights(cfg.weights) if cfg.weights else None
    data = load(cfg.events, cfg.experiment, cfg.truth, cfg.control, weights)
    report = write_report(data, cfg.settings, Path(cfg.out))
    print(table(report), flush=True)
    print(f"wrote {report['files']['json']} and the PNGs beside it", flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(AnalyzeConfig, "experiments.analyze",
                           "Analyse an A/B experiment of recommendation policies: per-arm CTR, conversion and revenue, "
                           "lifts with intervals, the user-level and impression-level tests, SRM, power, sequential "
                           "monitoring, and the true lift when the truth is given.")
    return run_cli(parser, argv, AnalyzeConfig, run, (DataError, ValueError, OSError))


if __name__ == "__main__":
    sys.exit(main())
