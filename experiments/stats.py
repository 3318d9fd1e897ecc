"""The statistics of an A/B test, per arm and per comparison; distributions and standard tests
from scipy and statsmodels, by hand only what they lack (each with its source).

Notation: arm a has n_a users; user i has M_i (e.g. clicks) over D_i (e.g. views).

* **Ratio metrics** (CTR = sum M / sum D over an arm's users), delta method (Deng, Knoblich, Lu,
  "Applying the Delta Method in Metric Analytics", KDD 2018; GrowthBook's
  docs/statistics/details.mdx eq. 11-12): per-user variance
  ``sigma2 = (s2_M - 2 R s_MD + R**2 s2_D) / Dbar**2`` with R = Mbar / Dbar, Var(R) = sigma2 / n.
  The unit of analysis is the randomised unit, the user: :func:`ratio_stats`.
* **Lifts** (GrowthBook details.mdx eq. 1-4): absolute ``R_T - R_C`` with variance
  ``sigma2_C/n_C + sigma2_T/n_T``; relative ``(R_T - R_C)/R_C`` with delta-method variance
  ``sigma2_C R_T**2 / (R_C**4 n_C) + sigma2_T / (R_C**2 n_T)``; normal intervals: :func:`lift`.
* **The impression-level test** of the seed notebook, a two-proportion z-test that counts every
  view as an independent Bernoulli trial: :func:`impression_ztest` (statsmodels
  ``proportions_ztest``). Views of one user share that user's propensity, so its variance is
  too small by the design effect (about ``1 + (m - 1) ICC`` for m views per user): it rejects
  more often than it says.
* **Sample-ratio mismatch**: Pearson chi-square of users per arm against the planned weights
  (scipy ``chisquare``); alarm at p < 0.001 as GrowthBook and Eppo do: :func:`srm`.
* **Power and MDE** for n users per arm with the per-user sigma (statsmodels ``NormalIndPower``):
  :func:`power`, :func:`mde`, :func:`users_needed`.
* **Sequential monitoring**: :func:`confidence_sequence` and :func:`always_valid_p`, the
  normal-mixture boundary that GrowthBook implements after Waudby-Smith, Arbour, Sinha, Kennedy,
  Ramdas, "Time-uniform central limit theory and asymptotic confidence sequences" (2021,
  arXiv:2103.06476, eq. 9), the same as the mixture SPRT of Johari, Pekelis, Walsh, "Always
  Valid Inference: Continuous Monitoring of A/B Tests" (Operations Research 2022,
  arXiv:1512.04922) with ``n tau**2 / V = N rho**2``. Tuned for a total sample N* (both arms):
  ``rho**2 = (-2 ln alpha + ln(1 - 2 ln alpha)) / N*``. :func:`running` takes the running
  minimum of the p-values and the running intersection of the intervals (Johari et al.), which
  keeps them valid under any number of looks.

>>> round(z_crit(0.05), 4)
1.96
>>> s = ratio_stats(np.array([1.0, 2.0, 0.0, 3.0]), np.array([2.0, 4.0, 1.0, 5.0]))
>>> round(s.ratio, 4), s.n
(0.5, 4)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

ALPHA = 0.05
SRM_ALPHA = 0.001  # GrowthBook's DEFAULT_SRM_THRESHOLD and Eppo's alpha for the SRM check


def z_crit(alpha: float) -> float:
    """Two-sided normal critical value."""
    return float(stats.norm.ppf(1 - alpha / 2))


def two_sided_p(z: float) -> float:
    return float(2 * stats.norm.sf(abs(z)))


@dataclass(frozen=True)
class RatioStats:
    """One arm's ratio metric over its users, with the delta-method per-user variance."""

    n: int  # users
    num: float  # sum of numerators (clicks)
    den: float  # sum of denominators (views)
    ratio: float  # num / den
    var_unit: float  # sigma2 of the module docstring (per user)

    @property
    def se(self) -> float:
        return math.sqrt(self.var_unit / self.n) if self.n > 0 else math.nan

    def ci(self, alpha: float = ALPHA) -> tuple[float, float]:
        h = z_crit(alpha) * self.se
        return self.ratio - h, self.ratio + h


