"""``python -m producers.synthetic``: realistic interactions with known ground truth, live or backfill.

Examples::

    python -m producers.synthetic --sink stdout --count 5                 # no broker needed
    python -m producers.synthetic --rate 2000 --duration 60               # live, to Kafka
    python -m producers.synthetic --backfill --days 1 --rate 20 --sink jsonl --out data/day.jsonl
    python -m producers.synthetic --check                                 # OK / FAIL round trip
    python -m producers.synthetic --backfill --duration 600 --sink jsonl --out data/exp.jsonl \
        --experiment homepage --arms control=popularity,treatment=random  # an A/B test (docs/experiments.md)

Exit codes: 0 done (also after Ctrl-C), 1 delivery failures or a failed --check, 2 bad
configuration or no broker.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

from confluent_kafka import KafkaException

from broker.admin import BrokerUnreachable
from common.config_cli import OneLineParser, add_config_flags, argument_group, config_parser, pop_config_args
from experiments import design as experiment_design
from producers.synthetic.config import ModelParams, ProducerConfig
from producers.synthetic.report import dataset_text

PROG = "python -m producers.synthetic"


def build_parser() -> OneLineParser:
    """Every flag but --check maps to a field of ProducerConfig, ModelParams or ExperimentDesign."""
    p = config_parser(
        ProducerConfig, PROG,
        "Synthetic interactions (view, click, add_cart, purchase) from a ground-truth model, "
        "to Kafka or a file. The broker is KAFKA_BOOTSTRAP_SERVERS, else the embedded one "
        "(started on demand). Truth records go to the truth topic or --truth-out.",
        epilog="Exit codes: 0 done (also after Ctrl-C), 1 delivery failures or failed --check, 2 bad configuration.",
    )
    argument_group(p, "run").add_argument("--check", action="store_true",
                     help="round-trip a few events through the broker and print OK or FAIL (exit 0 or 1)")
    add_config_flags(p, ModelParams, dest_prefix="model_", group="generator model (ground truth)")
    experiment_design.add_arguments(p)
    return p


def config_from_args(args: argparse.Namespace) -> ProducerConfig:
    """Map parsed flags onto the config dataclasses (raises ConfigError); --check stays in ``args``."""
    model = ModelParams(**pop_config_args(args, ModelParams, dest_prefix="model_"))
    experiment = experiment_design.from_args(args)
    return ProducerConfig(**pop_config_args(args, ProducerConfig), model=model, experiment=experiment)


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
    print(f"{PROG}: error: {message}", file=sys.stderr)
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
