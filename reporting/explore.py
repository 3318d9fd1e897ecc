"""``python -m reporting.explore``: the shape of a clickstream, as PNGs and one JSON summary.

Examples::

    python -m reporting.explore --input data/history.jsonl --generator-seed 7
    python -m reporting.explore --input kafka --run-tag 1a2b3c4d --generator-seed 7 --out reports/explore/generated
    python -m reporting.explore --input ../shared/data/otto_sample/train.jsonl      # OTTO, detected by its lines
    python -m producers.synthetic --backfill --sink stdout --count 10000000 | python -m reporting.explore --input -

Inputs (``reporting/sources.py``): the producer's JSONL or CSV, JSONL on stdin, the
interactions topic (``kafka`` or ``topic:NAME``, read with ``assign()`` to the end it has
when reading starts), or OTTO's session file (``reporting/otto.py``: the adapter and what
OTTO lacks). Memory stays bounded: counts per user and per item, open sessions, fixed
histograms; nothing per event (``reporting/stats.py``), so 10M events fit.

Outputs in ``--out`` (default ``reports/explore/<name>``: ``otto``, the topic, or the file's
stem): ``summary.json`` with every number, and the PNGs of ``reporting/plots.py`` drawn from
those numbers: event types, interactions per user, the items' long tail, events per user by
rank with the fitted power law and the top 20% share, category x latent segment (generated
data with ``--generator-seed``), activity by local hour, price by category, the funnel,
session lengths. What an input cannot show (OTTO has no views, prices or countries) is
listed under ``skipped`` with the reason.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from broker.admin import BrokerUnreachable
from common.config_cli import config_parser, option, require_field, run_cli
from reporting.sources import FORMATS, Format, Input, SourceError, chunks, resolve_input
from reporting.stats import ExploreStats

Log = Callable[[str], None]
DEFAULT_ROOT = Path("reports/explore")


@dataclass(frozen=True)
class ExploreConfig:
    """An exploration; CLI flags map 1:1 to fields."""

    input: str = option("kafka", "a JSONL or CSV file of interactions, an OTTO JSONL file, '-' (JSONL on stdin), "
                        "'kafka' (the interactions topic) or topic:NAME")
    format: Format = option("auto", "input format; auto: .csv is CSV, a file of {session, events} lines is OTTO, "
                            "else JSONL events")
    out: str | None = option(None, f"output folder (unset: {DEFAULT_ROOT}/<name>, name = otto, the topic, or the "
                             "file's stem)")
    max_events: int | None = option(None, "stop after this many events (unset: read the whole input)")
    generator_seed: int | None = option(None, "the producer's --seed: rebuilds its world (default parameters) for "
                                        "the users' latent segments (the category x segment heatmap)")
    run_tag: str | None = option(None, "count only the events of this producer run (event ids TAG-n; its --report "
                                 "names the run_tag); others are skipped")
    progress_interval: float = option(5.0, "seconds between progress lines")

    def __post_init__(self) -> None:
        c = "ExploreConfig"
        require_field(self.format in FORMATS, c, "format", f"one of {', '.join(FORMATS)}", self.format)
        require_field(self.max_events is None or self.max_events >= 1, c, "max_events", ">= 1", self.max_events)
        require_field(self.progress_interval > 0, c, "progress_interval", "> 0", self.progress_interval)
        require_field(self.run_tag is None or bool(self.run_tag), c, "run_tag", "a non-empty tag", self.run_tag)


def _world(cfg: ExploreConfig, source: Input) -> tuple[Any, str | None]:
    """The generator's world for the latent segments, or None and why not."""
    if cfg.generator_seed is None:
        return None, None
    if source.format == "otto":
        return None, "OTTO users have no latent segments (--generator-seed applies to generated data)"
    from producers.synthetic.config import ModelParams
    from producers.synthetic.prepare import world_and_funnel

    world, _ = world_and_funnel(cfg.generator_seed, ModelParams())
    return world, None


