"""The analysis of one experiment: per-arm totals, lifts with intervals, both tests, SRM, power,
sequential monitoring over time, and the truth; plain data in, a JSON-able dict out.

Every treatment arm is compared with the control (arm 0). The primary metric is CTR (clicks per
served view, a ratio metric over users); conversion (share of users with a purchase) and revenue
per user are per-user means. :func:`quick` is the few numbers the statistical checks need
(``benchmarks/bench_experiments.py`` calls it hundreds of times); :func:`analyze` is the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from experiments import stats
from experiments.data import CLICK, PURCHASE, VIEW, ExperimentData

WHY_TESTS_DIFFER = (
    "The impression-level z-test counts every view as an independent trial, but users were "
    "randomised, not views, and one user's views share that user's click propensity; the "
    "user-level delta-method test measures the variance across users, here {deff:.2f} times the "
    "binomial variance the z-test assumes, so the z-test's interval is {sqrt:.2f} times too narrow "
    "and it reports significance too often."
)


@dataclass(frozen=True)
class AnalysisSettings:
    """How an experiment is read."""

    alpha: float = stats.ALPHA  # two-sided significance level and 1 - confidence
    planned_users: int | None = None  # per arm; None: the observed users of the control
    target_lift: float = 0.05  # relative CTR lift the power analysis asks about
    tuning_users: int | None = None  # N* of the confidence sequence (both arms); None: 2 x planned users
    looks: int = 30  # sequential looks, evenly spaced in event time
    max_sessions_per_user: int = 10  # count each user's first N served sessions only (0: all); see first_sessions

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha}")
        if self.planned_users is not None and self.planned_users < 2:
            raise ValueError(f"planned users must be >= 2 per arm, got {self.planned_users}")
        if self.looks < 1:
            raise ValueError(f"looks must be >= 1, got {self.looks}")
        if self.max_sessions_per_user < 0:
            raise ValueError(f"max sessions per user must be >= 0 (0: all), got {self.max_sessions_per_user}")


@dataclass(frozen=True)
class UserTotals:
    """One arm's users: per-user views, clicks, purchases and revenue; (n,) each."""

    views: np.ndarray
    clicks: np.ndarray
    purchases: np.ndarray
    revenue: np.ndarray

    @property
    def n(self) -> int:
        return len(self.views)