def ratio_stats(num: np.ndarray, den: np.ndarray) -> RatioStats:
    """Delta-method statistics of sum(num) / sum(den) over users (arrays (n,), one entry per user)."""
    n = len(num)
    if n < 2 or float(den.sum()) <= 0:
        return RatioStats(n, float(num.sum()), float(den.sum()), math.nan, math.nan)
    m_bar, d_bar = float(num.mean()), float(den.mean())
    r = m_bar / d_bar
    cov = np.cov(num, den, ddof=1)  # (2, 2) sample (co)variances
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (d_bar * d_bar)
    return RatioStats(n, float(num.sum()), float(den.sum()), r, float(var))


@dataclass(frozen=True)
class Lift:
    """Treatment versus control: absolute and relative lift, their standard errors, intervals, test."""

    control: float
    treatment: float
    absolute: float
    absolute_se: float
    absolute_ci: tuple[float, float]
    relative: float
    relative_se: float
    relative_ci: tuple[float, float]
    z: float
    p: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lift(control: float, var_c: float, n_c: int, treatment: float, var_t: float, n_t: int,
         alpha: float = ALPHA) -> Lift:
    """Lift of arm means (or ratios) with per-unit variances ``var_*`` over ``n_*`` units (GrowthBook eq. 1-4)."""
    zc = z_crit(alpha)
    diff = treatment - control
    se = math.sqrt(var_c / n_c + var_t / n_t)
    if control != 0:
        rel = diff / control
        rel_se = math.sqrt(var_c * treatment**2 / (control**4 * n_c) + var_t / (control**2 * n_t))
    else:
        rel, rel_se = math.nan, math.nan
    z = diff / se if se > 0 else math.nan
    return Lift(control, treatment, diff, se, (diff - zc * se, diff + zc * se), rel, rel_se,
                (rel - zc * rel_se, rel + zc * rel_se), z, two_sided_p(z) if se > 0 else math.nan)


def ratio_lift(c: RatioStats, t: RatioStats, alpha: float = ALPHA) -> Lift:
    """The user-level test of a ratio metric (CTR): delta method in each arm."""
    return lift(c.ratio, c.var_unit, c.n, t.ratio, t.var_unit, t.n, alpha)


def mean_lift(x_c: np.ndarray, x_t: np.ndarray, alpha: float = ALPHA) -> Lift:
    """The lift of a per-user mean (conversion, revenue per user): unequal-variance z-test (statsmodels)."""
    compare = CompareMeans(DescrStatsW(x_t), DescrStatsW(x_c))
    z, p = compare.ztest_ind(usevar="unequal")
    out = lift(float(x_c.mean()), float(x_c.var(ddof=1)), len(x_c), float(x_t.mean()), float(x_t.var(ddof=1)),
               len(x_t), alpha)
    lo, hi = compare.zconfint_diff(alpha=alpha, usevar="unequal")
    return Lift(out.control, out.treatment, out.absolute, out.absolute_se, (float(lo), float(hi)), out.relative,
                out.relative_se, out.relative_ci, float(z), float(p))


@dataclass(frozen=True)
class ImpressionTest:
    """The two-proportion z-test over views (every view an independent trial)."""

    z: float
    p: float
    absolute_ci: tuple[float, float]  # Wald interval of the CTR difference

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def impression_ztest(clicks_c: int, views_c: int, clicks_t: int, views_t: int, alpha: float = ALPHA) -> ImpressionTest:
    """statsmodels ``proportions_ztest`` (pooled variance) on clicks / views, treatment minus control."""
    z, p = proportions_ztest([clicks_t, clicks_c], [views_t, views_c])
    p_c, p_t = clicks_c / views_c, clicks_t / views_t
    h = z_crit(alpha) * math.sqrt(p_c * (1 - p_c) / views_c + p_t * (1 - p_t) / views_t)
    return ImpressionTest(float(z), float(p), (p_t - p_c - h, p_t - p_c + h))


def srm(users: list[int], weights: tuple[float, ...] | None = None) -> tuple[float, float]:
    """Chi-square ``(statistic, p)`` of users per arm against the planned relative weights (equal by default)."""
    observed = np.asarray(users, dtype=np.float64)
    w = np.ones(len(users)) if weights is None else np.asarray(weights, dtype=np.float64)
    expected = observed.sum() * w / w.sum()
    keep = expected > 0  # a zero-weight arm is left out (GrowthBook's check_srm does the same)
    result = stats.chisquare(observed[keep], expected[keep])
    return float(result.statistic), float(result.pvalue)


