"""Reachability checks and idempotent topic management against any Kafka-protocol broker.

Every failure here is reported within seconds: a TCP probe runs first (a refused or
unroutable address fails at once, with the address in the message), then a metadata
request with a short timeout.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from broker.config import DEFAULT_PARTITIONS


class BrokerUnreachable(RuntimeError):
    """No Kafka broker answers at the configured address."""


def parse_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    """Split ``"h1:p1,h2:p2"`` into (host, port) pairs; raise ValueError on a bad entry.

    >>> parse_bootstrap("127.0.0.1:19092, localhost:9092")
    [('127.0.0.1', 19092), ('localhost', 9092)]
    """
    pairs = []
    for raw in bootstrap.split(","):
        entry = raw.strip()
        if "://" in entry:
            entry = entry.split("://", 1)[1]
        host, sep, port = entry.rpartition(":")
        if not sep or not host or not port.isdigit():
            msg = f"bad broker address {entry!r} in {bootstrap!r}; expected host:port"
            raise ValueError(msg)
        pairs.append((host.strip("[]"), int(port)))
    return pairs


def admin_client(bootstrap: str) -> AdminClient:
    """An AdminClient that gives up quickly and does not spam stderr."""
    return AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "socket.connection.setup.timeout.ms": 3000,
            "log_level": 2,
        }
    )


def tcp_reachable(bootstrap: str, timeout_s: float = 2.0) -> str | None:
    """None if some bootstrap address accepts a TCP connection, else the last error."""
    error = "no address"
    for host, port in parse_bootstrap(bootstrap):
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return None
        except OSError as e:
            error = f"{host}:{port}: {e.strerror or e}"
    return error


def check_reachable(bootstrap: str, timeout_s: float = 5.0) -> None:
    """Raise :class:`BrokerUnreachable` unless a broker answers a metadata request."""
    error = tcp_reachable(bootstrap, timeout_s=min(timeout_s, 2.0))
    if error is not None:
        msg = f"cannot reach the Kafka broker at {bootstrap} ({error})"
        raise BrokerUnreachable(msg)
    try:
        admin_client(bootstrap).list_topics(timeout=timeout_s)
    except KafkaException as e:
        msg = f"the Kafka broker at {bootstrap} did not answer a metadata request within {timeout_s:g}s ({e})"
        raise BrokerUnreachable(msg) from e


def wait_until_ready(bootstrap: str, timeout_s: float = 15.0) -> None:
    """Poll until a metadata request succeeds or raise after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            check_reachable(bootstrap, timeout_s=2.0)
            return
        except BrokerUnreachable as e:
            last = str(e)
            time.sleep(0.1)
    msg = f"broker at {bootstrap} not ready after {timeout_s:g}s: {last}"
    raise BrokerUnreachable(msg)


def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = DEFAULT_PARTITIONS,
    timeout_s: float = 10.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names it created.

    Idempotent: a topic that already exists is left as it is (its partition count included).
    """
    names = list(dict.fromkeys(names))
    if partitions < 1:
        msg = f"partitions must be >= 1, got {partitions}"
        raise ValueError(msg)
    check_reachable(bootstrap)
    admin = admin_client(bootstrap)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [n for n in names if n not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing],
        request_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as e:
            if e.args and e.args[0].name() == "TOPIC_ALREADY_EXISTS":
                continue
            msg = f"could not create topic {name!r} on {bootstrap}: {e}"
            raise RuntimeError(msg) from e
    _wait_for_metadata(admin, created, timeout_s)
    return created


def _wait_for_metadata(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(names)
    while pending and time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout_s).topics
        pending = {n for n in pending if n not in topics or not topics[n].partitions}
        if pending:
            time.sleep(0.05)


def partition_count(bootstrap: str, topic: str, timeout_s: float = 5.0) -> int:
    """Number of partitions of ``topic``; raise LookupError if it does not exist."""
    # All topics, not list_topics(topic=...): the embedded broker creates a topic it is asked about.
    topics = admin_client(bootstrap).list_topics(timeout=timeout_s).topics
    meta = topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        msg = f"topic {topic!r} does not exist on the broker"
        raise LookupError(msg)
    return len(meta.partitions)


def delete_topics(bootstrap: str, names: Iterable[str], timeout_s: float = 10.0) -> None:
    """Delete topics, ignoring ones that do not exist."""
    names = list(names)
    if not names:
        return
    admin = admin_client(bootstrap)  # keep a reference: the futures die with the client
    futures = admin.delete_topics(names, request_timeout=timeout_s)
    for future in futures.values():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as e:
            if e.args and e.args[0].name() == "UNKNOWN_TOPIC_OR_PART":
                continue
            raise
