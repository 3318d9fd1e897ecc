"""features/user_history.py against an independent computation, with a small bound so trimming happens."""

from __future__ import annotations

import pickle
import random

import pytest

from features.user_history import UserHistory


def brute_force(events, i, n):
    """Recent items of event i: earlier arrivals of the user with ts <= its ts, newest (ts, arrival) first."""
    user, t, _ = events[i]
    earlier = sorted(((ts, j, item) for j, (u, ts, item) in enumerate(events[:i]) if u == user and ts <= t),
                     reverse=True)
    out: list[str] = []
    for _, _, item in earlier:
        if item not in out:
            out.append(item)
    return tuple(out[:n])


@pytest.mark.parametrize("seed", range(20))
def test_recent_items_match_a_brute_force_computation(seed):
    rng = random.Random(seed)
    lateness, n = 5_000, rng.choice([1, 2, 3, 5])
    events, newest = [], {}
    for _ in range(600):
        user = rng.choice(["u1", "u2", "u3"])
        top = newest.get(user, 0)
        t = top + rng.choice([0, 10, 700, 3_000, 20_000]) if rng.random() > 0.2 else max(0, top - rng.randrange(lateness))
        newest[user] = max(top, t)
        events.append((user, t, f"i{rng.randrange(12)}"))
    history = UserHistory(n, lateness)
    for i, (user, t, item) in enumerate(events):
        assert history.recent(user, t) == brute_force(events, i, n), i
        kept = history.record(user, t, item)
        assert kept <= 2 * n + 40  # bounded: n entries plus those within the lateness
        if i == 300:
            history = pickle.loads(pickle.dumps(history))  # a snapshot resumes identically


def test_forgotten_users_start_over_and_a_bad_bound_is_named():
    h = UserHistory(2, 0)
    h.record("u", 1, "i1")
    h.forget(["u", "never-seen"])
    assert h.recent("u", 5) == ()
    with pytest.raises(ValueError, match=r"UserHistory\.n must be >= 1, got 0"):
        UserHistory(0, 0)
