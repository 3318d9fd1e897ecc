"""Served sessions: a user enrolled in an experiment sees a slate from their arm's policy.

The producer's experiment mode and the offline simulation (:mod:`experiments.simulate`) both
generate sessions with :class:`~producers.synthetic.stream.SessionSimulator`; with a
:class:`Serving` attached, a session of an enrolled user is *served* with probability
``served_share``: instead of browsing (geometric views chosen by preference, popularity or at
random), the user is shown the k items of their arm's policy and views the ones they examine.

**Position bias** (the position-based model, as in Open Bandit Pipeline's synthetic slates):
rank r of the slate is examined with probability ``theta(r) = r ** -eta``, independently of
the other ranks and of the item, and an examined item is viewed. ``eta = 0`` views the whole
slate; the default ``eta = 1`` views 1, 1/2, 1/3, ... of ranks 1, 2, 3, ... (2.93 of 10 on
average). Rank 1 is always examined, so every served session has a view. Views follow in rank
order. What a view leads to (click, add-to-cart, purchase, their times, the rating) is the
generator's truth model, the same code as for organic views (``behavior.probabilities``).

**The truth of a served session.** Every arm's policy makes a slate for every served session
(common random numbers), so each session has a potential outcome under every arm: its
expected clicks ``sum_r theta(r) * P(click | user, item_r, device)`` and expected views
``sum_r theta(r)``. The truth record of the session's first view carries them (``slate``), so
the true lift over the experiment's own sessions is known; the truth record of every served
view carries its true ``p_click`` as always. When the realised arm's policy says where each
slate came from (``last_origin``: the ``pipeline`` policy, the flow's ``request_id`` or None
for its fallback), the first view's truth record also names it (``pipeline_request_id``), and
the arm's sessions with and without a pipeline slate are counted.

Assignment is by :class:`experiments.assignment.Assigner`; policies learn only from the
warm-up history (:func:`warmup_history`, organic sessions before the start) and from the
organic (unserved) events of the stream, so the arms cannot leak into each other through them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from producers.synthetic.behavior import Funnel, probabilities
from producers.synthetic.config import ModelParams
from producers.synthetic.world import World

if TYPE_CHECKING:
    from experiments.design import ExperimentDesign
    from experiments.policies import Observed, Policy
    from producers.synthetic.stream import EventBlock

SERVING_STREAM = 4  # SeedSequence(seed, spawn_key=(4,)): the serving draws (0-3 are prepare's)
WARMUP_STREAM = 5  # the warm-up history's sessions


def examination(k: int, eta: float) -> np.ndarray:
    """theta(r) = r ** -eta for ranks 1..k; (k,).

    >>> examination(3, 1.0).round(3).tolist(), examination(2, 0.0).tolist()
    ([1.0, 0.5, 0.333], [1.0, 1.0])
    """
    return np.arange(1, k + 1, dtype=np.float64) ** -eta


@dataclass(frozen=True)
class ServedSessions:
    """The served sessions of a batch. S served sessions, V of their views, A arms, k ranks."""

    session: np.ndarray  # (S,) int64 index of the session in the batch
    arm: np.ndarray  # (S,) int8 index into the design's arms
    slate: np.ndarray  # (S,) int64 slate number, unique in a run
    items: np.ndarray  # (S, k) int64 the slate shown
    views: np.ndarray  # (S,) int64 examined ranks
    position: np.ndarray  # (V,) int8 rank 1..k of each view, by session then rank
    item: np.ndarray  # (V,) int64 viewed item
    expected_clicks: np.ndarray  # (S, A) float64 sum_r theta(r) P(click) of each arm's slate
    expected_views: float  # sum_r theta(r)

    def view_rows(self, first: np.ndarray) -> np.ndarray:
        """(V,) row of each view in the batch's views, given ``first`` (sessions,) row of each session's first view."""
        offsets = np.repeat(np.cumsum(self.views) - self.views, self.views)
        return first[np.repeat(self.session, self.views)] + np.arange(len(self.item)) - offsets


class Serving:
    """Chooses the served sessions, makes every arm's slate, draws which ranks are viewed."""

    def __init__(self, design: ExperimentDesign, world: World, params: ModelParams, funnel: Funnel,
                 policies: list[Policy], user_arm: np.ndarray, rng: np.random.Generator) -> None:
        self.design, self.world, self.params, self.funnel = design, world, params, funnel
        self.policies, self.user_arm, self.rng = policies, user_arm, rng  # user_arm (U,) int8, -1: not enrolled
        self.theta = examination(design.slate_k, design.position_bias)
        self.next_slate = 0
        self.log: list[tuple[np.ndarray, np.ndarray, ServedSessions]] | None = None  # keep_log: (ts, user, served)
        # slate -> [expected views, expected clicks per arm] until the serializer writes it (for_serializer)
        self.pending: dict[int, np.ndarray] | None = None
        self.origins: dict[int, str] = {}  # slate -> request_id of the flow's slate shown, until the serializer writes it
        # per arm whose policy reports origins: [sessions shown a pipeline slate, sessions shown the fallback's]
        self.shown = np.zeros((len(policies), 2), dtype=np.int64)

    def for_serializer(self) -> tuple[dict[int, np.ndarray], dict[int, str]]:
        """Keep every served slate's potential outcomes and origin for the truth records (the serializer pops them)."""
        self.pending = {}
        return self.pending, self.origins

    def keep_log(self) -> None:
        """Remember every batch's served sessions with their start times and users (offline simulation)."""
        self.log = []

    def serve(self, ts_ms: np.ndarray, user: np.ndarray, device: np.ndarray) -> ServedSessions | None:
        """The served sessions among sessions starting at ``ts_ms`` (n,) of ``user`` on ``device``."""
        from experiments.policies import Context

        arm_all = self.user_arm[user]
        chosen = (arm_all >= 0) & (self.rng.random(len(user)) < self.design.served_share)
        session = np.flatnonzero(chosen)
        if len(session) == 0:
            return None
        u, d, arm = user[session], device[session], arm_all[session]
        ctx = Context.at(ts_ms[session], d, self.world.users.country[u])
        k, n_arms = self.design.slate_k, len(self.policies)
        slates = np.stack([p.slates(u, ctx, k, self.rng) for p in self.policies], axis=1)  # (S, A, k)
        origins = self._origins(arm)  # (row, request_id) of the sessions shown a pipeline slate
        p_click = probabilities(self.world, self.params, self.funnel, np.repeat(u, n_arms * k), slates.reshape(-1),
                                np.repeat(d, n_arms * k)).click.reshape(len(session), n_arms, k)
        expected = p_click @ self.theta  # (S, A)
        items = slates[np.arange(len(session)), arm]  # (S, k) the realised arm's slate
        seen = self.rng.random(items.shape) < self.theta  # (S, k)
        s_idx, rank = np.nonzero(seen)  # row-major: by session, then rank
        served = ServedSessions(
            session=session, arm=arm.astype(np.int8), slate=self.next_slate + np.arange(len(session)), items=items,
            views=seen.sum(axis=1), position=(rank + 1).astype(np.int8), item=items[s_idx, rank],
            expected_clicks=expected, expected_views=float(self.theta.sum()),
        )
        self.next_slate += len(session)
        if self.log is not None:
            self.log.append((ts_ms[session], u, served))
        if self.pending is not None:
            outcomes = np.column_stack([np.full(len(session), served.expected_views), expected])  # (S, 1 + A)
            self.pending.update(zip(served.slate.tolist(), outcomes, strict=True))
            self.origins.update((int(served.slate[row]), origin) for row, origin in origins)
        return served

    def _origins(self, arm: np.ndarray) -> list[tuple[int, str]]:
        """Count, per arm whose policy reports where its last slates came from, its own sessions shown a
        pipeline slate and those shown the fallback's; ``(row, request_id)`` of the former."""
        found = []
        for a, policy in enumerate(self.policies):
            origin = getattr(policy, "last_origin", None)
            if origin is None:
                continue
            mine = np.flatnonzero(arm == a).tolist()
            shown = [(r, origin[r]) for r in mine if origin[r] is not None]
            self.shown[a] += (len(shown), len(mine) - len(shown))
            found += shown
        return found

    def summary(self, written: np.ndarray) -> dict[str, object]:
        """What the run's report says: served sessions written per arm (``written``), and each policy's
        counters (if it keeps any), which count every slate it made, also for sessions generated past the
        run's end and for the other arms' sessions (their potential outcomes)."""
        arms = {}
        for a, ((name, policy), served, p) in enumerate(zip(self.design.arms, written.tolist(), self.policies,
                                                            strict=True)):
            arms[name] = {"policy": policy, "served_sessions": served, **getattr(p, "counters", {})}
            if hasattr(p, "last_origin"):  # of this arm's own sessions (generated, a few past a live run's end)
                arms[name]["sessions_shown_pipeline"], arms[name]["sessions_shown_fallback"] = self.shown[a].tolist()
        return {"name": self.design.name, "salt": self.design.assignment_salt, "served_share": self.design.served_share,
                "slate_k": self.design.slate_k, "position_bias": self.design.position_bias, "arms": arms}

    def observe(self, block: EventBlock) -> None:
        """Hand the block's organic (unserved) events to every policy."""
        from experiments.policies import Observed

        organic = block.arm < 0
        if organic.any():
            events = Observed(block.user[organic], block.item[organic], block.etype[organic], block.t_ms[organic])
            for p in self.policies:
                p.observe(events)


