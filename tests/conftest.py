"""Shared fixtures: one embedded broker per test session, throwaway topics per test.

Tests under ``tests/integration/`` are marked ``integration`` automatically; ``make
test-fast`` deselects them. Setting ``KAFKA_BOOTSTRAP_SERVERS`` runs the integration tier
against that broker (e.g. Redpanda) instead of starting Tansu.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from broker.admin import delete_topics, ensure_topics
from broker.config import BOOTSTRAP_ENV
from broker.embedded import EmbeddedBroker

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Address of a real Kafka-protocol broker: the embedded Tansu unless one is configured."""
    configured = os.environ.get(BOOTSTRAP_ENV)
    if configured:
        yield configured
        return
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    broker = EmbeddedBroker(port=0, log_path=log)
    bootstrap = broker.start()
    try:
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture()
def kafka_env(kafka_bootstrap: str) -> dict[str, str]:
    """Environment for a subprocess that must use the test broker."""
    env = dict(os.environ)
    env[BOOTSTRAP_ENV] = kafka_bootstrap
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture()
def make_topics(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., list[str]]]:
    """Factory: ``make_topics("interactions", "scores", partitions=4)`` -> unique names.

    The topics are created at once and deleted when the test ends.
    """
    created: list[str] = []
    tag = f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")

    def make(*bases: str, partitions: int = 4) -> list[str]:
        call = uuid.uuid4().hex[:6]  # each call gets its own set, even within one test
        names = [f"t-{tag}-{call}-{b}" for b in bases]
        ensure_topics(kafka_bootstrap, names, partitions=partitions)
        created.extend(names)
        return names

    yield make
    # Best effort: Tansu keeps topics in memory and goes away with the session, and its
    # DeleteTopics response has been seen to fail parsing in librdkafka for some requests.
    for name in created:
        try:
            delete_topics(kafka_bootstrap, [name])
        except KafkaException as e:
            print(f"note: could not delete test topic {name}: {e}")
