"""The statistics of experiments, checked against the generator's truth: ``make bench-experiments``.

Hundreds of offline experiments (:mod:`experiments.simulate`) on the default world (seed 7):

* **A/A** (popularity in both arms, a new salt and seed each run): the user-level test's
  false-positive rate at alpha 0.05 must lie in [3%, 7%]; the impression-level z-test's rate is
  reported beside it (expected higher: it treats views as independent). The user-level p-values
  must look uniform: a Kolmogorov-Smirnov test against U(0, 1), and their histogram
  (``reports/experiments/checks/aa_pvalues.png``).
* **Sequential** (a subset of the A/A runs, looked at ``--looks`` times): how often a naive
  fixed-horizon test is *ever* significant, against the always-valid p-value (must stay <= 5%).
* **A/B** (popularity against popularity-explore, whose true lift is known from the truth of
  every served session): the 95% interval must cover the true lift in >= 93% of the runs, and
  the observed power (share of runs with p < 0.05) must lie within 5 points of the power
  analysis at the planned size (statsmodels ``NormalIndPower`` with the per-user sigma and the
  true lift of a pilot of ``--pilot`` runs; planned size = the pilot's mean users per arm).

Writes ``reports/experiments/checks/checks.json`` and the histogram, prints a table, exits 1
when a check fails. All numbers are deterministic for the arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy import stats as sps

from experiments import stats
from experiments.analysis import AnalysisSettings, quick, timeline
from experiments.design import ExperimentDesign
from experiments.simulate import SimWorld, simulate


def aa_design(i: int) -> ExperimentDesign:
    return ExperimentDesign("aa", arms=(("control", "popularity"), ("treatment", "popularity")), salt=f"aa-{i}")


def ab_design(i: int, explore: float) -> ExperimentDesign:
    return ExperimentDesign("ab", arms=(("control", "popularity"), ("treatment", "popularity-explore")),
                            salt=f"ab-{i}", explore_rate=explore)


def binom_ci(k: int, n: int) -> list[float]:
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return [float(ci.low), float(ci.high)]


def histogram(p: np.ndarray, p_imp: np.ndarray, ks_p: float, path: Path) -> None:
    fig = Figure(figsize=(9, 3.6))
    ax0, ax1 = fig.subplots(1, 2)
    bins = np.linspace(0, 1, 21)
    ax0.hist(p, bins=bins, color="steelblue", edgecolor="white")
    ax0.axhline(len(p) / 20, color="red", linestyle=":", label="uniform")
    ax0.set_title(f"A/A user-level p-values (n = {len(p)}, KS p = {ks_p:.2f})", fontsize=9)
    ax0.set_xlabel("p-value")
    ax0.legend(fontsize=8)
    ax1.hist(p_imp, bins=bins, color="grey", edgecolor="white")
    ax1.axhline(len(p_imp) / 20, color="red", linestyle=":")
    ax1.set_title("A/A impression-level z-test p-values", fontsize=9)
    ax1.set_xlabel("p-value")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks.bench_experiments", description=__doc__.split("\n\n")[0])
    ap.add_argument("--aa", type=int, default=400, help="A/A experiments (default: %(default)s)")
    ap.add_argument("--ab", type=int, default=400, help="A/B experiments (default: %(default)s)")
    ap.add_argument("--pilot", type=int, default=40, help="A/B pilot runs for the power analysis (default: %(default)s)")
    ap.add_argument("--sequential", type=int, default=150, help="A/A runs also looked at sequentially (default: %(default)s)")
    ap.add_argument("--looks", type=int, default=20, help="looks per sequential run (default: %(default)s)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of event time per experiment (default: %(default)s)")
    ap.add_argument("--explore", type=float, default=0.1, help="A/B treatment's explore rate (default: %(default)s)")
    ap.add_argument("--max-sessions-per-user", type=int, default=10, help="analysis cap (default: %(default)s; 0: none)")
    ap.add_argument("--out", type=Path, default=Path("reports/experiments/checks"))
    args = ap.parse_args(argv)
    cap, alpha = args.max_sessions_per_user, stats.ALPHA
    t0 = time.time()
    sim = SimWorld()
    print(f"world ready in {time.time() - t0:.1f} s", file=sys.stderr, flush=True)

    # A/A
    p_user, p_imp, seq_fixed, seq_valid = [], [], [], []
    settings = AnalysisSettings(looks=args.looks, max_sessions_per_user=cap)
    for i in range(args.aa):
        run = simulate(aa_design(i), sim, seed=10_000 + i, duration_s=args.duration)
        q = quick(run.data, alpha, cap)
        p_user.append(q["p_user"])
        p_imp.append(q["p_impression"])
        if i < args.sequential:
            tl = timeline(run.data.first_sessions(cap), 1, settings)
            seq_fixed.append(tl["ever_significant_fixed"])
            seq_valid.append(any(r["p_always_valid_running"] < alpha for r in tl["looks"]))
        if (i + 1) % 100 == 0:
            print(f"A/A {i + 1}/{args.aa} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    pu, pi = np.array(p_user), np.array(p_imp)
    k_user, k_imp = int((pu < alpha).sum()), int((pi < alpha).sum())
    ks = sps.kstest(pu, "uniform")
    histogram(pu, pi, float(ks.pvalue), args.out / "aa_pvalues.png")

    # A/B: pilot, power analysis, runs
    pilot = [quick(simulate(ab_design(100_000 + i, args.explore), sim, seed=100_000 + i, duration_s=args.duration).data,
                   alpha, cap) for i in range(args.pilot)]
    n_plan = float(np.mean([q["users_c"] for q in pilot]))
    ratio = float(np.mean([q["users_t"] / q["users_c"] for q in pilot]))
    var_c, var_t = float(np.mean([q["var_c"] for q in pilot])), float(np.mean([q["var_t"] for q in pilot]))
    true_lift = float(np.mean([q["true_lift"] for q in pilot]))
    predicted = stats.power(true_lift, var_c, var_t, n_plan, ratio, alpha)
    rejected, covered, covered_rel, lifts = 0, 0, 0, []
    for i in range(args.ab):
        run = simulate(ab_design(i, args.explore), sim, seed=20_000 + i, duration_s=args.duration)
        q = quick(run.data, alpha, cap)
        rejected += q["p_user"] < alpha
        covered += q["ci_low"] <= q["true_lift"] <= q["ci_high"]
        covered_rel += q["rel_ci_low"] <= q["true_rel_lift"] <= q["rel_ci_high"]
        lifts.append(q["true_rel_lift"])
        if (i + 1) % 100 == 0:
            print(f"A/B {i + 1}/{args.ab} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    observed = rejected / args.ab

    checks = {
        "aa_false_positive_rate_in_3_to_7_percent": 0.03 <= k_user / args.aa <= 0.07,
        "aa_pvalues_uniform_ks_p_above_0.01": float(ks.pvalue) > 0.01,
        "sequential_ever_reject_at_most_5_percent": (not seq_valid) or float(np.mean(seq_valid)) <= 0.05,
        "ab_coverage_at_least_93_percent": covered / args.ab >= 0.93,
        "ab_power_within_5_points": abs(observed - predicted) <= 0.05,
    }
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "world_seed": sim.seed, "duration_s": args.duration,
        "max_sessions_per_user": cap, "alpha": alpha,
        "aa": {"runs": args.aa, "user_level_rejections": k_user, "user_level_rate": k_user / args.aa,
               "user_level_rate_ci95": binom_ci(k_user, args.aa), "impression_level_rejections": k_imp,
               "impression_level_rate": k_imp / args.aa, "impression_level_rate_ci95": binom_ci(k_imp, args.aa),
               "ks_statistic": float(ks.statistic), "ks_p": float(ks.pvalue),
               "histogram_png": str(args.out / "aa_pvalues.png")},
        "sequential": {"runs": len(seq_valid), "looks": args.looks,
                       "ever_significant_fixed_horizon": float(np.mean(seq_fixed)) if seq_fixed else None,
                       "ever_significant_always_valid": float(np.mean(seq_valid)) if seq_valid else None},
        "ab": {"runs": args.ab, "explore_rate": args.explore, "pilot_runs": args.pilot,
               "planned_users_per_arm": n_plan, "true_lift_absolute": true_lift,
               "true_lift_relative_mean": float(np.mean(lifts)), "sigma_control": var_c ** 0.5, "sigma_treatment": var_t ** 0.5,
               "predicted_power": predicted, "observed_power": observed,
               "observed_power_ci95": binom_ci(rejected, args.ab),
               "coverage_absolute": covered / args.ab, "coverage_relative": covered_rel / args.ab},
        "checks": checks, "elapsed_s": round(time.time() - t0, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "checks.json").write_text(json.dumps(result, indent=2) + "\n")
    aa, ab, sq = result["aa"], result["ab"], result["sequential"]
    print(f"A/A, {aa['runs']} runs: user-level false positives {100 * aa['user_level_rate']:.1f}% "
          f"(95% CI {100 * aa['user_level_rate_ci95'][0]:.1f}-{100 * aa['user_level_rate_ci95'][1]:.1f}%), impression-level "
          f"{100 * aa['impression_level_rate']:.1f}%; KS p = {aa['ks_p']:.3f}")
    if sq["runs"]:
        print(f"sequential, {sq['runs']} A/A runs x {sq['looks']} looks: ever significant {100 * sq['ever_significant_fixed_horizon']:.1f}% "
              f"(fixed-horizon p), {100 * sq['ever_significant_always_valid']:.1f}% (always-valid p)")
    print(f"A/B, {ab['runs']} runs (true lift {ab['true_lift_absolute']:+.4f}, {100 * ab['true_lift_relative_mean']:+.2f}%): "
          f"coverage {100 * ab['coverage_absolute']:.1f}% (relative {100 * ab['coverage_relative']:.1f}%); power observed "
          f"{100 * ab['observed_power']:.1f}% vs predicted {100 * ab['predicted_power']:.1f}% at {ab['planned_users_per_arm']:.0f} users per arm")
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    print(f"wrote {args.out / 'checks.json'} ({result['elapsed_s']} s)")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
