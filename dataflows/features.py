"""The main job: windowed user/item statistics, point-in-time vectors and DLRM scores.

Run it with Bytewax's runner (defaults; broker and topics from the environment)::

    python -m bytewax.run dataflows.features
    python -m bytewax.run dataflows.features -r recovery/ -s 10 -b 30   # with recovery
    python -m bytewax.run "dataflows.features:get_flow(window_s=30, event_features_topic='event-features')"

or with its own command line, which also does backfills (``--help`` lists every flag)::

    python -m dataflows.features                      # live, like bytewax.run
    python -m dataflows.features --backfill --examples-out data/examples.jsonl
    python -m dataflows.features --backfill --input data/history.jsonl --output none

Both build their config with :func:`dataflows.config.flow_config` from the settings given
(flags, or the factory's keywords) and the environment, so the same settings give the same
flow. Where things are: the settings in ``dataflows/config.py``, the steps in
``dataflows/wiring.py``, the command line in ``dataflows/cli.py``, Ctrl-C and SIGTERM in
``dataflows/stopping.py``.
"""

from __future__ import annotations

import sys
from typing import Any

from bytewax.dataflow import Dataflow

from broker.admin import ensure_topics
from broker.embedded import resolve_bootstrap
from dataflows.config import flow_config
from dataflows.stopping import install_stop_handlers
from dataflows.wiring import build_flow


def get_flow(**settings: Any) -> Dataflow:
    """Flow factory for ``python -m bytewax.run "dataflows.features:get_flow(...)"``.

    Keyword arguments are the settings of :class:`dataflows.config.FlowConfig` (the flags of
    ``python -m dataflows.features`` without the dashes: ``window_s=30``, ``model='none'``).
    """
    config = flow_config(settings)
    install_stop_handlers(live=config.live)
    bootstrap = None
    if config.input == "kafka" or config.output == "kafka":
        bootstrap = resolve_bootstrap()
        ensure_topics(bootstrap, config.topics_to_create())
    return build_flow(config, bootstrap)


def __getattr__(name: str) -> Any:
    # `python -m bytewax.run dataflows.features` looks up `flow`; build it only then, so
    # importing this module (tests, tools) has no side effects.
    if name == "flow":
        return get_flow()
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


if __name__ == "__main__":
    from dataflows.cli import main

    sys.exit(main())
