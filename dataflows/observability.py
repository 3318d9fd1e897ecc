"""The features flow's own counters: Prometheus metrics and a periodic progress line.

With ``BYTEWAX_DATAFLOW_API_ENABLED=1`` Bytewax serves ``/metrics`` on port 3030
(``BYTEWAX_DATAFLOW_API_PORT``) from the default Prometheus registry, so these appear next
to Bytewax's own metrics:

=================================== ======================================================
``recstream_events_in_total``       input records read, by ``partition``
``recstream_events_used_total``     accepted events
``recstream_dead_letters_total``    refused records, by ``reason`` (``late`` included)
``recstream_windows_total``         closed windows emitted, by ``entity`` (user, item)
``recstream_vectors_total``         point-in-time vectors completed
``recstream_scores_total``          views scored
``recstream_slates_total``          slates written, by ``kind`` (all, cold_start, no_profile)
``recstream_entities``              entities in state, by ``kind`` (user, item)
``recstream_watermark_ms``          watermark by input ``partition`` (epoch ms)
``recstream_waiting_events``        events waiting for item windows to close
=================================== ======================================================

Counters are per process; with several processes, sum them.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from prometheus_client import Counter, Gauge

from features.item_stage import ItemShardState
from features.partition_stage import NEG_INF, POS_INF, PartitionState
from features.records import iso_utc

EVENTS_IN = Counter("recstream_events_in", "input records read", ["partition"])
EVENTS_USED = Counter("recstream_events_used", "accepted events")
DEAD_LETTERS = Counter("recstream_dead_letters", "refused input records", ["reason"])
WINDOWS = Counter("recstream_windows", "closed tumbling windows emitted", ["entity"])
VECTORS = Counter("recstream_vectors", "point-in-time vectors completed")
SCORES = Counter("recstream_scores", "views scored")
SLATES = Counter("recstream_slates", "slates written (cold_start, no_profile: of which)", ["kind"])
ENTITIES = Gauge("recstream_entities", "entities in state", ["kind"])
WATERMARK = Gauge("recstream_watermark_ms", "watermark by input partition (epoch ms)", ["partition"])
WAITING = Gauge("recstream_waiting_events", "events waiting for item windows to close")


class FlowMonitor:
    """Collects counters from the stage states of this process; logs a line every interval."""

    def __init__(self, interval_s: float = 10.0, stream: TextIO | None = None):
        self.interval_s = interval_s
        self.stream = stream if stream is not None else sys.stderr
        self.partitions: dict[int, PartitionState] = {}
        self.shards: dict[int, ItemShardState] = {}
        self.seen: dict[tuple[str, int, str], int] = {}
        self.scored = 0
        self.slates: dict[str, int] | None = None  # the slate ranker's counters, when the flow makes slates
        self.started = time.monotonic()
        self.first_input: float | None = None  # when the first record arrived
        self.last_log = self.started
        self.last_in = 0

    def _delta(self, stage: str, index: int, name: str, value: int) -> int:
        key = (stage, index, name)
        previous = self.seen.get(key, 0)
        self.seen[key] = value
        return value - previous

    def observe_partition(self, state: PartitionState) -> None:
        if self.first_input is None and state.counters["in"]:
            self.first_input = time.monotonic()
        self.partitions[state.partition] = state
        c = state.counters
        p = str(state.partition)
        EVENTS_IN.labels(partition=p).inc(self._delta("p", state.partition, "in", c["in"]))
        EVENTS_USED.inc(self._delta("p", state.partition, "accepted", c["accepted"]))
        WINDOWS.labels(entity="user").inc(self._delta("p", state.partition, "windows", c["windows"]))
        for name, value in c.items():
            if name.startswith("dead."):
                DEAD_LETTERS.labels(reason=name[5:]).inc(self._delta("p", state.partition, name, value))
        if NEG_INF < state.watermark < POS_INF:
            WATERMARK.labels(partition=p).set(state.watermark)
        self.maybe_log()

    def observe_shard(self, state: ItemShardState) -> None:
        self.shards[state.shard] = state
        c = state.counters
        VECTORS.inc(self._delta("s", state.shard, "vectors", c["vectors"]))
        WINDOWS.labels(entity="item").inc(self._delta("s", state.shard, "windows", c["windows"]))

    def observe_scores(self, n: int) -> None:
        self.scored += n
        SCORES.inc(n)

    def observe_slates(self, counters: dict[str, int]) -> None:
        """The ranker's running counters (``slates``, ``cold_start``, ``no_profile``)."""
        before = self.slates or {}
        for name, value in counters.items():
            SLATES.labels(kind="all" if name == "slates" else name).inc(value - before.get(name, 0))
        self.slates = dict(counters)

    def _slates_part(self) -> str:
        s = self.slates
        return "" if s is None else f", {s['slates']:,} slates ({s['cold_start']:,} cold start)"

    def totals(self) -> dict[str, int]:
        t: dict[str, int] = {"in": 0, "used": 0, "dead": 0, "user_windows": 0, "item_windows": 0, "vectors": 0}
        dead: dict[str, int] = {}
        for s in self.partitions.values():
            t["in"] += s.counters["in"]
            t["used"] += s.counters["accepted"]
            t["user_windows"] += s.counters["windows"]
            for name, value in s.counters.items():
                if name.startswith("dead."):
                    dead[name[5:]] = dead.get(name[5:], 0) + value
        for shard in self.shards.values():
            t["item_windows"] += shard.counters["windows"]
            t["vectors"] += shard.counters["vectors"]
        t["dead"] = sum(dead.values())
        t["scores"] = self.scored
        t.update({f"dead.{k}": v for k, v in dead.items()})
        return t

    def line(self) -> str:
        now = time.monotonic()
        t = self.totals()
        rate = (t["in"] - self.last_in) / max(now - self.last_log, 1e-9)
        users = sum(len(s) for s in self.partitions.values())
        items = sum(len(s) for s in self.shards.values())
        waiting = sum(sum(map(len, s.pending.values())) for s in self.shards.values())
        ENTITIES.labels(kind="user").set(users)
        ENTITIES.labels(kind="item").set(items)
        WAITING.set(waiting)
        reasons = ", ".join(f"{k[5:]} {v:,}" for k, v in sorted(t.items()) if k.startswith("dead."))
        marks = [s.watermark for s in self.partitions.values() if NEG_INF < s.watermark < POS_INF]
        watermark = iso_utc(min(marks)) if marks else "-"
        return (
            f"features: {t['in']:,} in ({rate:,.0f}/s), {t['used']:,} used, {t['dead']:,} dead letters"
            f"{f' ({reasons})' if reasons else ''}, windows {t['user_windows']:,} user / {t['item_windows']:,} item, "
            f"{t['vectors']:,} vectors, {t['scores']:,} scores{self._slates_part()}, "
            f"state {users:,} users / {items:,} items, "
            f"{waiting:,} waiting, watermark {watermark}"
        )

    def summary(self) -> str:
        """One line for the end of a run: totals and the rate since the first record."""
        t = self.totals()
        busy = time.monotonic() - (self.first_input or self.started)
        return (
            f"features: done: {t['in']:,} records in {busy:.2f} s since the first one "
            f"({t['in'] / max(busy, 1e-9):,.0f}/s): {t['used']:,} used, {t['dead']:,} dead letters, "
            f"{t['vectors']:,} vectors, {t['scores']:,} scores{self._slates_part()}"
        )

    def report(self) -> dict[str, object]:
        """The totals for a file at the end of a run: counters (``dead.<reason>`` per reason), seconds, rate."""
        t = self.totals()
        busy = time.monotonic() - (self.first_input or self.started)
        return {"counters": t, "seconds": round(busy, 3), "records_per_s": round(t["in"] / max(busy, 1e-9), 1),
                "finished_at": iso_utc(int(time.time() * 1000)),
                **({"slates": dict(self.slates)} if self.slates is not None else {})}

    def maybe_log(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_log >= self.interval_s:
            print(self.line(), file=self.stream, flush=True)
            self.last_log = now
            self.last_in = self.totals()["in"]
