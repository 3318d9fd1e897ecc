"""The windowed statistics written the way Quix Streams' documentation teaches.

An ``Application`` (consumer group, ``auto_offset_reset="earliest"``, the defaults
otherwise: at-least-once, changelog topics for the window state, RocksDB in a state
directory), the input topic with JSON values, string keys (the user id) and a
``timestamp_extractor`` reading the event's ``ts``; then per user
``tumbling_window(1 min, grace 5 s).reduce(...).final()`` on the message key, and per item
``group_by("item_id")`` (an internal repartition topic) followed by the same window. Each
closed window goes ``to_topic`` as the JSON object of :func:`windows.window_value`.

Topic configs. Quix derives the configs of its internal topics (repartition, changelogs)
from the input topic's ``retention.ms`` as the broker reports it, and the embedded broker
reports no topic configs at all; so the input topic's broker config is given explicitly
(:data:`INPUT_TOPIC_CONFIGS`: unlimited retention, as a topic that is replayed needs).

Quix windows close only when later events of the same key arrive (``.final()``), so the
last window of every user and item is still open when the input ends: the comparison
reports those events apart from events lost in windows that were written.

Run it from its own virtual environment (Quix pins its own confluent-kafka; ``make
bench-peers`` creates ``.venv-peers``)::

    .venv-peers/bin/python -m benchmarks.peers.quix_windows --bootstrap HOST:PORT \\
        --topic IN --user-topic U --item-topic I --expect N

It stops once it has seen all ``N`` input records on both branches (the input itself and
the repartitioned item stream), or after ``--idle-timeout`` seconds without a message, and
prints ``peer: {"records": N, "seconds": S, ...}`` to stderr: the seconds run from the first
record processed to the end of ``Application.run`` (its last checkpoint and the producer's
flush included). This module imports only the standard library, :mod:`windows` and
quixstreams.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from typing import Any

from benchmarks.peers.windows import LATENESS_MS, WINDOW_MS, add_event, new_counts, window_value

#: the input topic's configs, given explicitly because the embedded broker reports none
INPUT_TOPIC_CONFIGS = {"retention.ms": "-1", "retention.bytes": "-1"}
#: consumer group timings that let the embedded broker finish a group join in ~3 s instead of ~23 s
CONSUMER_CONFIG = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


def start_counts(event: dict[str, Any]) -> dict[str, int]:
    """Quix ``reduce`` initializer: the window's counts after its first event."""
    return add_event(new_counts(), event)


def count_event(counts: dict[str, int], event: dict[str, Any]) -> dict[str, int]:
    """Quix ``reduce`` reducer: one more event into the window's counts."""
    return add_event(counts, event)


def closed_window(entity: str, window: dict[str, Any], key: str) -> dict[str, Any]:
    """A ``.final()`` window (``{"start", "end", "value"}``) of the key as the output record."""
    return window_value(entity, key, int(window["start"]), window["value"])


class Progress:
    """Records seen on each branch; stops the application once both have seen ``expect``."""

    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.seen = {"input": 0, "items": 0}
        self.first = 0.0
        self.done = 0.0
        self.stop: Any = None  # Application.stop, set once the application exists

    def tick(self, branch: str) -> None:
        if not self.first:
            self.first = time.perf_counter()
        self.seen[branch] += 1
        if not self.done and all(n >= self.expect for n in self.seen.values()):
            self.done = time.perf_counter()
            self.stop()


def build_app(bootstrap: str, topic: str, user_topic: str, item_topic: str, progress: Progress,
              state_dir: str) -> Any:
    """The Application with both window branches, ready to ``run``."""
    from quixstreams import Application
    from quixstreams.models import TopicConfig

    app = Application(broker_address=bootstrap, consumer_group=f"peer-quix-{uuid.uuid4().hex[:8]}",
                      auto_offset_reset="earliest", state_dir=state_dir, consumer_extra_config=CONSUMER_CONFIG,
                      loglevel="WARNING")
    progress.stop = app.stop
    source = app.topic(topic, value_deserializer="json", key_deserializer="str",
                       timestamp_extractor=lambda value, headers, ts, kind: value["ts"])
    reported = source.broker_config
    source.broker_config = TopicConfig(num_partitions=reported.num_partitions,
                                       replication_factor=reported.replication_factor,
                                       extra_config={**reported.extra_config, **INPUT_TOPIC_CONFIGS})
    users_out = app.topic(user_topic, key_serializer="str", value_serializer="json")
    items_out = app.topic(item_topic, key_serializer="str", value_serializer="json")
    length, grace = timedelta(milliseconds=WINDOW_MS), timedelta(milliseconds=LATENESS_MS)

    sdf = app.dataframe(source)
    sdf = sdf.update(lambda _: progress.tick("input"))
    users = sdf.tumbling_window(length, grace_ms=grace).reduce(count_event, start_counts).final()
    users = users.apply(lambda w, key, ts, headers: closed_window("user", w, key), metadata=True)
    users.to_topic(users_out)

    items = sdf.group_by("item_id")
    items = items.update(lambda _: progress.tick("items"))
    items = items.tumbling_window(length, grace_ms=grace).reduce(count_event, start_counts).final()
    items = items.apply(lambda w, key, ts, headers: closed_window("item", w, key), metadata=True)
    items.to_topic(items_out)
    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers.quix_windows", description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, HOST:PORT")
    p.add_argument("--topic", required=True, help="input topic (interactions)")
    p.add_argument("--user-topic", required=True, help="output topic of the per-user windows")
    p.add_argument("--item-topic", required=True, help="output topic of the per-item windows")
    p.add_argument("--expect", type=int, required=True, help="input records: stop once both branches saw them all")
    p.add_argument("--idle-timeout", type=float, default=20.0,
                   help="stop after this many seconds without a message (default: 20)")
    args = p.parse_args(argv)
    progress = Progress(args.expect)
    with tempfile.TemporaryDirectory(prefix="peer-quix-state-") as state_dir:
        app = build_app(args.bootstrap, args.topic, args.user_topic, args.item_topic, progress, state_dir)
        app.run(timeout=args.idle_timeout)
        ended = time.perf_counter()
    summary = {"records": progress.seen["input"], "items_seen": progress.seen["items"],
               "seconds": ended - progress.first if progress.first else 0.0,
               "seconds_to_last_record": progress.done - progress.first if progress.done else None}
    print(f"peer: {json.dumps(summary)}", file=sys.stderr, flush=True)
    if not progress.done:
        print(f"quix: stopped before both branches saw {args.expect:,} records: {progress.seen}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
