"""``python -m broker``: run the embedded broker, create the project's topics, check a broker.

Examples::

    python -m broker start                 # foreground; Ctrl-C stops it
    python -m broker start --background    # detached; pid and log in .broker/
    python -m broker status
    python -m broker topics                # create the project's topics (idempotent)
    python -m broker stop
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from broker.admin import BrokerUnreachable, check_reachable, ensure_topics
from broker.config import DEFAULT_PARTITIONS, EMBEDDED_PORT, Topics, configured_bootstrap
from broker.embedded import (
    DEFAULT_STATE_DIR,
    EmbeddedBroker,
    background_status,
    resolve_bootstrap,
    start_background,
    stop_background,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m broker",
        description="Run the embedded Tansu Kafka broker and manage the project's topics. "
        "Components use KAFKA_BOOTSTRAP_SERVERS when it is set, else this broker on 127.0.0.1.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    start = sub.add_parser("start", help="start the embedded broker and wait until it answers")
    start.add_argument("--port", type=int, default=EMBEDDED_PORT, help=f"TCP port (default: {EMBEDDED_PORT})")
    start.add_argument("--background", action="store_true", help="detach; keep pid and log in --state-dir")
    start.add_argument("--no-topics", action="store_true", help="do not create the project's topics")
    start.add_argument(
        "--partitions", type=int, default=DEFAULT_PARTITIONS, help=f"partitions per topic (default: {DEFAULT_PARTITIONS})"
    )
    for name, text in (("stop", "stop the background broker"), ("status", "say whether a broker answers")):
        sub.add_parser(name, help=text)
    topics = sub.add_parser("topics", help="create the project's topics if missing (idempotent)")
    topics.add_argument(
        "--partitions", type=int, default=DEFAULT_PARTITIONS, help=f"partitions per topic (default: {DEFAULT_PARTITIONS})"
    )
    p.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help=f"pid and log folder (default: {DEFAULT_STATE_DIR}/)"
    )
    return p


def _create_topics(bootstrap: str, partitions: int) -> None:
    created = ensure_topics(bootstrap, Topics.from_env().all(), partitions=partitions)
    print(f"topics on {bootstrap}: created {', '.join(created) if created else 'none (all existed)'}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "partitions", 1) < 1:
        print(f"error: --partitions must be >= 1, got {args.partitions}", file=sys.stderr)
        return 2
    try:
        if args.command == "start":
            if args.background:
                pid, bootstrap, started = start_background(args.port, args.state_dir)
                print(f"embedded broker {'started' if started else 'already running'} at {bootstrap} (pid {pid})")
                if not args.no_topics:
                    _create_topics(bootstrap, args.partitions)
                return 0
            broker = EmbeddedBroker(port=args.port)
            bootstrap = broker.start()
            print(f"embedded broker ready at {bootstrap}; Ctrl-C stops it", flush=True)
            if not args.no_topics:
                _create_topics(bootstrap, args.partitions)
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            try:
                while broker.process is not None and broker.process.poll() is None:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
            finally:
                broker.stop()
            print("embedded broker stopped")
            return 0
        if args.command == "stop":
            stopped = stop_background(args.state_dir)
            print(f"stopped the embedded broker (pid {stopped})" if stopped else "no background broker was running")
            return 0
        if args.command == "status":
            configured = configured_bootstrap()
            running = background_status(args.state_dir)
            target = configured or (running[1] if running else f"127.0.0.1:{EMBEDDED_PORT}")
            check_reachable(target, timeout_s=3.0)
            print(f"OK: a broker answers at {target}" + (f" (embedded, pid {running[0]})" if running else ""))
            return 0
        if args.command == "topics":
            _create_topics(resolve_bootstrap(), args.partitions)
            return 0
    except (BrokerUnreachable, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
