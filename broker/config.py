"""Where the broker is and what the project's topics are called.

Deployment settings come from the environment, everything else from flags:

``KAFKA_BOOTSTRAP_SERVERS``
    the broker every component uses (e.g. ``localhost:19092`` for docker compose's
    Redpanda). When it is unset, components use the embedded Tansu broker on
    ``127.0.0.1:EMBEDDED_PORT`` and start it if it is not running.
``TOPIC_INTERACTIONS``, ``TOPIC_TRUTH``, ``TOPIC_USER_FEATURES``, ``TOPIC_ITEM_FEATURES``,
``TOPIC_SCORES``, ``TOPIC_DEAD_LETTERS``, ``TOPIC_USERS``, ``TOPIC_ITEMS``, ``TOPIC_REQUESTS``,
``TOPIC_RECOMMENDATIONS``
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


def producer_settings(bootstrap: str) -> dict[str, object]:
    """What every producer of the project shares: key placement, per-key order, compression.

    murmur2 places keys like the Java client. Per-key order needs retries that cannot
    overtake each other. Kafka's idempotent producer gives that, but it throttles the embedded
    broker (a third of the throughput, 2026-12-01), so the project keeps one request in flight
    without idempotence instead. A retried request may then be written twice: at-least-once,
    which the features flow's dedup by ``event_id`` absorbs on input, and which keyed upserts
    make harmless on output. lz4 keeps requests small. Callers add batching, timeouts and callbacks.
    """
    return {
        "bootstrap.servers": bootstrap,
        "partitioner": "murmur2_random",
        "enable.idempotence": False,
        "max.in.flight.requests.per.connection": 1,  # retries keep per-partition order
        "acks": "all",
        "compression.type": "lz4",
        "log_level": 2,  # librdkafka would log from its own threads, even after our last line
    }


@dataclass(frozen=True)
class Topics:
    """The project's topic names (the defaults; ``TOPIC_<FIELD>`` overrides each, see from_env)."""

    interactions: str = "interactions"  # raw events from the producer, key user_id
    truth: str = "interactions-truth"  # generator ground truth, key event_id
    user_features: str = "user-features"  # tumbling-window user stats, key user_id@window_start
    item_features: str = "item-features"  # tumbling-window item stats, key item_id@window_start
    scores: str = "scores"  # DLRM P(click) per view, key event_id
    dead_letters: str = "dead-letters"  # refused input with its reason, key topic:partition:offset
    users: str = "users"  # user profiles, latest per key user_id (events/profiles.py)
    items: str = "items"  # the catalog, latest per key item_id (events/profiles.py)
    requests: str = "recommendation-requests"  # explicit slate requests, key user_id (events/requests.py)
    recommendations: str = "recommendations"  # slates, key user_id (slates/)

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
