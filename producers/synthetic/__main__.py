"""``python -m producers.synthetic``: realistic interactions with known ground truth, live or backfill.

Examples::

    python -m producers.synthetic --sink stdout --count 5                 # no broker needed
    python -m producers.synthetic --rate 2000 --duration 60               # live, to Kafka
    python -m producers.synthetic --backfill --days 1 --rate 20 --sink jsonl --out data/day.jsonl
    python -m producers.synthetic --check                                 # OK / FAIL round trip

Exit codes: 0 done (also after Ctrl-C), 1 delivery failures or a failed --check, 2 bad
configuration or no broker.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from confluent_kafka import KafkaException

from broker.admin import BrokerUnreachable
from broker.config import BOOTSTRAP_ENV
from producers.synthetic.config import SINKS, ModelParams, ProducerConfig, flag
from producers.synthetic.faults import FaultRates
from producers.synthetic.report import dataset_text

_DEFAULT = ProducerConfig()


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (``error: ...``) with exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    """Every flag maps to a field of ProducerConfig or ModelParams."""
    p = _Parser(
        prog="python -m producers.synthetic",
        description="Synthetic interactions (view, click, add_cart, purchase) from a ground-truth model, "
        "to Kafka or a file. The broker is KAFKA_BOOTSTRAP_SERVERS, else the embedded one "
        "(started on demand). Truth records go to the truth topic or --truth-out.",
        epilog="Exit codes: 0 done (also after Ctrl-C), 1 delivery failures or failed --check, 2 bad configuration.",
    )
    d = _DEFAULT
    run = p.add_argument_group("run")
    run.add_argument("--seed", type=int, default=d.seed, help="root of all randomness (default: %(default)s)")
    run.add_argument("--backfill", dest="mode", action="store_const", const="backfill", default="live",
                     help="write history with realistic event times as fast as possible (default: live pacing)")
    run.add_argument("--rate", type=float, default=d.rate,
                     help="events per second: wall clock in live mode, event time in backfill (default: %(default)s)")
    run.add_argument("--start", type=_aware_time, default=None, metavar="ISO8601",
                     help="event time of the stream's start, with a timezone, e.g. 2025-01-01T00:00:00Z "
                     "(default: now in live mode, now minus the span in backfill)")
    run.add_argument("--days", type=float, default=d.days, help="backfill span in days of event time (default: %(default)s)")
    run.add_argument("--count", type=int, default=None, metavar="N", help="stop after N events (default: no limit)")
    run.add_argument("--duration", dest="duration_s", type=float, default=None, metavar="S",
                     help="live: stop after S wall seconds; backfill: S seconds of event time instead of --days (default: none)")
    run.add_argument("--faults", type=_fault_rates, default=FaultRates(), metavar="SPEC",
                     help="per-event fault rates, e.g. malformed=0.001,missing=0.001,invalid=0.001,duplicate=0.002,late=0.002 "
                     "(default: none)")
    run.add_argument("--late-by", dest="late_by_s", type=float, default=d.late_by_s, metavar="S",
                     help="seconds a late event's time is pushed back (default: %(default)s)")
    run.add_argument("--progress-interval", dest="progress_interval_s", type=float, default=d.progress_interval_s, metavar="S",
                     help="seconds between progress lines on stderr, 0 for none (default: %(default)s)")
    run.add_argument("--report", type=Path, default=None, metavar="PATH", help="write the JSON report here (default: none)")
    run.add_argument("--block-events", type=int, default=d.block_events, metavar="N",
                     help="events generated per numpy block; part of the stream's identity (default: %(default)s)")
    run.add_argument("--parallel", default=d.parallel, metavar="{auto,on,off}",
                     help="build events in a second process (uses both cores); auto: file backfills of 300k+ "
                     "events and live rates of 20k/s or more (default: %(default)s)")
    run.add_argument("--check", action="store_true",
                     help="round-trip a few events through the broker and print OK or FAIL (exit 0 or 1)")
    out = p.add_argument_group("sink")
    out.add_argument("--sink", default=d.sink,
                     help=f"one of {', '.join(SINKS)} (default: %(default)s) [env: {BOOTSTRAP_ENV} for kafka]")
    out.add_argument("--out", type=Path, default=None, metavar="PATH", help="output file of the jsonl and csv sinks")
    out.add_argument("--truth-out", type=Path, default=None, metavar="PATH",
                     help="truth JSONL (file sinks: default OUT with .truth.jsonl; stdout sink: none; "
                     "kafka sink: write the truth here instead of the truth topic)")
    out.add_argument("--no-truth", dest="truth", action="store_false",
                     help="send no truth records (view probabilities, faults): for load tests only (default: send them)")
    out.add_argument("--no-profiles", dest="profiles", action="store_false",
                     help="do not publish the catalog and user profiles at start (default: publish them: topics "
                     "items and users, or files next to --out)")
    out.add_argument("--users-out", type=Path, default=None, metavar="PATH",
                     help="user profiles JSONL (file sinks: default OUT with .users.jsonl, .users.csv for csv; "
                     "kafka sink: write them here instead of the users topic)")
    out.add_argument("--items-out", type=Path, default=None, metavar="PATH",
                     help="the catalog JSONL (file sinks: default OUT with .items.jsonl, .items.csv for csv; "
                     "kafka sink: write it here instead of the items topic)")
    out.add_argument("--topic", default=None, help="events topic (default: $TOPIC_INTERACTIONS or interactions)")
    out.add_argument("--truth-topic", default=None, help="truth topic (default: $TOPIC_TRUTH or interactions-truth)")
    out.add_argument("--partitions", type=int, default=d.partitions,
                     help="partitions of created topics; virtual partitions counted for file sinks (default: %(default)s)")
    out.add_argument("--delivery-timeout-ms", type=int, default=d.delivery_timeout_ms, metavar="MS",
                     help="a Kafka message not acknowledged by then counts as failed (default: %(default)s)")
    model = p.add_argument_group("generator model (ground truth)")
    kind: Callable[[str], Any]  # parses the flag's text
    for f in fields(ModelParams):
        if isinstance(f.default, tuple):
            kind, shown, metavar = _floats, ",".join(f"{w:g}" for w in f.default), "W,W,W,W,W"
        else:
            kind, shown, metavar = type(f.default), f"{f.default:g}", "N" if isinstance(f.default, int) else "X"
        model.add_argument(flag(f.name), dest=f"model_{f.name}", type=kind, default=f.default, metavar=metavar,
                           help=f"{f.metadata['help']} (default: {shown})")  # fmt: skip
    return p


def _floats(text: str) -> tuple[float, ...]:
    """Comma-separated numbers, for the logit weight flags."""
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        msg = f"expected comma-separated numbers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def config_from_args(args: argparse.Namespace) -> ProducerConfig:
    """Map parsed flags onto the config dataclasses (raises ConfigError)."""
    model = ModelParams(**{f.name: getattr(args, f"model_{f.name}") for f in fields(ModelParams)})
    run = {f.name: getattr(args, f.name) for f in fields(ProducerConfig) if f.name != "model"}
    return ProducerConfig(**run, model=model)


def _fault_rates(spec: str) -> FaultRates:
    try:
        return FaultRates.parse(spec)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--faults: ")) from None


def _aware_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        msg = f"{text!r} is not an ISO 8601 time such as 2025-01-01T00:00:00Z"
        raise argparse.ArgumentTypeError(msg) from None
    if when.tzinfo is None:
        msg = f"{text!r} has no timezone; add Z or an offset such as +00:00"
        raise argparse.ArgumentTypeError(msg)
    return when


def _run_with_signals(cfg: ProducerConfig, sink: Any, setup: Any) -> dict[str, Any]:
    """Run with Ctrl-C and SIGTERM mapped to a clean stop (flush, report); handlers restored after."""
    from producers.synthetic.runner import StopRequest, run

    stop = StopRequest()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, stop)
    if previous[signal.SIGINT] is not signal.SIG_IGN:  # a background job keeps ignoring Ctrl-C
        signal.signal(signal.SIGINT, stop)
    try:
        return run(cfg, sink, setup, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as e:  # ConfigError is a ValueError
        return _fail(str(e))
    from producers.synthetic.prepare import prepare, resolve_start
    from producers.synthetic.runner import open_sink

    try:
        if args.check:
            from broker.embedded import resolve_bootstrap
            from producers.synthetic.check import run_check

            ok, line = run_check(cfg, resolve_bootstrap())
            print(line)
            return 0 if ok else 1
        cfg = resolve_start(cfg)
        setup = prepare(cfg)
        sink = open_sink(cfg)
    except (ValueError, BrokerUnreachable, RuntimeError, OSError, KafkaException) as e:
        return _fail(str(e))
    report = _run_with_signals(cfg, sink, setup)
    human = sys.stderr if cfg.sink == "stdout" else sys.stdout
    print(dataset_text(report), file=human, flush=True)
    if cfg.report is not None:
        try:
            cfg.report.parent.mkdir(parents=True, exist_ok=True)
            cfg.report.write_text(json.dumps(report, indent=2) + "\n")
        except OSError as e:
            return _fail(f"cannot write the report to {cfg.report}: {e}")
    failures = report["delivery_failures"] + report["truth_delivery_failures"]
    if failures:
        return _fail(f"{failures} messages were not delivered ({report['first_delivery_error']})", code=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