def user_totals(data: ExperimentData, until_ms: int | None = None) -> list[UserTotals]:
    """Per arm, each user's totals over the events up to ``until_ms`` (all by default)."""
    keep = slice(None) if until_ms is None else data.ts_ms <= until_ms
    user, arm, etype, value = data.user[keep], data.arm[keep].astype(np.int64), data.etype[keep], data.value[keep]
    n_arms = len(data.arms)
    units, unit = np.unique(user * n_arms + arm, return_inverse=True)  # a unit is a (user, arm) pair
    unit_arm = units % n_arms

    def per_unit(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        w = mask.astype(np.float64) if weights is None else np.where(mask, weights, 0.0)
        return np.bincount(unit, weights=w, minlength=len(units))

    views, clicks = per_unit(etype == VIEW), per_unit(etype == CLICK)
    purchases, revenue = per_unit(etype == PURCHASE), per_unit(etype == PURCHASE, value)
    return [UserTotals(views[unit_arm == a], clicks[unit_arm == a], purchases[unit_arm == a], revenue[unit_arm == a])
            for a in range(n_arms)]


def _ctr_tests(c: UserTotals, t: UserTotals, alpha: float) -> tuple[stats.RatioStats, stats.RatioStats, stats.Lift,
                                                                   stats.ImpressionTest]:
    rc, rt = stats.ratio_stats(c.clicks, c.views), stats.ratio_stats(t.clicks, t.views)
    imp = stats.impression_ztest(int(c.clicks.sum()), int(c.views.sum()), int(t.clicks.sum()), int(t.views.sum()), alpha)
    return rc, rt, stats.ratio_lift(rc, rt, alpha), imp


def quick(data: ExperimentData, alpha: float = stats.ALPHA, max_sessions_per_user: int = 10) -> dict[str, float]:
    """Treatment (arm 1) vs control: user-level and impression-level p, the CTR lift's interval and the truth."""
    data = data.first_sessions(max_sessions_per_user)
    totals = user_totals(data)
    _, _, user_level, imp = _ctr_tests(totals[0], totals[1], alpha)
    out = {"p_user": user_level.p, "p_impression": imp.p, "lift": user_level.absolute,
           "ci_low": user_level.absolute_ci[0], "ci_high": user_level.absolute_ci[1],
           "rel_lift": user_level.relative, "rel_ci_low": user_level.relative_ci[0],
           "rel_ci_high": user_level.relative_ci[1], "users_c": totals[0].n, "users_t": totals[1].n,
           "var_c": stats.ratio_stats(totals[0].clicks, totals[0].views).var_unit,
           "var_t": stats.ratio_stats(totals[1].clicks, totals[1].views).var_unit}
    if data.truth is not None:
        true = data.truth.ctr()
        out["true_lift"] = float(true[1] - true[0])
        out["true_rel_lift"] = float(true[1] / true[0] - 1)
    return out


def _fmt_pct(x: float) -> str:
    return f"{100 * x:+.2f}%"


def analyze(data: ExperimentData, settings: AnalysisSettings | None = None) -> dict[str, Any]:
    """The whole report of an experiment as a JSON-able dict (see docs/experiments.md for every field)."""
    s = settings or AnalysisSettings()
    served = (len(np.unique(data.slate)), int((data.etype == VIEW).sum()))
    data = data.first_sessions(s.max_sessions_per_user)
    totals = user_totals(data)
    if any(t.n < 2 for t in totals):
        short = [a for a, t in zip(data.arms, totals, strict=True) if t.n < 2]
        raise ValueError(f"experiment {data.experiment!r}: arm(s) {', '.join(short)} have fewer than 2 users")
    true_arm_ctr = data.true_ctr()
    truth_ctr = data.truth.ctr() if data.truth is not None else None
    arms = []
    for a, (name, t) in enumerate(zip(data.arms, totals, strict=True)):
        r = stats.ratio_stats(t.clicks, t.views)
        arms.append({
            "arm": name, "users": t.n, "impressions": int(t.views.sum()), "clicks": int(t.clicks.sum()),
            "ctr": r.ratio, "ctr_ci": list(r.ci(s.alpha)),
            "ctr_impression_ci": list(_wald(r.num, r.den, s.alpha)),
            "conversion": float((t.purchases > 0).mean()), "revenue_per_user": float(t.revenue.mean()),
            "true_ctr_of_its_views": None if math.isnan(true_arm_ctr[a]) else float(true_arm_ctr[a]),
            "true_ctr": None if truth_ctr is None else float(truth_ctr[a]),
        })
    chi2, p_srm = stats.srm([t.n for t in totals], data.weights)
    comparisons = [_compare(data, totals, a, s, truth_ctr) for a in range(1, len(data.arms))]
    report = {
        "experiment": data.experiment, "alpha": s.alpha, "arms": arms,
        "sessions": {"max_per_user": s.max_sessions_per_user, "served": served[0], "counted": len(np.unique(data.slate)),
                     "views_served": served[1], "views_counted": int((data.etype == VIEW).sum())},
        "srm": {"chi2": chi2, "p": p_srm, "threshold": stats.SRM_ALPHA, "alarm": p_srm < stats.SRM_ALPHA,
                "weights": list(data.weights) if data.weights else None},
        "comparisons": comparisons,
    }
    report["verdict"] = verdict(report)
    return report


def _wald(num: float, den: float, alpha: float) -> tuple[float, float]:
    p = num / den
    h = stats.z_crit(alpha) * math.sqrt(p * (1 - p) / den)
    return p - h, p + h


def _compare(data: ExperimentData, totals: list[UserTotals], a: int, s: AnalysisSettings,
             truth_ctr: np.ndarray | None) -> dict[str, Any]:
    c, t = totals[0], totals[a]
    rc, rt, user_level, imp = _ctr_tests(c, t, s.alpha)
    binomial_var = rc.ratio * (1 - rc.ratio) * rc.n / rc.den + rt.ratio * (1 - rt.ratio) * rt.n / rt.den
    deff = (rc.var_unit + rt.var_unit) / binomial_var if binomial_var > 0 else math.nan
    ratio = t.n / c.n
    planned = s.planned_users or c.n
    target = s.target_lift * rc.ratio
    out: dict[str, Any] = {
        "treatment": data.arms[a], "control": data.arms[0],
        "ctr": {
            "user_level": user_level.to_dict(), "impression_level": imp.to_dict(),
            "design_effect": deff,
            "why_they_differ": WHY_TESTS_DIFFER.format(deff=deff, sqrt=math.sqrt(deff)),
        },
        "conversion": stats.mean_lift((c.purchases > 0).astype(float), (t.purchases > 0).astype(float), s.alpha).to_dict(),
        "revenue_per_user": stats.mean_lift(c.revenue, t.revenue, s.alpha).to_dict(),
        "power": {
            "planned_users_per_arm": planned, "sigma_control": math.sqrt(rc.var_unit), "sigma_treatment": math.sqrt(rt.var_unit),
            "mde_absolute": stats.mde(rc.var_unit, rt.var_unit, planned, ratio, s.alpha),
            "mde_relative": stats.mde(rc.var_unit, rt.var_unit, planned, ratio, s.alpha) / rc.ratio,
            "target_lift_relative": s.target_lift,
            "power_at_target": stats.power(target, rc.var_unit, rt.var_unit, planned, ratio, s.alpha),
            "users_per_arm_for_target": stats.users_needed(target, rc.var_unit, rt.var_unit, ratio, s.alpha),
        },
        "sequential": timeline(data, a, s),
    }
    if truth_ctr is not None:
        true_abs = float(truth_ctr[a] - truth_ctr[0])
        true_rel = float(truth_ctr[a] / truth_ctr[0] - 1)
        out["true_lift"] = {
            "absolute": true_abs, "relative": true_rel,
            "covered_absolute": user_level.absolute_ci[0] <= true_abs <= user_level.absolute_ci[1],
            "covered_relative": user_level.relative_ci[0] <= true_rel <= user_level.relative_ci[1],
            "covered_by_impression_ci": imp.absolute_ci[0] <= true_abs <= imp.absolute_ci[1],
            "source": "potential outcomes of every served session (expected clicks / expected views under each arm)",
        }
    return out


def timeline(data: ExperimentData, a: int, s: AnalysisSettings) -> dict[str, Any]:
    """The CTR lift of arm ``a`` over time at ``s.looks`` evenly spaced looks: fixed-horizon interval
    and p-value, the confidence sequence and the always-valid p-value (current and running)."""
    lo, hi = int(data.ts_ms.min()), int(data.ts_ms.max())
    looks = [lo + round((hi - lo) * (k + 1) / s.looks) for k in range(s.looks)]
    c_final = user_totals(data)[0].n
    tuning = s.tuning_users or 2 * (s.planned_users or c_final)
    rows: list[dict[str, Any]] = []
    for t_ms in looks:
        totals = user_totals(data, t_ms)
        c, t = totals[0], totals[a]
        if c.n < 2 or t.n < 2 or c.views.sum() == 0 or t.views.sum() == 0:
            continue
        _, _, lift, _ = _ctr_tests(c, t, s.alpha)
        if not lift.absolute_se > 0:
            continue
        n_total = c.n + t.n
        cs = stats.confidence_sequence(lift.absolute, lift.absolute_se, n_total, tuning, s.alpha)
        row = {"ts_ms": t_ms, "users": n_total, "lift": lift.absolute, "ci": list(lift.absolute_ci), "p": lift.p,
               "cs": list(cs), "p_always_valid": stats.always_valid_p(lift.z, n_total, tuning, s.alpha)}
        if data.truth is not None:
            true = data.truth.ctr(t_ms)
            row["true_lift"] = float(true[a] - true[0])
        rows.append(row)
    running_p, running_cs = stats.running([r["p_always_valid"] for r in rows], [tuple(r["cs"]) for r in rows])
    for r, p, cs in zip(rows, running_p, running_cs, strict=True):
        r["p_always_valid_running"], r["cs_running"] = p, list(cs)
    final = rows[-1] if rows else None
    return {
        "tuning_users": tuning, "looks": rows,
        "ever_significant_fixed": any(r["p"] < s.alpha for r in rows),
        "significant_always_valid": bool(final and final["p_always_valid_running"] < s.alpha),
        "method": "normal-mixture confidence sequence (Waudby-Smith et al. 2021, as GrowthBook); running min / intersection (Johari et al. 2022)",
    }


def verdict(report: dict[str, Any]) -> str:
    """A few sentences: per treatment the CTR lift, its interval, the decision, the truth."""
    alpha = report["alpha"]
    lines = []
    if report["srm"]["alarm"]:
        lines.append(f"SAMPLE RATIO MISMATCH (p = {report['srm']['p']:.2g} < {report['srm']['threshold']}): the arms' "
                     "user counts do not match the design, so the results below are not trustworthy.")
    for comp in report["comparisons"]:
        u = comp["ctr"]["user_level"]
        lo, hi = u["relative_ci"]
        sig = u["p"] < alpha
        direction = "better" if u["absolute"] > 0 else "worse"
        decision = (f"significant at {alpha:g}: {comp['treatment']} is {direction} than {comp['control']}" if sig
                    else f"not significant at {alpha:g}: no detectable difference")
        line = (f"{comp['treatment']} vs {comp['control']}: CTR {u['treatment']:.4f} vs {u['control']:.4f}, lift "
                f"{_fmt_pct(u['relative'])} (95% CI {_fmt_pct(lo)} to {_fmt_pct(hi)}), user-level p = {u['p']:.3g}; {decision}.")
        truth = comp.get("true_lift")
        if truth is not None:
            covered = "covers it" if truth["covered_relative"] else "does NOT cover it"
            line += f" True lift {_fmt_pct(truth['relative'])}: the interval {covered}."
        lines.append(line)
    return " ".join(lines)
