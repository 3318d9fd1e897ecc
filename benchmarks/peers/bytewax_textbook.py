"""The windowed statistics written the way Bytewax 0.21.1's documentation teaches.

Bytewax's own Kafka connectors (``bytewax.connectors.kafka.operators``: ``input`` with
``tail=False`` so the run ends at the end of the topic, ``output``), ``json.loads`` in an
``op.map``, then per entity ``op.key_on`` by the entity id and ``fold_window`` with an
``EventClock`` on the event's ``ts`` (5 s ``wait_for_system_duration``: the allowed
lateness) and a 1-minute ``TumblingWindower``; each window's ``(window id, counts)`` is
serialised with ``json.dumps`` to a ``KafkaSinkMessage`` keyed by the entity id. One
worker, the epoch interval of ``python -m bytewax.run`` (10 s), no recovery: the defaults.
This is the shape the guides and examples teach (``examples/simple_kafka_in_and_out.py``,
the windowing guide), not a tuned flow: the features flow owns its window logic instead
(features/README.md gives its rules).

``python -m benchmarks.peers.bytewax_textbook --bootstrap HOST:PORT --topic IN
--user-topic U --item-topic I`` runs it once over the whole topic and prints
``peer: {"records": N, "seconds": S}`` to stderr: records read and the seconds from the
first record parsed to the end of the run (process start-up and imports are not counted,
as in the features flow's own summary).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.operators import windowing as win

from benchmarks.peers.windows import ENTITIES, LATENESS_MS, WINDOW_MS, add_event, merge_counts, new_counts, window_value

ALIGN_TO = datetime(2024, 1, 1, tzinfo=UTC)  # a minute boundary: windows start on whole minutes, as the oracle's
LENGTH = timedelta(milliseconds=WINDOW_MS)


def event_time(event: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(event["ts"] / 1000, tz=UTC)


def windowed_counts(events: Stream[dict[str, Any]]) -> dict[str, Stream[tuple[str, dict[str, Any]]]]:
    """Per entity, a stream of ``(entity id, window JSON object)`` for every closed window."""
    clock = win.EventClock(event_time, wait_for_system_duration=timedelta(milliseconds=LATENESS_MS))
    windower = win.TumblingWindower(length=LENGTH, align_to=ALIGN_TO)
    out = {}
    for entity in ENTITIES:
        field = f"{entity}_id"
        keyed = op.key_on(f"key_{entity}", events, itemgetter(field))
        windows = win.fold_window(f"{entity}_window", keyed, clock, windower, new_counts, add_event, merge_counts)

        def as_value(item: tuple[str, tuple[int, dict[str, int]]], entity: str = entity) -> tuple[str, dict[str, Any]]:
            key, (window_id, counts) = item
            start = ALIGN_TO + window_id * LENGTH
            return key, window_value(entity, key, int(start.timestamp() * 1000), counts)

        out[entity] = op.map(f"{entity}_value", windows.down, as_value)
    return out


def build_flow(bootstrap: str, topic: str, out_topics: dict[str, str], seen: dict[str, float]) -> Dataflow:
    """Kafka in, windows out. ``seen`` gets ``records`` parsed and ``first``, the perf_counter of the first."""
    from bytewax.connectors.kafka import KafkaSinkMessage
    from bytewax.connectors.kafka import operators as kop

    flow = Dataflow("peer_bytewax_textbook")
    source = kop.input("kafka_in", flow, brokers=[bootstrap], topics=[topic], tail=False)
    op.raises("kafka_errors", source.errs)

    def parse(message: Any) -> dict[str, Any]:
        if not seen["records"]:
            seen["first"] = time.perf_counter()
        seen["records"] += 1
        return json.loads(message.value)

    events = op.map("parse", source.oks, parse)
    for entity, windows in windowed_counts(events).items():
        messages = op.map(f"{entity}_serialize", windows,
                          lambda kv: KafkaSinkMessage(kv[0].encode(), json.dumps(kv[1]).encode()))
        kop.output(f"{entity}_kafka_out", messages, brokers=[bootstrap], topic=out_topics[entity])
    return flow


def main(argv: list[str] | None = None) -> int:
    from bytewax.run import cli_main

    p = argparse.ArgumentParser(prog="python -m benchmarks.peers.bytewax_textbook",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, HOST:PORT")
    p.add_argument("--topic", required=True, help="input topic (interactions)")
    p.add_argument("--user-topic", required=True, help="output topic of the per-user windows")
    p.add_argument("--item-topic", required=True, help="output topic of the per-item windows")
    args = p.parse_args(argv)
    seen = {"records": 0.0, "first": 0.0}
    flow = build_flow(args.bootstrap, args.topic, {"user": args.user_topic, "item": args.item_topic}, seen)
    cli_main(flow, workers_per_process=1, epoch_interval=timedelta(seconds=10))
    seconds = time.perf_counter() - seen["first"] if seen["records"] else 0.0
    print(f"peer: {json.dumps({'records': int(seen['records']), 'seconds': seconds})}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
