"""Where the broker is and what the project's topics are called.

Deployment settings come from the environment, everything else from flags:

``KAFKA_BOOTSTRAP_SERVERS``
    the broker every component uses (e.g. ``localhost:19092`` for docker compose's
    Redpanda). When it is unset, components use the embedded Tansu broker on
    ``127.0.0.1:EMBEDDED_PORT`` and start it if it is not running.
``TOPIC_INTERACTIONS``, ``TOPIC_TRUTH``, ``TOPIC_USER_FEATURES``, ``TOPIC_ITEM_FEATURES``,
``TOPIC_SCORES``, ``TOPIC_DEAD_LETTERS``
    override a default topic name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Final

BOOTSTRAP_ENV: Final = "KAFKA_BOOTSTRAP_SERVERS"
EMBEDDED_HOST: Final = "127.0.0.1"
#: Port of the embedded broker; 19092 is also what docker compose maps Redpanda to, so one
#: of the two runs at a time.
EMBEDDED_PORT: Final = 19092
DEFAULT_PARTITIONS: Final = 4


@dataclass(frozen=True)
class Topics:
    """The project's topic names (defaults from DESIGN.md)."""

    interactions: str = "interactions"  # raw events from the producer, key user_id
    truth: str = "interactions-truth"  # generator ground truth, key event_id
    user_features: str = "user-features"  # tumbling-window user stats, key user_id@window_start
    item_features: str = "item-features"  # tumbling-window item stats, key item_id@window_start
    scores: str = "scores"  # DLRM P(click) per view, key event_id
    dead_letters: str = "dead-letters"  # refused input with its reason, key topic:partition:offset

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Topics:
        """Defaults overridden by ``TOPIC_<FIELD>`` variables (``TOPIC_SCORES=...``)."""
        env = os.environ if environ is None else environ
        overrides = {}
        for f in fields(cls):
            value = env.get(f"TOPIC_{f.name.upper()}")
            if value:
                overrides[f.name] = value
        return cls(**overrides)

    def all(self) -> list[str]:
        """Every topic name, in declaration order."""
        return [getattr(self, f.name) for f in fields(self)]


def embedded_address(port: int = EMBEDDED_PORT) -> str:
    """``host:port`` of the embedded broker."""
    return f"{EMBEDDED_HOST}:{port}"


def configured_bootstrap(environ: dict[str, str] | None = None) -> str | None:
    """The broker address from ``KAFKA_BOOTSTRAP_SERVERS``, or None when it is unset."""
    env = os.environ if environ is None else environ
    value = env.get(BOOTSTRAP_ENV, "").strip()
    return value or None
