"""Recommendation policies: given users, their context and k, the slates they are shown.

A policy is anything with a ``name``, :meth:`Policy.slates` and :meth:`Policy.observe`. Items are
item numbers (``item_id`` = ``i{n}``), users user numbers (``u{n}``). Policies only learn from
what they :meth:`~Policy.observe`: events handed to them before the sessions they serve (the
experiment's warm-up history, and in the producer the unserved sessions' events as they are
generated), never the generator's latent weights; the exception is :class:`OraclePolicy`,
which reads the truth on purpose, as the ceiling no policy can beat.

* ``random``: k distinct items uniformly from the catalog.
* ``popularity``: the k most viewed items in a trailing window (default 24 h), counted in
  bins of ``refresh_s`` (1 h) of event time; a session at time t sees the counts of the bins
  that ended by t, so nothing after the session start is used (the slate changes once per bin).
* ``popularity-explore``: popularity with each rank replaced by a random item with
  probability ``explore_rate`` (epsilon-greedy exploration; 0.1 by default).
* ``oracle``: the k items with the highest true P(click | user, item, device).
* ``two-tower``: the trained Two-Tower retriever's top k (:mod:`experiments.model_policies`).
* ``pipeline``: the features flow's slates from the ``recommendations`` topic (the closed loop;
  :mod:`experiments.pipeline_policy`), popularity for users without one yet.
* ``two-tower-dlrm``: reserved for the pipeline's slates (Two-Tower candidates re-ranked by the
  DLRM on the flow's counts); not built in-process (:func:`make_policy`).

>>> p = PopularityPolicy(n_items=4, origin_ms=0)
>>> p.observe(Observed(user=np.array([0, 1, 2]), item=np.array([3, 3, 1]), etype=np.zeros(3, np.int8),
...                    ts_ms=np.array([-5, -4, -3])))
>>> p.slates(np.array([7]), Context.at(np.array([10]), np.array([0]), np.array([0])), 2, None).tolist()
[[3, 1]]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import numpy as np

from events.schema import EVENT_TYPE_INDEX
from experiments.design import MODEL_POLICIES, POLICY_NAMES
from producers.synthetic.behavior import Funnel, linear_parts
from producers.synthetic.config import ModelParams
from producers.synthetic.world import World

VIEW: Final = EVENT_TYPE_INDEX["view"]


@dataclass(frozen=True)
class Context:
    """Where and when each of n sessions asks for a slate; (n,) each."""

    ts_ms: np.ndarray  # int64 session start, epoch ms UTC
    device: np.ndarray  # index into events.schema.DEVICES
    country: np.ndarray  # index into events.schema.COUNTRIES

    @classmethod
    def at(cls, ts_ms: np.ndarray, device: np.ndarray, country: np.ndarray) -> Context:
        return cls(np.asarray(ts_ms, dtype=np.int64), np.asarray(device), np.asarray(country))


@dataclass(frozen=True)
class Observed:
    """Events a policy may learn from, as columns (n,): user and item numbers, type, time."""

    user: np.ndarray  # int64
    item: np.ndarray  # int64
    etype: np.ndarray  # int8 index into events.schema.EVENT_TYPES
    ts_ms: np.ndarray  # int64


class Policy(Protocol):
    """What the serving code needs of a policy."""

    name: str

    def slates(self, users: np.ndarray, context: Context, k: int, rng: np.random.Generator | None) -> np.ndarray:
        """(n, k) int64 distinct item numbers per row, best first."""
        ...

    def observe(self, events: Observed) -> None:
        """Learn from events that happened before every later :meth:`slates` call's sessions."""
        ...


class RandomPolicy:
    """k distinct items drawn uniformly from the catalog, independently per session."""

    name = "random"

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items

    def slates(self, users: np.ndarray, context: Context, k: int, rng: np.random.Generator | None) -> np.ndarray:
        if rng is None:
            raise ValueError("the random policy needs a random generator")
        out = rng.integers(0, self.n_items, (len(users), k))
        while True:  # redraw repeated items until every row is distinct (rare: k << items)
            srt = np.sort(out, axis=1)
            dup_rows = np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))
            if len(dup_rows) == 0:
                return out
            for r in dup_rows.tolist():
                _, first = np.unique(out[r], return_index=True)
                repeat = np.setdiff1d(np.arange(k), first)
                out[r, repeat] = rng.integers(0, self.n_items, len(repeat))

    def observe(self, events: Observed) -> None:
        return None


