"""The ``pipeline`` policy: the slates the features flow publishes on the ``recommendations`` topic.

The closed loop: the producer's events go to the flow, whose slate stage (``slates/``) answers
a request at each session's first event with a slate for the user (Two-Tower candidates
ranked by the DLRM on the flow's point-in-time counts), keyed by ``user_id``. A served session
must show its slate *before* its first view, so a session of the ``pipeline`` arm shows the
newest slate the producer has received for the user, made at an earlier session's start (or
by an explicit request); a user with none yet, or only one older than ``max_age_s``, or newer
than the session by more than the clock tolerance, gets the ``fallback`` policy's slate
(popularity), and the policy counts both (for every served session, whatever its arm: every
arm's slate is made for every session, the others' being its potential outcomes). The producer
does not wait for the flow: a session whose slate is not there yet gets popularity's, counted.
For each row of its last :meth:`PipelinePolicy.slates` call the policy keeps the
``request_id`` of the flow's slate it showed, or None for the fallback (``last_origin``): the
producer writes it into the session's truth record (``pipeline_request_id``) and counts the
sessions of the arm that saw a pipeline slate.

**Record format** read (the slate stage's; fields beyond these are ignored)::

    {"request_id": "r1", "user_id": "u17", "ts": 1767614400000,
     "slate": [{"item_id": "i42", "rank": 1, "score": 0.61}, {"item_id": "i7", "rank": 2, "score": 0.58}]}

``ts`` is when the slate was asked for (epoch ms), ``rank`` orders the slate (1 = top), ``score``
is optional. A record that is not such an object, or names an item outside the catalog, is
skipped and counted in ``refused`` (the producer reports the counts; the first reason is kept).
The topic is read from its beginning when the policy starts, then polled without blocking
before every batch of sessions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from experiments.policies import Context, Observed, Policy

TS_TOLERANCE_MS = 60_000  # a slate up to this much newer than the session still counts (live clocks differ)


def parse_slate(raw: bytes | None, n_items: int) -> tuple[str, int, list[int], str] | str:
    """``(user_id, ts, item numbers by rank, request_id or "")``, or the reason the record is refused.

    >>> parse_slate(b'{"user_id":"u1","ts":5,"slate":[{"item_id":"i3","rank":2},{"item_id":"i1","rank":1}]}', 10)
    ('u1', 5, [1, 3], '')
    >>> parse_slate(b'{"user_id":"u1","ts":5,"slate":[{"item_id":"i99","rank":1}]}', 10)
    "item 'i99' is not in the catalog"
    """
    try:
        r: Any = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as e:
        return f"not JSON ({e})"
    if type(r) is not dict or type(r.get("user_id")) is not str or type(r.get("ts")) is not int:
        return "not an object with user_id (string) and ts (integer)"
    slate = r.get("slate")
    if type(slate) is not list or not slate:
        return "slate must be a non-empty list"
    ranked = []
    for entry in slate:
        if type(entry) is not dict or type(entry.get("item_id")) is not str or type(entry.get("rank")) is not int:
            return "each slate entry needs item_id (string) and rank (integer)"
        item = entry["item_id"]
        number = int(item[1:]) if item[:1] == "i" and item[1:].isdigit() else -1
        if not 0 <= number < n_items:
            return f"item {item!r} is not in the catalog"
        ranked.append((entry["rank"], number))
    ranked.sort()
    request_id = r.get("request_id")
    return r["user_id"], r["ts"], [n for _, n in ranked], request_id if type(request_id) is str else ""


class PipelinePolicy:
    """Newest slate received for the user from the recommendations topic, else ``fallback``'s."""

    name = "pipeline"

    def __init__(self, bootstrap: str, topic: str, fallback: Policy, n_items: int, max_age_s: float = 3600.0) -> None:
        from confluent_kafka import TopicPartition

        from broker.admin import partition_count
        from broker.console import _consumer, iter_topic

        self.topic, self.fallback, self.n_items = topic, fallback, n_items
        self.max_age_ms = round(max_age_s * 1000)
        self.latest: dict[int, tuple[int, list[int], str]] = {}  # user number -> (ts, items by rank, request_id)
        self.last_origin: list[str | None] = []  # per row of the last slates(): the flow slate's request_id, or None
        self.counters = {"received": 0, "refused": 0, "from_pipeline": 0, "fallback": 0}
        self.first_refusal = ""
        ends: dict[int, int] = {}
        for record in iter_topic(bootstrap, topic, from_beginning=True, to_end=True):
            self._take(record.value)
            ends[record.partition] = record.offset + 1
        parts = range(partition_count(bootstrap, topic))
        self.consumer = _consumer(bootstrap, eof=False)
        self.consumer.assign([TopicPartition(topic, p, ends.get(p, 0)) for p in parts])

    def _take(self, raw: bytes | None) -> None:
        parsed = parse_slate(raw, self.n_items)
        if isinstance(parsed, str):
            self.counters["refused"] += 1
            self.first_refusal = self.first_refusal or parsed
            return
        user_id, ts, items, request_id = parsed
        if not (user_id[:1] == "u" and user_id[1:].isdigit()):
            self.counters["refused"] += 1
            self.first_refusal = self.first_refusal or f"user {user_id!r} is not one of the generator's"
            return
        self.counters["received"] += 1
        user = int(user_id[1:])
        if user not in self.latest or self.latest[user][0] <= ts:
            self.latest[user] = (ts, items, request_id)

    def poll(self) -> None:
        """Take every slate that has arrived, without waiting."""
        while True:
            messages = self.consumer.consume(1000, 0)
            if not messages:
                return
            for m in messages:
                if m.error() is None:
                    self._take(m.value())

    def observe(self, events: Observed) -> None:
        self.fallback.observe(events)

    def slates(self, users: np.ndarray, context: Context, k: int, rng: np.random.Generator | None) -> np.ndarray:
        self.poll()
        out = self.fallback.slates(users, context, k, rng).copy()
        self.last_origin = [None] * len(users)
        for row, (u, t) in enumerate(zip(users.tolist(), context.ts_ms.tolist(), strict=True)):
            got = self.latest.get(u)
            if got is None or not t - self.max_age_ms <= got[0] <= t + TS_TOLERANCE_MS:
                self.counters["fallback"] += 1
                continue
            self.last_origin[row] = got[2]
            items = got[1][:k]
            rest = [i for i in out[row].tolist() if i not in set(items)]  # a short slate is filled by the fallback
            out[row] = items + rest[: k - len(items)]
            self.counters["from_pipeline"] += 1
        return out

    def close(self) -> None:
        self.consumer.close()