def pooled_sd(var_c: float, var_t: float, ratio: float = 1.0) -> float:
    """The common sigma that gives ``Var(diff) = var_c/n_c + var_t/n_t`` in statsmodels' form
    ``sigma**2 (1/n_c + 1/n_t)`` with ``n_t = ratio * n_c``."""
    return math.sqrt((var_c + var_t / ratio) / (1 + 1 / ratio))


def power(delta: float, var_c: float, var_t: float, n_c: float, ratio: float = 1.0, alpha: float = ALPHA) -> float:
    """Power of the two-sided test to detect an absolute lift ``delta`` with n_c control users (n_t = ratio n_c)."""
    sd = pooled_sd(var_c, var_t, ratio)
    return float(NormalIndPower().power(effect_size=abs(delta) / sd, nobs1=n_c, alpha=alpha, ratio=ratio))


def mde(var_c: float, var_t: float, n_c: float, ratio: float = 1.0, alpha: float = ALPHA, target_power: float = 0.8) -> float:
    """The smallest absolute lift detected with ``target_power`` at n_c control users."""
    sd = pooled_sd(var_c, var_t, ratio)
    es = NormalIndPower().solve_power(effect_size=None, nobs1=n_c, alpha=alpha, power=target_power, ratio=ratio)
    return float(es) * sd


def users_needed(delta: float, var_c: float, var_t: float, ratio: float = 1.0, alpha: float = ALPHA,
                 target_power: float = 0.8) -> float:
    """Control users needed to detect an absolute lift ``delta`` with ``target_power``."""
    sd = pooled_sd(var_c, var_t, ratio)
    return float(NormalIndPower().solve_power(effect_size=abs(delta) / sd, nobs1=None, alpha=alpha,
                                              power=target_power, ratio=ratio))


def _rho2(tuning_n: float, alpha: float) -> float:
    return (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / tuning_n


def confidence_sequence(estimate: float, se: float, n_total: int, tuning_n: float, alpha: float = ALPHA) -> tuple[float, float]:
    """The asymptotic confidence sequence at this look (Waudby-Smith et al. 2021 eq. 9, as GrowthBook):
    ``estimate +- se sqrt(N) sqrt(2 (N rho2 + 1) / (N**2 rho2) ln(sqrt(N rho2 + 1) / alpha))``."""
    rho2 = _rho2(tuning_n, alpha)
    nr = n_total * rho2
    half = se * math.sqrt(n_total) * math.sqrt(2 * (nr + 1) / (n_total * n_total * rho2) * math.log(math.sqrt(nr + 1) / alpha))
    return estimate - half, estimate + half


def always_valid_p(z: float, n_total: int, tuning_n: float, alpha: float = ALPHA) -> float:
    """``min(1, 1 / Lambda)`` with the normal-mixture likelihood ratio
    ``Lambda = exp(N rho2 z**2 / (2 (N rho2 + 1))) / sqrt(N rho2 + 1)``; p < alpha exactly when
    :func:`confidence_sequence` excludes 0."""
    nr = n_total * _rho2(tuning_n, alpha)
    log_lambda = nr * z * z / (2 * (nr + 1)) - 0.5 * math.log(nr + 1)
    return float(min(1.0, math.exp(-log_lambda)))


def running(p_values: list[float], intervals: list[tuple[float, float]]) -> tuple[list[float], list[tuple[float, float]]]:
    """Running minimum of the p-values and running intersection of the intervals over looks.

    >>> running([0.5, 0.7, 0.2], [(-1.0, 2.0), (-0.5, 3.0), (0.1, 1.0)])
    ([0.5, 0.5, 0.2], [(-1.0, 2.0), (-0.5, 2.0), (0.1, 1.0)])
    """
    ps, cis = [], []
    p_min, lo, hi = 1.0, -math.inf, math.inf
    for p, (a, b) in zip(p_values, intervals, strict=True):
        p_min, lo, hi = min(p_min, p), max(lo, a), min(hi, b)
        ps.append(p_min)
        cis.append((lo, hi))
    return ps, cis