class PopularityPolicy:
    """The k most viewed items of the trailing ``window_s``, counted in bins of ``refresh_s``.

    Bins are aligned to ``origin_ms`` (the experiment's start): bin b holds views with
    ``origin + b * refresh <= ts < origin + (b + 1) * refresh``, and a session at t reads the
    bins that ended by t and began within the window. Ties go to the lower item number.
    """

    name = "popularity"

    def __init__(self, n_items: int, origin_ms: int, window_s: float = 86_400.0, refresh_s: float = 3_600.0) -> None:
        if window_s <= 0 or refresh_s <= 0:
            raise ValueError(f"popularity window and refresh must be > 0 s, got {window_s} and {refresh_s}")
        self.n_items, self.origin_ms = n_items, origin_ms
        self.window_ms, self.refresh_ms = round(window_s * 1000), max(1, round(refresh_s * 1000))
        self.bins: dict[int, np.ndarray] = {}  # bin index -> (I,) view counts
        self._ranked: dict[int, np.ndarray] = {}  # bin index of "now" -> items by count, cached

    def observe(self, events: Observed) -> None:
        views = events.etype == VIEW
        if not views.any():
            return
        b = (events.ts_ms[views] - self.origin_ms) // self.refresh_ms
        items = events.item[views]
        for idx in np.unique(b).tolist():
            counts = np.bincount(items[b == idx], minlength=self.n_items)
            self.bins[idx] = self.bins.get(idx, np.zeros(self.n_items, dtype=np.int64)) + counts
        self._ranked.clear()
        oldest = int(b.max()) - self.window_ms // self.refresh_ms - 2
        for idx in [i for i in self.bins if i < oldest]:
            del self.bins[idx]

    def ranking(self, ts_ms: int) -> np.ndarray:
        """(I,) item numbers by views in the bins that ended by ``ts_ms``, within the window."""
        now = (ts_ms - self.origin_ms) // self.refresh_ms  # the bin ts_ms falls in: not yet ended
        cached = self._ranked.get(now)
        if cached is None:
            start = self.origin_ms + now * self.refresh_ms - self.window_ms
            counts = np.zeros(self.n_items, dtype=np.int64)
            for idx, c in self.bins.items():
                if idx < now and self.origin_ms + idx * self.refresh_ms >= start:
                    counts += c
            cached = self._ranked[now] = np.argsort(-counts, kind="stable")
        return cached

    def slates(self, users: np.ndarray, context: Context, k: int, rng: np.random.Generator | None) -> np.ndarray:
        out = np.empty((len(users), k), dtype=np.int64)
        now = (context.ts_ms - self.origin_ms) // self.refresh_ms
        for b in np.unique(now).tolist():
            rows = now == b
            out[rows] = self.ranking(self.origin_ms + b * self.refresh_ms)[:k]
        return out


class ExplorePolicy:
    """Another policy's slate with each rank replaced, with probability ``rate``, by a random item.

    Epsilon-greedy exploration over ``base`` (``popularity-explore``: over popularity): a
    modest, known change of a policy, what an A/B test of small effects looks like.
    """

    def __init__(self, base: Policy, n_items: int, rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"explore rate must be between 0 and 1, got {rate}")
        self.base, self.rate, self.random = base, rate, RandomPolicy(n_items)
        self.name = f"{base.name}-explore"

    def observe(self, events: Observed) -> None:
        self.base.observe(events)

    def slates(self, users: np.ndarray, context: Context, k: int, rng: np.random.Generator | None) -> np.ndarray:
        if rng is None:
            raise ValueError("the explore policy needs a random generator")
        out = self.base.slates(users, context, k, rng).copy()
        swap = rng.random(out.shape) < self.rate
        if swap.any():
            # a random item that is not already in the row (rows stay distinct)
            pool = self.random.slates(users, context, 2 * k, rng)
            for r, c in zip(*np.nonzero(swap), strict=True):
                out[r, c] = next(i for i in pool[r] if i not in out[r])
        return out


