"""Offline experiments: policies, position bias, the truth model, determinism, and a small A/A and A/B."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.analysis import AnalysisSettings, analyze, quick
from experiments.design import ExperimentDesign
from experiments.policies import Context, Observed, PopularityPolicy, RandomPolicy
from experiments.simulate import SimWorld, simulate
from producers.synthetic.behavior import probabilities
from producers.synthetic.config import ModelParams
from producers.synthetic.serving import examination

MODEL = ModelParams(users=2000, items=500, calibration_views=20_000)


@pytest.fixture(scope="module")
def sim() -> SimWorld:
    return SimWorld(seed=11, model=MODEL, warmup_events=30_000)


def design(control: str = "popularity", treatment: str = "random", salt: str = "t-1", **kw) -> ExperimentDesign:
    return ExperimentDesign("t", arms=(("control", control), ("treatment", treatment)), salt=salt, **kw)


def test_random_slates_are_distinct_and_uniform():
    rng = np.random.default_rng(0)
    ctx = Context.at(np.zeros(4000), np.zeros(4000), np.zeros(4000))
    s = RandomPolicy(30).slates(np.arange(4000), ctx, 10, rng)
    assert all(len(set(row)) == 10 for row in s.tolist())
    counts = np.bincount(s.ravel(), minlength=30)
    assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()


def test_popularity_counts_only_what_ended_before_the_session():
    hour = 3_600_000
    p = PopularityPolicy(n_items=5, origin_ms=0, window_s=2 * 3600, refresh_s=3600)
    view = np.zeros(1, dtype=np.int8)

    def seen(item: int, ts: int, times: int = 1) -> None:
        p.observe(Observed(np.zeros(times, np.int64), np.full(times, item), np.repeat(view, times), np.full(times, ts)))

    seen(4, -10, times=3)  # the warm-up: before the start
    seen(2, 10, times=5)  # during the first hour
    def at(t):
        return p.slates(np.array([0]), Context.at(np.array([t]), np.array([0]), np.array([0])), 2, None)[0].tolist()

    assert at(hour - 1) == [4, 0]  # the first hour has not ended: item 2 is not counted yet
    assert at(hour) == [2, 4]
    assert at(2 * hour) == [2, 0]  # the warm-up bin left the 2 h window
    assert at(3 * hour) == [0, 1]  # and then the first hour: nothing counted, ties by item number
    p.observe(Observed(np.zeros(1, np.int64), np.array([1]), np.array([1], np.int8), np.array([20])))  # a click
    assert at(hour) == [2, 4]  # only views count


def test_served_views_follow_the_position_bias(sim):
    for eta in (1.0, 0.0):
        run = simulate(design(position_bias=eta, slate_k=5), sim, seed=3, duration_s=60)
        views = run.events.etype == 0
        sessions = len(np.unique(run.events.slate))
        per_rank = np.bincount(run.events.position[views], minlength=6)[1:] / sessions
        theta = examination(5, eta)
        assert per_rank == pytest.approx(theta, abs=4 * np.sqrt(0.25 / sessions))


def test_clicks_follow_the_generators_truth_and_the_truth_is_the_slates(sim):
    run = simulate(design(), sim, seed=5, duration_s=120)
    ev, data = run.events, run.data
    views = ev.etype == 0
    # every served view's recorded P(click) is the behaviour model's for its user, item and device
    p = probabilities(sim.world, sim.params, sim.funnel, ev.user[views], ev.item[views], ev.device[views]).click
    assert np.array_equal(p, ev.p_click[views])
    clicked = ev.clicked[views]
    se = np.sqrt((p * (1 - p)).sum()) / views.sum()
    assert abs(clicked.mean() - p.mean()) < 4 * se
    # the potential outcome of the arm a session was served equals sum_r theta(r) p_click of the ranks it could view
    assert data.truth is not None and len(data.truth.slate) == len(np.unique(ev.slate))
    assert data.truth.expected_views == pytest.approx(np.full(len(data.truth.slate), examination(10, 1.0).sum()))
    theta = examination(10, 1.0)
    assert run.serving.log is not None
    first_view = {s: i for i, s in reversed(list(enumerate(ev.slate.tolist())))}
    for _, user, served in run.serving.log:
        device = ev.device[[first_view[s] for s in served.slate.tolist()]]
        k = served.items.shape[1]
        p_slate = probabilities(sim.world, sim.params, sim.funnel, np.repeat(user, k), served.items.ravel(),
                                np.repeat(device, k)).click.reshape(-1, k)
        own = served.expected_clicks[np.arange(len(served.arm)), served.arm]
        assert own == pytest.approx(p_slate @ theta)
    true_ctr = data.truth.ctr()
    assert true_ctr[0] > true_ctr[1]  # popularity beats random in this world


def test_the_simulation_is_deterministic_and_the_salt_reassigns(sim):
    a = simulate(design(), sim, seed=8, duration_s=30)
    b = simulate(design(), sim, seed=8, duration_s=30)
    assert np.array_equal(a.events.item, b.events.item) and np.array_equal(a.events.clicked, b.events.clicked)
    c = simulate(design(salt="t-2"), sim, seed=8, duration_s=30)
    arm_a = dict(zip(a.events.user.tolist(), a.events.arm.tolist(), strict=True))
    arm_c = dict(zip(c.events.user.tolist(), c.events.arm.tolist(), strict=True))
    shared = arm_a.keys() & arm_c.keys()
    assert 0.3 < np.mean([arm_a[u] == arm_c[u] for u in shared]) < 0.7


def test_a_small_aa_and_ab(sim):
    aa = quick(simulate(design("popularity", "popularity"), sim, seed=21, duration_s=60).data)
    assert aa["p_user"] > 0.001 and aa["true_lift"] == pytest.approx(0.0, abs=1e-12)
    report = analyze(simulate(design(), sim, seed=22, duration_s=60).data, AnalysisSettings(looks=5))
    (comp,) = report["comparisons"]
    user = comp["ctr"]["user_level"]
    assert user["p"] < 1e-6 and user["absolute"] < 0
    assert comp["true_lift"]["covered_absolute"]
    assert comp["ctr"]["design_effect"] > 1.0  # views of one user are correlated
    assert report["srm"]["alarm"] is False and "worse" in report["verdict"]


def test_the_sample_ratio_check_fires_when_one_arm_loses_users(sim):
    run = simulate(design("popularity", "popularity"), sim, seed=23, duration_s=120, drop_arm_share=0.3)
    report = analyze(run.data, AnalysisSettings(looks=2))
    assert report["srm"]["alarm"] and report["verdict"].startswith("SAMPLE RATIO MISMATCH")


def test_first_sessions_caps_events_and_truth_alike(sim):
    data = simulate(design(), sim, seed=24, duration_s=120).data
    capped = data.first_sessions(2)
    per_user = {}
    for u, s in zip(capped.user.tolist(), capped.slate.tolist(), strict=True):
        per_user.setdefault(u, set()).add(s)
    assert max(len(s) for s in per_user.values()) == 2
    assert capped.truth is not None and set(capped.truth.slate.tolist()) == set(capped.slate.tolist())
    assert len(capped) < len(data) and data.first_sessions(0) is data


def test_the_demos_short_experiment_falls_back_to_the_oracle_and_reports(tmp_path):
    from experiments.offline import run_short_experiment

    out = run_short_experiment(retriever=str(tmp_path / "no_model.pt"), duration_s=30, out=str(tmp_path))
    assert out["treatment"] == "oracle" and out["true_lift"] > 0.2
    assert "True lift" in out["verdict"] and (tmp_path / "demo.json").is_file()


def test_offline_cli_writes_the_report_and_refuses_bad_flags(tmp_path, capsys):
    from experiments.offline import main

    assert main(["--duration-s", "0"]) == 2
    assert "duration_s (--duration-s) must be > 0" in capsys.readouterr().err
    assert main(["--arms", "control=popularity,treatment=nope", "--out", str(tmp_path)]) == 2
    assert "unknown policy 'nope'" in capsys.readouterr().err