def explore(cfg: ExploreConfig, log: Log = print) -> dict[str, Any]:
    """Read the input, write ``summary.json`` and the PNGs, return the summary."""
    started = time.monotonic()
    source = resolve_input(cfg.input, cfg.format)
    out = Path(cfg.out) if cfg.out is not None else DEFAULT_ROOT / source.name
    world, world_note = _world(cfg, source)
    stats = ExploreStats(world.users.segment.tolist() if world is not None else None)
    where = source.location if source.kind != "topic" else f"topic {source.location}"
    log(f"explore: reading {where} ({source.format}){'' if cfg.max_events is None else f', at most {cfg.max_events:,} events'}")
    last_line, last_events = time.monotonic(), 0
    stream = chunks(source, cfg.run_tag if source.format != "otto" else None)
    try:
        for chunk in stream:
            rows = chunk.rows
            if cfg.max_events is not None and stats.events + len(rows) >= cfg.max_events:
                rows = rows[: cfg.max_events - stats.events]
            stats.add(rows)
            stats.refuse(chunk.refused)
            stats.skipped += chunk.skipped
            now = time.monotonic()
            if now - last_line >= cfg.progress_interval:
                rate = (stats.events - last_events) / (now - last_line)
                log(f"explore: {stats.progress()} ({rate:,.0f} events/s)")
                last_line, last_events = now, stats.events
            if cfg.max_events is not None and stats.events >= cfg.max_events:
                break
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    stats.finish()
    summary = stats.summary(world, world_note)
    summary["source"] = {
        "name": source.name, "input": cfg.input, "kind": source.kind, "format": source.format,
        "data": "otto" if source.format == "otto" else "events",
    }
    if source.format == "otto":
        from reporting.otto import ATTRIBUTION, MISSING_FIELDS, VISIT_GAP_MS

        summary["source"] |= {"attribution": ATTRIBUTION, "missing_fields": list(MISSING_FIELDS),
                              "sessions": f"visits: a visitor's events split at {VISIT_GAP_MS // 60_000} minutes "
                                          "without one"}
    if world is not None:
        summary["generator"] = {"seed": cfg.generator_seed, "user_exponent": round(world.user_exponent, 4),
                                "item_exponent": round(world.item_exponent, 4), "users": len(world.users.age),
                                "items": len(world.items.price)}
    summary["config"] = asdict(cfg)
    summary["seconds"] = round(time.monotonic() - started, 3)
    summary["written_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out.mkdir(parents=True, exist_ok=True)
    from reporting.plots import draw_all

    summary["plots"] = draw_all(summary, out, source.name)
    (out / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    log(f"explore: {stats.progress()} in {summary['seconds']:.1f} s")
    log(headline(summary))
    for kind, why in summary["skipped"].items():
        log(f"explore: no {kind.replace('_', ' ')}: {why}")
    log(f"explore: wrote {out / 'summary.json'} and {len(summary['plots'])} PNGs")
    return summary


def headline(s: dict[str, Any]) -> str:
    """The summary's key figures in one line."""
    if not s["events"]:
        return "explore: no events"
    mix = ", ".join(f"{t} {100 * v:.1f}%" for t, v in s["event_types"]["shares"].items() if v)
    rank, pop = s["user_rank"], s["item_popularity"]
    fit = "" if rank["fit"] is None else f", events ~ rank^-{rank['fit']['exponent']:.2f}"
    return (f"explore: {s['events']:,} events of {s['users']:,} users on {s['items']:,} items ({mix}); "
            f"top 20% of users: {100 * rank['top_share']:.1f}% of events{fit}; "
            f"top 10% of items: {100 * pop['top_share_events']:.1f}% of events")


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(ExploreConfig, "reporting.explore",
                           "Plots and a JSON summary of a clickstream: ours (file, stdin, topic) or OTTO's.")
    errors = (SourceError, BrokerUnreachable, LookupError, OSError, RuntimeError)
    return run_cli(parser, argv, ExploreConfig, lambda cfg: explore(cfg, log=lambda line: print(line, flush=True)), errors)


if __name__ == "__main__":
    sys.exit(main())
