"""The event stream: sessions simulated in numpy blocks of event time, emitted in time order.

Sessions start as a Poisson process of intensity ``rate / (events_per_view * views_per_session)``
per second of event time, thinned by a daily cycle in each user's local hour, so that the
average event-time intensity is ``rate`` events per second over a day. A session is a
geometric number of views with exponential gaps; each view may be followed by a click, an
add_cart and a purchase, each seconds to minutes after its predecessor.

A block covers ``block_events / rate`` seconds of event time (rounded to whole ms). Its
sessions may spill past the block's end; such events are held for the block they fall in,
so the output is sorted by ``(t_ms, counter)`` across blocks (``counter`` numbers events in
the order they were generated; a view is always numbered before its follow-ups).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

import numpy as np

from events.schema import EVENT_TYPE_INDEX
from producers.synthetic.behavior import CHOICES, Funnel, choose_items, draw_devices, probabilities, ratings
from producers.synthetic.config import ModelParams
from producers.synthetic.world import COUNTRY_P, UTC_OFFSET_H, World, sample_cdf

if TYPE_CHECKING:
    from producers.synthetic.serving import Serving

#: relative session intensity by local hour 0..23 (quiet at night, peak in the evening)
HOURLY_PROFILE: Final = np.array(
    [0.5, 0.3, 0.2, 0.15, 0.15, 0.2, 0.35, 0.55, 0.75, 0.85, 0.9, 0.95,
     1.0, 0.95, 0.9, 0.9, 0.95, 1.05, 1.2, 1.35, 1.45, 1.4, 1.1, 0.8]
)  # fmt: skip
GROUP: Final = 16  # blocks per group when filing events that land far ahead
VIEW, CLICK, CART, PURCHASE = (EVENT_TYPE_INDEX[t] for t in ("view", "click", "add_cart", "purchase"))
SLATE: Final = CHOICES.index("slate")


def hourly_intensity(amplitude: float) -> np.ndarray:
    """Intensity multiplier by local hour, mean 1 over a day; (24,).

    >>> float(hourly_intensity(0.0).max()), round(float(hourly_intensity(1.0).mean()), 9)
    (1.0, 1.0)
    """
    shape = HOURLY_PROFILE / HOURLY_PROFILE.mean()
    return 1.0 + amplitude * (shape - 1.0)


def local_hour(utc_s: np.ndarray | float, country: np.ndarray | slice) -> np.ndarray:
    """Local hour 0..23 (int64) at UTC epoch seconds ``utc_s`` in the countries ``country`` (indices or all).

    >>> local_hour(9 * 3600.0, slice(None)).tolist()  # 09:00 UTC in COUNTRIES order
    [4, 9, 10, 10, 18]
    """
    local_s = utc_s + 3600.0 * np.asarray(UTC_OFFSET_H)[country]
    return ((local_s % 86400.0) // 3600.0).astype(np.int64)


def span_for_events(events: int, rate: float, end_ms: int, amplitude: float = 1.0) -> float:
    """Seconds of event time ending at ``end_ms`` that hold about ``events`` events at ``rate``.

    The daily cycle makes a fixed span hold 0.55x the mean rate's events at 05:30 UTC and 1.3x
    at 19:00 UTC (the design's country shares, :data:`COUNTRY_P`, in their local hours), so a
    history sized in minutes changes size with the hour it ends at; sized by this function it
    does not. The expectation is walked back from ``end_ms`` in one-minute steps and the last
    step interpolated. A backfill over that span realises 80-95% of it (ending at 05:30 and
    19:00 UTC, 2026-12-02): sessions already in progress at its start are missing, and a
    world's own activity shares differ from the design's; callers that need the count give
    room and stop at it (the demo: ``--count`` over 1.3x the span).

    >>> round(span_for_events(60_000, 1000.0, 0, amplitude=0.0), 6)
    60.0
    >>> midnight_ms = 1796083200000  # 2026-12-01T00:00Z
    >>> night = span_for_events(1_200_000, 1000.0, midnight_ms + 5 * 3600_000 + 1800_000)  # 05:30 UTC
    >>> evening = span_for_events(1_200_000, 1000.0, midnight_ms + 19 * 3600_000)  # 19:00 UTC
    >>> round(night / 60), round(evening / 60)
    (35, 15)
    """
    if events <= 0 or rate <= 0:
        raise ValueError(f"span_for_events: events and rate must be > 0, got {events} and {rate}")
    intensity, shares = hourly_intensity(amplitude), np.asarray(COUNTRY_P)
    step_s, need, span = 60, events / rate, 0.0  # need: seconds at the mean intensity
    while True:
        t_s = end_ms // 1000 - span - step_s / 2  # the middle of the next minute back
        mean = float(shares @ intensity[local_hour(t_s, slice(None))])
        if mean * step_s >= need:
            return span + need / mean
        need, span = need - mean * step_s, span + step_s


@dataclass(frozen=True)
class EventBlock:
    """Generated events; every array has shape (n,)."""

    t_ms: np.ndarray  # int64 event time, epoch ms UTC
    etype: np.ndarray  # int8 index into EVENT_TYPES
    user: np.ndarray  # int64 user number
    item: np.ndarray  # int64 item number
    device: np.ndarray  # int8 index into DEVICES
    session: np.ndarray  # int64 session number
    counter: np.ndarray  # int64 event number (generation order; unique in a run)
    view: np.ndarray  # int64 counter of the view a follow-up comes from; -1 on views
    rating: np.ndarray  # int8 1..5 on purchases, 0 otherwise
    p_click: np.ndarray  # float64 true P(click | view) of the (originating) view
    p_cart: np.ndarray  # float64 true P(add_cart | click)
    p_purchase: np.ndarray  # float64 true P(purchase | add_cart)
    choice: np.ndarray  # int8 index into behavior.CHOICES
    clicked: np.ndarray  # bool: on a view, whether the simulated user clicked it
    arm: np.ndarray  # int8 experiment arm of a served session's events; -1 otherwise
    slate: np.ndarray  # int64 slate number of a served session's events; -1 otherwise
    position: np.ndarray  # int8 rank 1..k in the slate of the (originating) view; 0 otherwise

    def __len__(self) -> int:
        return len(self.t_ms)

    def take(self, index: np.ndarray | slice) -> EventBlock:
        """The events at ``index``, as a new block (hot: called per block part, so no fields())."""
        return EventBlock(*[a[index] for a in self.__dict__.values()])

    @staticmethod
    def concat(blocks: list[EventBlock]) -> EventBlock:
        """Blocks one after another."""
        columns = zip(*(b.__dict__.values() for b in blocks), strict=True)
        return EventBlock(*[np.concatenate(c) for c in columns])


def _file(shelf: dict[int, list[EventBlock]], key: np.ndarray, block: EventBlock) -> None:
    """Append the events of ``block`` to ``shelf[key]``, one piece per distinct key."""
    order = np.argsort(key, kind="stable")
    block, key = block.take(order), key[order]
    cuts = np.flatnonzero(np.diff(key)) + 1
    for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(key)], strict=True):
        if hi > lo:
            shelf.setdefault(int(key[lo]), []).append(block.take(slice(lo, hi)))


class SessionSimulator:
    """Generates the stream block by block; deterministic for a given ``rng`` and arguments."""

    def __init__(
        self, world: World, params: ModelParams, funnel: Funnel, rate: float, start_ms: int, rng: np.random.Generator
    ) -> None:
        self.world, self.params, self.funnel, self.rng = world, params, funnel, rng
        self.rate, self.start_ms = rate, start_ms
        self.session_rate = rate / (funnel.events_per_view * params.views_per_session)  # sessions per second
        self.intensity = hourly_intensity(params.diurnal_amplitude)
        self.next_counter = 0
        self.next_session = 0
        self.serving: Serving | None = None  # experiment mode: serves some sessions a slate (serving.py)

    def blocks(self, block_events: int) -> Iterator[EventBlock]:
        """Yield consecutive blocks of events in ``(t_ms, counter)`` order, forever.

        Block k holds the events with ``start + k * span <= t_ms < start + (k + 1) * span``.
        Follow-ups spill minutes ahead, thousands of blocks at high live rates, so generated
        events are filed at once under the block they belong to, in two levels to keep the
        number of pieces small: events due within the current group of :data:`GROUP` blocks
        go straight to their block, later ones to their group, which is split into blocks
        when it begins. Every event is moved a bounded number of times, however far ahead
        it lands (re-sorting a carried-over tail per block would be quadratic).
        """
        span_ms = max(1, round(block_events / self.rate * 1000.0))
        by_block: dict[int, list[EventBlock]] = {}
        by_group: dict[int, list[EventBlock]] = {}
        for k in itertools.count():
            group = k // GROUP
            if k % GROUP == 0 and group in by_group:
                later = EventBlock.concat(by_group.pop(group))
                _file(by_block, (later.t_ms - self.start_ms) // span_ms, later)
            new = self._sessions(k * span_ms / 1000.0, (k + 1) * span_ms / 1000.0)
            # float rounding must not date a session before its block
            new = replace(new, t_ms=np.maximum(new.t_ms, self.start_ms + k * span_ms))
            if self.serving is not None:  # later sessions' policies may learn from these events
                self.serving.observe(new)
            bucket = (new.t_ms - self.start_ms) // span_ms  # (n,) block index of each event
            near = bucket // GROUP == group
            _file(by_block, bucket[near], new.take(near))
            _file(by_group, bucket[~near] // GROUP, new.take(~near))
            parts = by_block.pop(k, [])
            out = EventBlock.concat(parts) if parts else new.take(slice(0, 0))
            yield out.take(np.lexsort((out.counter, out.t_ms)))

    def session_events(self, t0: float, t1: float) -> EventBlock:
        """Every event of the sessions that start in ``[t0, t1)`` seconds after start, in generation order
        (follow-ups may lie past ``t1``); :meth:`blocks` files them by time instead."""
        return self._sessions(t0, t1)

    def _session_starts(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Session start times (seconds after start) and users in ``[t0, t1)``, by thinning."""
        rng, peak = self.rng, float(self.intensity.max())
        n = int(rng.poisson(self.session_rate * (t1 - t0) * peak))
        t = t0 + rng.random(n) * (t1 - t0)
        user = sample_cdf(self.world.activity_cdf, rng.random(n))
        hour = local_hour(self.start_ms / 1000.0 + t, self.world.users.country[user])
        keep = rng.random(n) * peak < self.intensity[hour]
        return t[keep], user[keep]

    def _sessions(self, t0: float, t1: float) -> EventBlock:
        """Every event of the sessions that start in ``[t0, t1)`` seconds after start."""
        p, rng = self.params, self.rng
        t_start, s_user = self._session_starts(t0, t1)
        n_sessions = len(t_start)
        s_device = draw_devices(self.world, p, s_user, rng)
        n_views = rng.geometric(1.0 / p.views_per_session, n_sessions)
        served = None
        if self.serving is not None:  # served sessions view their slate instead of browsing
            served = self.serving.serve(self.start_ms + np.floor(t_start * 1000.0).astype(np.int64), s_user, s_device)
            if served is not None:
                n_views[served.session] = served.views
        sess = np.repeat(np.arange(n_sessions), n_views)  # (V,) session of each view
        first = np.cumsum(n_views) - n_views  # (S,) index of each session's first view
        gaps = rng.exponential(p.view_gap_s, len(sess))
        gaps[first] = 0.0
        walked = np.cumsum(gaps)
        t_view = t_start[sess] + walked - walked[first][sess]
        user, device = s_user[sess], s_device[sess]
        item, choice = choose_items(self.world, p, user, rng)
        arm = np.full(len(sess), -1, dtype=np.int8)
        slate = np.full(len(sess), -1, dtype=np.int64)
        position = np.zeros(len(sess), dtype=np.int8)
        if served is not None:
            view_rows = served.view_rows(first)
            item[view_rows], choice[view_rows], position[view_rows] = served.item, SLATE, served.position
            arm[view_rows] = np.repeat(served.arm, served.views)
            slate[view_rows] = np.repeat(served.slate, served.views)
        prob = probabilities(self.world, p, self.funnel, user, item, device)
        n = len(sess)
        clicked = rng.random(n) < prob.click
        carted = clicked & (rng.random(n) < prob.cart)
        bought = carted & (rng.random(n) < prob.purchase)
        t_click = t_view + 1.0 + rng.exponential(p.click_delay_s, n)
        t_cart = t_click + 1.0 + rng.exponential(p.cart_delay_s, n)
        t_purchase = t_cart + 1.0 + rng.exponential(p.purchase_delay_s, n)
        rating = np.zeros(n, dtype=np.int8)
        rating[bought] = ratings(p, choice[bought], prob.affinity[bought], rng)
        view_counter = self.next_counter + np.arange(n)
        parts = []  # (rows of the views, event type, times) per event type, in counter order
        for code, mask, t in ((VIEW, None, t_view), (CLICK, clicked, t_click), (CART, carted, t_cart), (PURCHASE, bought, t_purchase)):
            rows = np.arange(n) if mask is None else np.flatnonzero(mask)
            parts.append((rows, code, t[rows]))
        rows = np.concatenate([r for r, _, _ in parts])
        total = len(rows)
        etype = np.concatenate([np.full(len(r), e, dtype=np.int8) for r, e, _ in parts])
        is_view = etype == VIEW
        block = EventBlock(
            t_ms=self.start_ms + np.floor(np.concatenate([t for _, _, t in parts]) * 1000.0).astype(np.int64),
            etype=etype,
            user=user[rows],
            item=item[rows],
            device=device[rows].astype(np.int8),
            session=self.next_session + sess[rows],
            counter=self.next_counter + np.arange(total),
            view=np.where(is_view, -1, view_counter[rows]),
            rating=np.where(etype == PURCHASE, rating[rows], 0).astype(np.int8),
            p_click=prob.click[rows],
            p_cart=prob.cart[rows],
            p_purchase=prob.purchase[rows],
            choice=choice[rows],
            clicked=is_view & clicked[rows],
            arm=arm[rows],
            slate=slate[rows],
            position=position[rows],
        )
        self.next_counter += total
        self.next_session += n_sessions
        return block
