"""Offline experiments: served sessions on the generator's world, with the truth of both arms.

The sessions are the producer's own (:class:`~producers.synthetic.stream.SessionSimulator`:
Poisson session starts at ``rate`` events per second of event time, thinned by the daily cycle,
users drawn by activity), and so is serving (:class:`~producers.synthetic.serving.Serving`:
assignment by hash, every arm's slate, position-biased views, the generator's truth model for
clicks, add-to-carts and purchases). Nothing is serialised: an experiment of a few thousand
users takes a fraction of a second, so the statistics can be checked over hundreds of them
(``benchmarks/bench_experiments.py``).

Offline, every session of an enrolled user is served (``served_share`` is ignored) and the
policies are frozen as of the start: they know the warm-up history (organic sessions before
the start, :func:`~producers.synthetic.serving.warmup_history`) and nothing of the experiment.
A :class:`SimWorld` builds the world, the funnel, the warm-up and the policies once; every
:func:`simulate` call then draws new sessions and, with a new salt, a new assignment.

>>> sim = SimWorld(seed=3, model=ModelParams(users=300, items=200, calibration_views=5000), warmup_events=5000)
>>> run = simulate(ExperimentDesign("doc", salt="doc-1"), sim, seed=1, duration_s=20)
>>> run.data.arms, bool((run.data.arm >= 0).all())
(('control', 'treatment'), True)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from experiments.data import ExperimentData, Truth
from experiments.design import ExperimentDesign
from experiments.policies import Policy, PolicyOptions, make_policy
from producers.synthetic.config import ModelParams
from producers.synthetic.prepare import world_and_funnel
from producers.synthetic.serving import Serving, warmup_history
from producers.synthetic.stream import EventBlock, SessionSimulator

DEFAULT_START_MS = int(datetime(2026, 1, 5, 12, tzinfo=UTC).timestamp() * 1000)  # a Monday, 12:00 UTC


class SimWorld:
    """The generator's world for seed ``seed`` (the producer's ``--seed``: the same users and items),
    its calibrated funnel, the warm-up history before ``start_ms`` and the policies built on it."""

    def __init__(self, seed: int = 7, model: ModelParams | None = None, start_ms: int = DEFAULT_START_MS,
                 rate: float = 1000.0, warmup_events: int = 200_000) -> None:
        self.seed, self.params, self.start_ms, self.rate = seed, model or ModelParams(), start_ms, rate
        self.world, self.funnel = world_and_funnel(seed, self.params)
        self.history = warmup_history(self.world, self.params, self.funnel, seed, start_ms, rate, warmup_events)
        self.user_ids = [f"u{n}" for n in range(len(self.world.users.age))]
        self._policies: dict[tuple[str, PolicyOptions], Policy] = {}

    def policy(self, name: str, options: PolicyOptions) -> Policy:
        """The named policy, built and taught the warm-up history once."""
        key = (name, options)
        if key not in self._policies:
            p = make_policy(name, self.world, self.params, self.funnel, self.start_ms, options)
            p.observe(self.history)
            self._policies[key] = p
        return self._policies[key]


@dataclass(frozen=True)
class Simulated:
    """One offline experiment: its design, the served events and the truth."""

    design: ExperimentDesign
    data: ExperimentData
    events: EventBlock  # the served sessions' events, generation order
    serving: Serving  # with its log: every served session's slates and potential outcomes


def simulate(design: ExperimentDesign, sim: SimWorld, seed: int, duration_s: float, rate: float | None = None,
             drop_arm_share: float = 0.0) -> Simulated:
    """Serve the sessions starting in ``duration_s`` seconds of event time after the start.

    ``seed`` draws the sessions, the random slates and the views; the assignment depends on the
    design's salt only. ``drop_arm_share`` loses that share of the *last* arm's users' events
    (a broken logger), to show the sample-ratio check firing.
    """
    from experiments.assignment import Assigner

    if duration_s <= 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration_s}")
    options = design.policy_options
    policies = [sim.policy(name, options) for name in design.policies]
    user_arm = Assigner(design.assignment_salt, design.arm_weights, design.coverage).assign(sim.user_ids)
    behaviour, serving_ss = np.random.SeedSequence(seed).spawn(2)
    served_design = replace(design, served_share=1.0)
    serving = Serving(served_design, sim.world, sim.params, sim.funnel, policies, user_arm,
                      np.random.default_rng(serving_ss))
    serving.keep_log()
    simulator = SessionSimulator(sim.world, sim.params, sim.funnel, rate or sim.rate, sim.start_ms,
                                 np.random.default_rng(behaviour))
    simulator.serving = serving
    block = simulator.session_events(0.0, duration_s)
    block = block.take(block.arm >= 0)
    if drop_arm_share > 0:
        lost = (block.arm == len(design.arms) - 1) & (
            np.random.default_rng(seed + 1).random(len(sim.user_ids))[block.user] < drop_arm_share)
        block = block.take(~lost)
    data = ExperimentData.from_block(block, design, sim.world.items.price, sim.user_ids, slate_truth(serving))
    return Simulated(design, data, block, serving)


def slate_truth(serving: Serving) -> Truth:
    """The potential outcomes of every served session (all arms' expected clicks and views)."""
    assert serving.log is not None
    if not serving.log:
        return Truth(np.zeros(0, dtype=np.int64), np.zeros((0, len(serving.policies))), np.zeros(0),
                     np.zeros(0, dtype=np.int64))
    ts = np.concatenate([t for t, _, _ in serving.log])
    clicks = np.concatenate([s.expected_clicks for _, _, s in serving.log])
    views = np.concatenate([np.full(len(s.session), s.expected_views) for _, _, s in serving.log])
    return Truth(ts, clicks, views, np.concatenate([s.slate for _, _, s in serving.log]))
