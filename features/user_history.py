"""A user's recent items, purchases and sessions, as of each event and before it is counted.

What a retriever reads (the recent items), what a slate must leave out (the items the user
bought lately) and when a slate is asked for (a session's first event).

For an event of user u at time t, the recent items are the distinct ``item_id`` of u's
earlier-arrived accepted views and clicks with event time <= t, most recent first, at most
``n``: ordered by event time, then by arrival (the later arrival first), and each item at its
most recent such occurrence. The same arrival-order semantics as the user counts
(features/README.md): an event never sees itself or anything that arrives after it, and an
event that arrives out of order sees the earlier arrivals with an event time up to its own.

Bounded state: no later event of a user can be older than ``newest - lateness`` (the
partition refuses it), so among the entries at or before that time only the latest
occurrences of the ``n`` most recent items can still be seen; older ones are dropped. A user
keeps at most ``n`` entries plus those of the last ``lateness`` milliseconds.

>>> h = UserHistory(n=3, lateness_ms=0)
>>> for t, item in [(10, "i1"), (20, "i2"), (30, "i1"), (40, "i3")]:
...     _ = h.record("u", t, item)
>>> h.recent("u", 35), h.recent("u", 40), h.recent("x", 40)
(('i1', 'i2'), ('i3', 'i1', 'i2'), ())

Purchases are kept for ``purchase_window_ms`` (24 h by default): :meth:`UserHistory.purchased`
lists the distinct items of the user's earlier-arrived purchases with event time in
``(t - window, t]``. A session starts with the first arriving event that carries a
``session_id`` the user has not had in the last 2 hours (:meth:`UserHistory.new_session`).

>>> _ = h.record_purchase("u", 50, "i9"); h.purchased("u", 60), h.purchased("u", 50 + 86_400_000)
(('i9',), ())
>>> h.new_session("u", "s1", 1), h.new_session("u", "s1", 2), h.new_session("u", "s2", 3), h.new_session("u", "s1", 4)
(True, False, True, False)
"""

from __future__ import annotations

from bisect import insort
from typing import Any


class UserHistory:
    """Per user: ``(ts, arrival, item_id)`` of recent views and clicks, sorted (module docstring)."""

    SESSION_MEMORY_MS = 7_200_000  # a session id is remembered until the user's events are this far past it

    def __init__(self, n: int, lateness_ms: int, purchase_window_ms: int = 86_400_000):
        if n < 1:
            msg = f"UserHistory.n must be >= 1, got {n}"
            raise ValueError(msg)
        self.n = n
        self.lateness_ms = lateness_ms
        self.purchase_window_ms = purchase_window_ms
        self.users: dict[str, list[tuple[int, int, str]]] = {}
        self.purchases: dict[str, list[tuple[int, int, str]]] = {}  # per user, sorted like ``users``
        self.sessions: dict[str, dict[str, int]] = {}  # per user: session id -> its newest event time
        self.session_room: dict[str, int] = {}  # per user: sessions kept before the next scan for old ones
        self.arrivals = 0  # arrival counter (orders events of the same millisecond)

    def __reduce__(self) -> tuple[type[UserHistory], tuple[int, int, int], dict[str, Any]]:
        return UserHistory, (self.n, self.lateness_ms, self.purchase_window_ms), {
            "users": self.users, "purchases": self.purchases, "sessions": self.sessions, "arrivals": self.arrivals,
            "session_room": self.session_room}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.users, self.purchases, self.sessions = state["users"], state["purchases"], state["sessions"]
        self.arrivals = state["arrivals"]
        self.session_room = state.get("session_room", {})  # absent in snapshots of earlier builds

    def recent(self, user_id: str, t: int) -> tuple[str, ...]:
        """The user's recent items as of an event at ``t`` (before recording it)."""
        entries = self.users.get(user_id)
        if not entries:
            return ()
        out: list[str] = []
        for ts, _, item in reversed(entries):
            if ts <= t and item not in out:
                out.append(item)
                if len(out) == self.n:
                    break
        return tuple(out)

    def record(self, user_id: str, t: int, item_id: str) -> int:
        """Remember a view or click (after it was counted); returns the user's entries kept."""
        self.arrivals += 1
        entries = self.users.get(user_id)
        if entries is None:
            entries = self.users[user_id] = []
        insort(entries, (t, self.arrivals, item_id))
        if len(entries) > 2 * self.n:
            self._trim(entries)
        return len(entries)

    def _trim(self, entries: list[tuple[int, int, str]]) -> None:
        """Drop what no later event can see (module docstring); amortised O(1) per record."""
        floor = entries[-1][0] - self.lateness_ms  # no later event of this user is older
        settled = 0  # entries at or before the floor are visible to every later event
        while settled < len(entries) and entries[settled][0] <= floor:
            settled += 1
        keep: list[tuple[int, int, str]] = []
        seen: set[str] = set()
        for entry in reversed(entries[:settled]):
            if entry[2] not in seen:
                seen.add(entry[2])
                keep.append(entry)
                if len(keep) == self.n:
                    break
        keep.reverse()
        entries[:] = keep + entries[settled:]

    def record_purchase(self, user_id: str, t: int, item_id: str) -> int:
        """Remember a purchase (after it was counted); returns the user's purchases kept."""
        self.arrivals += 1
        entries = self.purchases.get(user_id)
        if entries is None:
            entries = self.purchases[user_id] = []
        insort(entries, (t, self.arrivals, item_id))
        # no later event of the user is older than newest - lateness: purchases before its window can go
        floor = entries[-1][0] - self.lateness_ms - self.purchase_window_ms
        drop = 0
        while drop < len(entries) and entries[drop][0] <= floor:
            drop += 1
        del entries[:drop]
        return len(entries)

    def purchased(self, user_id: str, t: int) -> tuple[str, ...]:
        """Distinct items the user bought with event time in ``(t - window, t]``, most recent first."""
        out: list[str] = []
        seen: set[str] = set()
        since = t - self.purchase_window_ms
        for ts, _, item in reversed(self.purchases.get(user_id, ())):  # newest first
            if ts <= since:
                break
            if ts <= t and item not in seen:
                seen.add(item)
                out.append(item)
        return tuple(out)

    def new_session(self, user_id: str, session_id: str, t: int) -> bool:
        """Whether an event at ``t`` of ``session_id`` starts a session of the user (and remember it).

        A user may have several sessions at once; each id is remembered until the user's events
        are ``SESSION_MEMORY_MS`` past its newest event, far longer than any pause within a session.
        """
        seen = self.sessions.get(user_id)
        if seen is None:
            self.sessions[user_id] = {session_id: t}
            return True
        newest = seen.get(session_id)
        if newest is not None:
            if t > newest:
                seen[session_id] = t
            return False
        seen[session_id] = t
        if len(seen) > self.session_room.get(user_id, 8):  # amortised: forget the sessions long past
            limit = max(seen.values()) - self.SESSION_MEMORY_MS
            for old in [s for s, last in seen.items() if last < limit]:
                del seen[old]
            # a user with many recent sessions is scanned again only when they have doubled
            self.session_room[user_id] = max(8, 2 * len(seen))
        return True

    def forget(self, user_ids: list[str]) -> None:
        """Drop evicted users (they come back with an empty history, like their counts)."""
        for user_id in user_ids:
            self.users.pop(user_id, None)
            self.purchases.pop(user_id, None)
            self.sessions.pop(user_id, None)
            self.session_room.pop(user_id, None)