def warmup_history(world: World, params: ModelParams, funnel: Funnel, seed: int, start_ms: int, rate: float,
                   events: int) -> Observed:
    """About ``events`` organic events ending at ``start_ms``: what the policies know at the start.

    Generated by the stream's own session simulator at ``rate`` events per second of event
    time from ``start_ms - events / rate`` (its own random stream), cut at ``start_ms``.
    """
    from experiments.policies import Observed
    from producers.synthetic.stream import EventBlock, SessionSimulator

    if events <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return Observed(empty, empty, empty.astype(np.int8), empty)
    span_ms = max(1, round(events / rate * 1000))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(WARMUP_STREAM,)))
    sim = SessionSimulator(world, params, funnel, rate, start_ms - span_ms, rng)
    parts = []
    for block in sim.blocks(min(65_536, max(1024, events // 4))):
        if len(block) and block.t_ms[-1] >= start_ms:
            parts.append(block.take(block.t_ms < start_ms))
            break
        parts.append(block)
    b = EventBlock.concat(parts)
    return Observed(b.user, b.item, b.etype, b.t_ms)


def build_serving(design: ExperimentDesign, world: World, params: ModelParams, funnel: Funnel, seed: int,
                  start_ms: int, rate: float) -> Serving:
    """Assign every user, build the arms' policies and teach them the warm-up history."""
    from experiments.assignment import Assigner
    from experiments.policies import make_policy

    options = design.policy_options
    policies = [make_policy(name, world, params, funnel, start_ms, options) for name in design.policies]
    assigner = Assigner(design.assignment_salt, design.arm_weights, design.coverage)
    user_arm = assigner.assign([f"u{n}" for n in range(len(world.users.age))])
    history = warmup_history(world, params, funnel, seed, start_ms, rate, design.warmup_events)
    for p in policies:
        p.observe(history)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SERVING_STREAM,)))
    return Serving(design, world, params, funnel, policies, user_arm, rng)
