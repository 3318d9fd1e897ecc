"""The statistics against scipy/statsmodels and hand computations on small data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower

from experiments import stats


def users(seed: int, n: int, ctr: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-user (clicks, views) with heterogeneous users: views 1 + Poisson(5), user CTR ~ Beta around ``ctr``."""
    rng = np.random.default_rng(seed)
    views = 1 + rng.poisson(5, n)
    p = rng.beta(20 * ctr, 20 * (1 - ctr), n)
    return rng.binomial(views, p).astype(float), views.astype(float)


def test_delta_method_variance_by_hand_and_against_cluster_robust_ols():
    m, d = np.array([1.0, 2.0, 0.0, 3.0, 1.0]), np.array([2.0, 4.0, 1.0, 5.0, 3.0])
    s = stats.ratio_stats(m, d)
    r = m.sum() / d.sum()
    resid = m - r * d  # the linearised per-user residual
    assert s.ratio == pytest.approx(r)
    assert s.var_unit == pytest.approx(resid.var(ddof=1) / d.mean() ** 2)
    # the absolute lift's SE equals statsmodels' cluster-robust OLS on impression rows (up to its small-sample factor)
    mc, dc = users(1, 400, 0.3)
    mt, dt = users(2, 400, 0.33)
    lift = stats.ratio_lift(stats.ratio_stats(mc, dc), stats.ratio_stats(mt, dt))
    rows = {"click": [], "treat": [], "user": []}
    for arm, (mm, dd) in enumerate(((mc, dc), (mt, dt))):
        for u, (clicks, views) in enumerate(zip(mm.astype(int), dd.astype(int), strict=True)):
            rows["click"] += [1] * clicks + [0] * (views - clicks)
            rows["treat"] += [arm] * views
            rows["user"] += [arm * 10_000 + u] * views
    fit = smf.ols("click ~ treat", pd.DataFrame(rows)).fit(cov_type="cluster", cov_kwds={"groups": np.array(rows["user"])})
    assert fit.params["treat"] == pytest.approx(lift.absolute, rel=1e-9)
    assert fit.bse["treat"] == pytest.approx(lift.absolute_se, rel=0.01)


def test_relative_lift_variance_is_growthbooks_formula():
    out = stats.lift(0.5, 0.04, 100, 0.6, 0.09, 200)
    assert out.relative == pytest.approx(0.2)
    assert out.relative_se ** 2 == pytest.approx(0.04 * 0.36 / (0.5 ** 4 * 100) + 0.09 / (0.25 * 200))
    assert out.absolute_se ** 2 == pytest.approx(0.04 / 100 + 0.09 / 200)
    assert out.p == pytest.approx(2 * sps.norm.sf(0.1 / out.absolute_se))


def test_mean_lift_matches_welch_and_the_normal_interval():
    rng = np.random.default_rng(4)
    c, t = rng.exponential(10, 3000), rng.exponential(10.6, 2500)
    out = stats.mean_lift(c, t)
    welch = sps.ttest_ind(t, c, equal_var=False)
    assert out.p == pytest.approx(welch.pvalue, rel=0.02)  # z vs t with ~5000 df
    se = math.sqrt(c.var(ddof=1) / len(c) + t.var(ddof=1) / len(t))
    assert out.absolute_ci == pytest.approx((t.mean() - c.mean() - 1.959964 * se, t.mean() - c.mean() + 1.959964 * se))


def test_impression_ztest_is_the_seed_notebooks_pooled_test():
    cc, vc, ct, vt = 1250, 50_000, 1400, 50_000
    out = stats.impression_ztest(cc, vc, ct, vt)
    pooled = (cc + ct) / (vc + vt)
    z = (ct / vt - cc / vc) / math.sqrt(pooled * (1 - pooled) * (1 / vc + 1 / vt))
    assert out.z == pytest.approx(z)
    assert out.p == pytest.approx(2 * (1 - sps.norm.cdf(abs(z))))


def test_srm_is_the_chi_square_against_the_planned_weights():
    chi2, p = stats.srm([5200, 4800])
    assert chi2 == pytest.approx(2 * 200 ** 2 / 5000)
    assert p == pytest.approx(sps.chi2.sf(chi2, 1))
    _, p_weighted = stats.srm([2500, 7500], (1, 3))
    assert p_weighted == pytest.approx(1.0)
    assert stats.srm([5000, 4500])[1] < stats.SRM_ALPHA


def test_power_mde_and_sample_size_agree_with_each_other_and_by_hand():
    var_c, var_t, n = 0.09, 0.1, 2000
    mde = stats.mde(var_c, var_t, n)
    assert mde == pytest.approx(2.8016 * math.sqrt(var_c / n + var_t / n), rel=1e-3)  # (z_.975 + z_.8) * SE
    assert stats.power(mde, var_c, var_t, n) == pytest.approx(0.8, abs=1e-6)
    assert stats.users_needed(mde, var_c, var_t) == pytest.approx(n, rel=1e-4)
    se = math.sqrt(var_c / n + var_t / (2 * n))
    by_hand = sps.norm.cdf(0.02 / se - 1.959964) + sps.norm.cdf(-0.02 / se - 1.959964)
    assert stats.power(0.02, var_c, var_t, n, ratio=2.0) == pytest.approx(by_hand, abs=1e-4)
    # the notes' worked example: 5% vs 5.5% needs 31,217 users per arm (Cohen's h, NormalIndPower)
    h = 2 * (math.asin(math.sqrt(0.055)) - math.asin(math.sqrt(0.05)))
    assert round(NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8)) == 31217


def test_confidence_sequence_and_always_valid_p_are_the_same_mixture():
    se, n, tuning = 0.01, 5000, 5000
    lo, hi = stats.confidence_sequence(0.0, se, n, tuning)
    assert (hi - lo) / (2 * 1.959964 * se) == pytest.approx(1.55, abs=0.01)  # the notes: 1.55 x at N = N*
    for estimate in np.linspace(0.0, 0.05, 26):
        lo, hi = stats.confidence_sequence(estimate, se, n, tuning)
        assert (lo > 0) == (stats.always_valid_p(estimate / se, n, tuning) < 0.05)
    # p = 1 / Lambda of the mixture SPRT with n tau^2 / V = N rho^2 (Johari et al.)
    z, nr = 3.1, n * (-2 * math.log(0.05) + math.log(1 - 2 * math.log(0.05))) / tuning
    lam = math.sqrt(1 / (1 + nr)) * math.exp(nr * z * z / (2 * (1 + nr)))
    assert stats.always_valid_p(z, n, tuning) == pytest.approx(1 / lam)
    assert stats.always_valid_p(0.5, n, tuning) == 1.0