class OraclePolicy:
    """The k items with the highest true P(click | user, item, device): the generator's truth.

    Not a deployable policy (it reads the latent weights); the ceiling of the click-through
    rate any policy can reach on a slate. The device only shifts the click logit, so a user's
    ranking is the same on every device; it is computed once per user.
    """

    name = "oracle"

    def __init__(self, world: World, params: ModelParams, funnel: Funnel) -> None:
        self.world, self.params, self.funnel = world, params, funnel
        self.n_items = len(world.items.price)
        self._top: dict[int, np.ndarray] = {}  # user -> items by P(click), best first (the first 100)

    def observe(self, events: Observed) -> None:
        return None

    def slates(self, users: np.ndarray, context: Context, k: int, rng: np.random.Generator | None) -> np.ndarray:
        missing = sorted(set(users.tolist()) - self._top.keys())
        keep = min(self.n_items, 100)
        for lo in range(0, len(missing), 256):  # (256 x I) logits at a time
            chunk = np.array(missing[lo : lo + 256], dtype=np.int64)
            u = np.repeat(chunk, self.n_items)
            z, _, _, _ = linear_parts(self.world, self.params, u, np.tile(np.arange(self.n_items), len(chunk)),
                                      np.zeros(len(u), dtype=np.int64))
            z = z.reshape(len(chunk), self.n_items)
            top = np.argpartition(-z, keep - 1, axis=1)[:, :keep]
            order = np.argsort(-np.take_along_axis(z, top, axis=1), axis=1, kind="stable")
            for user, row in zip(chunk.tolist(), np.take_along_axis(top, order, axis=1), strict=True):
                self._top[user] = row
        if k > keep:
            raise ValueError(f"the oracle policy serves slates of at most {keep} items, asked for {k}")
        return np.array([self._top[u][:k] for u in users.tolist()], dtype=np.int64).reshape(len(users), k)


@dataclass(frozen=True)
class PolicyOptions:
    """Settings of the policies that have any."""

    popularity_window_s: float = 86_400.0
    popularity_refresh_s: float = 3_600.0
    explore_rate: float = 0.1  # popularity-explore: share of ranks replaced by a random item
    retriever: str = "artifacts/two_tower.pt"
    slates_topic: str | None = None  # pipeline: the recommendations topic (None: $TOPIC_RECOMMENDATIONS or recommendations)


def make_policy(name: str, world: World, params: ModelParams, funnel: Funnel, origin_ms: int,
                options: PolicyOptions | None = None) -> Policy:
    """A fresh policy by name; raises ValueError naming the known policies or the missing artifact."""
    options = options or PolicyOptions()
    n_items = len(world.items.price)
    if name == "random":
        return RandomPolicy(n_items)
    if name == "popularity":
        return PopularityPolicy(n_items, origin_ms, options.popularity_window_s, options.popularity_refresh_s)
    if name == "popularity-explore":
        base = PopularityPolicy(n_items, origin_ms, options.popularity_window_s, options.popularity_refresh_s)
        return ExplorePolicy(base, n_items, options.explore_rate)
    if name == "oracle":
        return OraclePolicy(world, params, funnel)
    if name == "two-tower":
        from models.artifact import ArtifactError

        if not Path(options.retriever).is_file():
            msg = f"policy 'two-tower' needs {MODEL_POLICIES[name]}; {options.retriever} does not exist"
            raise ValueError(msg)
        from experiments.model_policies import TwoTowerPolicy

        try:
            return TwoTowerPolicy.load(options.retriever, world)
        except ArtifactError as e:
            raise ValueError(str(e)) from None
    if name == "pipeline":
        from broker.config import Topics
        from broker.embedded import resolve_bootstrap
        from experiments.pipeline_policy import PipelinePolicy

        fallback = PopularityPolicy(n_items, origin_ms, options.popularity_window_s, options.popularity_refresh_s)
        topic = options.slates_topic or Topics.from_env().recommendations
        return PipelinePolicy(resolve_bootstrap(), topic, fallback, n_items)
    if name in MODEL_POLICIES:
        # Re-ranking the Two-Tower's candidates with the DLRM needs the flow's point-in-time counts of
        # the user, every candidate and the user x its category; the flow's slate stage makes exactly
        # these slates (slates/ranker.py), so this arm is to come from the recommendations topic.
        msg = f"policy {name!r} is not built in-process: it needs {MODEL_POLICIES[name]}; docs/experiments.md"
        raise ValueError(msg)
    msg = f"unknown policy {name!r}; expected one of {', '.join(POLICY_NAMES)}"
    raise ValueError(msg)
