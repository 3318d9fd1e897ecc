"""``python -m reporting.slates``: the recommendations topic summed up into ``reports/slates.json``.

Examples::

    python -m reporting.slates                                  # topic recommendations -> reports/slates.json
    python -m reporting.slates --input data/slates.jsonl --out reports/slates_offline.json

Reads every slate record (``slates/ranker.py``: ``user_id``, ``ts``, ``cold_start``,
``slate`` = ranked ``{item_id, rank, retrieval_score, score}``) from the topic (``kafka``:
``TOPIC_RECOMMENDATIONS``, or ``topic:NAME``, with ``assign()`` to the end it has when reading
starts) or a JSONL file, and writes: slates, users, cold-start slates, slates by what asked for
them (``source``), distinct items and
the mean slate size, the most recommended items, and the newest few slates as examples.
Records that are not slates are counted as refused. Memory: a count per user and per item.
"""

from __future__ import annotations

import heapq
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from broker.admin import BrokerUnreachable
from common.config_cli import config_parser, option, require_field, run_cli


@dataclass(frozen=True)
class SlatesConfig:
    """What to read and where the summary goes; CLI flags map 1:1 to fields."""

    input: str = option("kafka", "'kafka' (the recommendations topic), topic:NAME, or a JSONL file of slate records")
    out: str = option("reports/slates.json", "the summary JSON (python -m reporting shows reports/slates*.json)")
    examples: int = option(5, "newest slates kept as examples")
    top: int = option(10, "most recommended items listed")

    def __post_init__(self) -> None:
        require_field(self.examples >= 0, "SlatesConfig", "examples", ">= 0", self.examples)
        require_field(self.top >= 0, "SlatesConfig", "top", ">= 0", self.top)


def _values(spec: str) -> tuple[str, Iterator[bytes]]:
    if spec == "kafka" or spec.startswith("topic:"):
        from broker.config import Topics
        from broker.console import iter_topic
        from broker.embedded import resolve_bootstrap

        topic = Topics.from_env().recommendations if spec == "kafka" else spec.removeprefix("topic:")
        bootstrap = resolve_bootstrap(autostart=False)
        return topic, (r.value or b"" for r in iter_topic(bootstrap, topic, from_beginning=True, to_end=True))
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"--input {spec!r}: no such file (or 'kafka', 'topic:NAME')")
    return str(path), (line for line in path.open("rb") if line.strip())


def summarize(values: Iterator[bytes], examples: int = 5, top: int = 10) -> dict[str, Any]:
    """The summary of slate records (``bytes`` each)."""
    users: Counter[str] = Counter()
    items: Counter[str] = Counter()
    sources: Counter[str] = Counter()  # what asked for the slate: a session's start or a request
    slates = cold = slots = refused = 0
    newest: list[tuple[int, int, dict[str, Any]]] = []  # heap of (ts, n, record)
    for n, raw in enumerate(values):
        try:
            r = orjson.loads(raw)
            user, ts, slate = r["user_id"], int(r["ts"]), [s["item_id"] for s in r["slate"]]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            refused += 1
            continue
        slates += 1
        users[user] += 1
        cold += bool(r.get("cold_start"))
        sources[str(r.get("source", "-"))] += 1
        slots += len(slate)
        items.update(slate)
        entry = (ts, n, {"user_id": user, "ts": ts, "cold_start": bool(r.get("cold_start")),
                         "slate": [{"item_id": s["item_id"], "rank": s.get("rank"), "score": s.get("score")}
                                   for s in r["slate"]]})
        if len(newest) < examples:
            heapq.heappush(newest, entry)
        elif examples:
            heapq.heappushpop(newest, entry)
    return {
        "slates": slates, "users": len(users), "cold_start": cold, "refused": refused, "sources": dict(sources),
        "distinct_items": len(items), "mean_slate_size": round(slots / slates, 3) if slates else None,
        "top_items": [{"item_id": i, "slates": c} for i, c in items.most_common(top)],
        "examples": [e for _, _, e in sorted(newest, reverse=True)],
    }


def run(cfg: SlatesConfig) -> dict[str, Any]:
    where, values = _values(cfg.input)
    summary = {"topic": where} | summarize(values, cfg.examples, cfg.top)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    print(f"slates: {summary['slates']:,} slates for {summary['users']:,} users ({summary['cold_start']:,} cold start, "
          f"{summary['refused']:,} refused records) from {where}; wrote {out}", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(SlatesConfig, "reporting.slates", "Sum up the recommendations topic for the run report.")
    return run_cli(parser, argv, SlatesConfig, run, (BrokerUnreachable, LookupError, OSError, RuntimeError))


if __name__ == "__main__":
    sys.exit(main())
