"""``python -m dataflows.features``: the features flow's own command line (``--help`` lists every flag).

The flow's settings are :class:`dataflows.config.FlowConfig`'s fields, one flag each, built
by :func:`dataflows.config.flow_config` exactly as the ``bytewax.run`` factory builds them;
the Bytewax execution flags (workers, processes, recovery) are those of ``bytewax.run``.
A bad setting prints one line and exits 2; an unreachable broker is reported within seconds.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from broker.admin import BrokerUnreachable, ensure_topics
from broker.embedded import resolve_bootstrap
from common.config_cli import OneLineParser, config_parser
from dataflows.config import DEFAULT_MODEL_PATH, MODEL_ENV, FlowConfig, flow_config
from dataflows.observability import FlowMonitor
from dataflows.stopping import install_stop_handlers
from dataflows.wiring import ModelLoadError, build_flow

#: flags of the Bytewax runner and of this command's own outputs, not of the flow
EXECUTION = ("workers_per_process", "process_id", "addresses", "recovery_directory", "snapshot_interval",
             "backup_interval", "counters_out")


def parser() -> OneLineParser:
    p = config_parser(
        FlowConfig, "python -m dataflows.features",
        "Windowed user/item statistics, point-in-time feature vectors and DLRM scores from the interactions "
        "topic (live) or a backfill over history. Broker: KAFKA_BOOTSTRAP_SERVERS, else the embedded broker. "
        f"Topic names: TOPIC_* variables. Model: {MODEL_ENV} (default {DEFAULT_MODEL_PATH}).",
        given_only=True)
    r = p.add_argument_group("bytewax execution (as python -m bytewax.run)")
    r.add_argument("-w", "--workers-per-process", type=int, default=1, help="worker threads (default: 1)")
    r.add_argument("-i", "--process-id", type=int, default=None, help="this process's index (with -a)")
    r.add_argument("-a", "--addresses", default=None, help="all processes' host:port, ';'-separated")
    r.add_argument("-r", "--recovery-directory", default=None,
                   help="recovery directory (init: python -m bytewax.recovery DIR 1)")
    r.add_argument("-s", "--snapshot-interval", type=float, default=None, help="seconds between snapshots (epoch length)")
    r.add_argument("-b", "--backup-interval", type=float, default=None, help="seconds of old snapshots to keep")
    p.add_argument("--counters-out", default=None, metavar="PATH",
                   help="when the run ends (or is stopped), write its counters as JSON to PATH: records in, used, "
                   "dead letters by reason, windows, vectors, scores (this process's; python -m reporting shows "
                   "reports/flow*.json)")
    return p


def parse(p: OneLineParser, argv: list[str] | None, environ: Mapping[str, str] | None = None,
          ) -> tuple[FlowConfig, dict[str, Any]]:
    """The flow's config and the Bytewax execution settings of a command line (ValueError if bad)."""
    args = vars(p.parse_args(argv))
    run = {name: args.pop(name) for name in EXECUTION}
    if run["workers_per_process"] < 1:
        msg = f"--workers-per-process must be >= 1, got {run['workers_per_process']}"
        raise ValueError(msg)
    if run["recovery_directory"] and (run["snapshot_interval"] is None or run["backup_interval"] is None):
        msg = "-r needs -s (snapshot interval) and -b (backup interval), as in bytewax.run"
        raise ValueError(msg)
    return flow_config(args, environ), run


def main(argv: list[str] | None = None) -> int:
    from bytewax.errors import BytewaxRuntimeError
    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main

    p = parser()
    try:
        config, run = parse(p, argv)
        bootstrap = None
        if config.input == "kafka" or config.output == "kafka":
            bootstrap = resolve_bootstrap()
            ensure_topics(bootstrap, config.topics_to_create())
        monitor = FlowMonitor(config.progress_interval)
        flow = build_flow(config, bootstrap, recovery=bool(run["recovery_directory"]), monitor=monitor,
                          resume_from=run["recovery_directory"])
    except (ValueError, BrokerUnreachable, FileNotFoundError, LookupError, ModelLoadError) as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    install_stop_handlers(live=config.live)
    recovery = None
    if run["recovery_directory"]:
        recovery = RecoveryConfig(run["recovery_directory"], backup_interval=timedelta(seconds=run["backup_interval"]))
    epoch = timedelta(seconds=run["snapshot_interval"]) if run["snapshot_interval"] else None
    addresses = run["addresses"].split(";") if run["addresses"] else None
    try:
        cli_main(flow, workers_per_process=run["workers_per_process"], process_id=run["process_id"],
                 addresses=addresses, epoch_interval=epoch, recovery_config=recovery)
    except (KeyboardInterrupt, BytewaxRuntimeError) as e:
        if not isinstance(e, KeyboardInterrupt) and not isinstance(e.__cause__, KeyboardInterrupt):
            raise
        print(f"{monitor.summary()}\nfeatures: aborted (no final snapshot; with -r a restart resumes from the "
              "last one)", file=sys.stderr)
        _write_counters(run["counters_out"], monitor, config, aborted=True)
        return 130
    monitor.maybe_log(force=True)
    print(monitor.summary(), file=sys.stderr)
    _write_counters(run["counters_out"], monitor, config, aborted=False)
    return 0


def _write_counters(path: str | None, monitor: FlowMonitor, config: FlowConfig, aborted: bool) -> None:
    """The run's counters as JSON (``--counters-out``); a failure to write is reported, not raised."""
    if path is None:
        return
    report = monitor.report() | {"mode": "live" if config.live else "backfill", "input": config.input,
                                 "aborted": aborted}
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2) + "\n")
    except OSError as e:
        print(f"features: could not write the counters to {path}: {e}", file=sys.stderr)
