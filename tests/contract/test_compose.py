"""docker-compose.yml, Dockerfile and .dockerignore hold together with the code.

No Docker engine runs on the development machines, so ``docker compose up`` cannot run here.
These tests check what would break it and what the code decides elsewhere: the services'
wiring (start order, listeners, the address clients use), pinned images, that the commands
the services run are accepted by the project's own command lines, that topic-init creates
exactly ``broker.config.Topics`` (its shell snippet and the healthcheck run for real against a
fake ``rpk`` that behaves like the real one: exit 1 with TOPIC_ALREADY_EXISTS, exit 0 from
``cluster health`` even when unhealthy), and that the Dockerfile installs every package of
``pyproject.toml`` compiled, with the CPU build of the pinned torch.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import yaml

from broker.config import BOOTSTRAP_ENV, DEFAULT_PARTITIONS, Topics

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict = COMPOSE["services"]
DOCKERFILE_TEXT = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# What containers and the host use to reach Redpanda (the README and broker/config.py say so).
INTERNAL = ("redpanda", 9092)
EXTERNAL = ("localhost", 19092)
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


# --------------------------------------------------------------------------- helpers (the compose forms used here)


def env_of(service: dict) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def command_of(service: dict) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def flag(tokens: list[str], name: str) -> str | None:
    """Value of ``--name=value`` or ``--name value`` in an argument list."""
    for i, tok in enumerate(tokens):
        if tok.startswith(name + "="):
            return tok.split("=", 1)[1]
        if tok == name and i + 1 < len(tokens):
            return tokens[i + 1]
    return None


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """``internal://0.0.0.0:9092,external://...`` -> {"internal": ("0.0.0.0", 9092), ...}."""
    out = {}
    for part in value.split(","):
        name, _, address = part.strip().rpartition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


def published_ports(service: dict) -> set[tuple[int, int]]:
    """(host port, container port) pairs of ``"host:container"`` entries."""
    return {(int(a), int(b)) for a, b in (str(e).split(":")[-2:] for e in service.get("ports") or [])}


def depends_of(service: dict) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in (service.get("depends_on") or {}).items()}


def compose_unescape(text: str) -> str:
    """What the shell receives after compose interpolation, for text meant to have none.

    ``$$`` becomes ``$``; a lone ``$`` would be replaced by compose with a host variable
    (usually empty) before the shell saw it, which is the bug this guards against.
    """

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        raise AssertionError(f"unescaped $ would be interpolated by compose: {text[m.start() : m.start() + 20]!r}")

    return re.sub(r"\$\$|\$", sub, text)


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        pending = ""
        out.append((keyword.upper(), args.strip()))
    return out


INSTRUCTIONS = dockerfile_instructions(DOCKERFILE_TEXT)
PACKAGES = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}


def instructions(keyword: str) -> list[tuple[int, str]]:
    return [(i, args) for i, (kw, args) in enumerate(INSTRUCTIONS) if kw == keyword]


def pip_installs() -> list[tuple[int, list[str]]]:
    """(instruction index, the requirements of one ``pip install`` call), options dropped."""
    calls = []
    for i, args in instructions("RUN"):
        for segment in re.split(r"&&|;", args):
            tokens = shlex.split(segment)
            if tokens[:2] == ["pip", "install"]:
                calls.append((i, tokens[2:]))
    return calls


def requirements(call: list[str]) -> list[str]:
    return [t for j, t in enumerate(call) if not t.startswith("-") and (j == 0 or call[j - 1] != "--index-url")]


# --------------------------------------------------------------------------- compose


def test_services_start_in_order_and_reference_what_exists():
    assert {"redpanda", "console", "topic-init", "producer", "dataflow"} <= set(SERVICES)
    declared = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        assert set(depends_of(service)) <= set(SERVICES), name
        for mount in service.get("volumes") or []:
            source = str(mount).split(":")[0]
            assert source.startswith((".", "/")) or source in declared, f"{name} mounts undeclared volume {source}"
    assert depends_of(SERVICES["console"])["redpanda"] == "service_healthy"
    assert depends_of(SERVICES["topic-init"])["redpanda"] == "service_healthy"
    for name in ("producer", "dataflow"):
        assert depends_of(SERVICES[name])["topic-init"] == "service_completed_successfully"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_images_are_pinned_to_a_version(name):
    service = SERVICES[name]
    if "image" not in service:
        assert (ROOT / service["build"]["context"] / service["build"].get("dockerfile", "Dockerfile")).resolve() \
            == ROOT / "Dockerfile", f"{name}: neither a pinned image nor the project's Dockerfile"
        return
    tag = service["image"].rsplit("/", 1)[-1].partition(":")[2]
    assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {service['image']} is not pinned to a full version"


def test_clients_reach_redpanda_on_the_listener_it_advertises_to_them():
    tokens = command_of(SERVICES["redpanda"])
    bind = listeners(flag(tokens, "--kafka-addr") or "")
    advertised = listeners(flag(tokens, "--advertise-kafka-addr") or "")
    assert set(advertised) == set(bind), "every listener needs both a bind and an advertised address"
    by_address = {address: name for name, address in advertised.items()}
    assert INTERNAL in by_address and EXTERNAL in by_address, advertised
    assert bind[by_address[INTERNAL]][1] == INTERNAL[1]
    assert (EXTERNAL[1], bind[by_address[EXTERNAL]][1]) in published_ports(SERVICES["redpanda"])  # the host's port
    assert env_of(SERVICES["console"])["KAFKA_BROKERS"] == "{}:{}".format(*INTERNAL)
    for name in ("producer", "dataflow"):
        assert env_of(SERVICES[name])[BOOTSTRAP_ENV] == "{}:{}".format(*INTERNAL)


def test_app_services_run_commands_the_project_accepts_and_stop_with_sigint():
    from producers.synthetic.__main__ import build_parser

    producer, dataflow = command_of(SERVICES["producer"]), command_of(SERVICES["dataflow"])
    assert producer[:3] == ["python", "-m", "producers.synthetic"]
    build_parser().parse_args(producer[3:])  # exits 2 on a flag the producer does not have
    assert dataflow[:4] == ["python", "-m", "bytewax.run", "dataflows.features"]
    for name in ("producer", "dataflow"):
        # Bytewax dies at once on SIGTERM; the producer flushes and reports on Ctrl-C.
        assert SERVICES[name].get("stop_signal") == "SIGINT"


def test_dataflow_reads_its_model_from_the_host_artifacts_folder():
    dataflow = SERVICES["dataflow"]
    model = PurePosixPath(env_of(dataflow)["MODEL_PATH"])
    assert model == PurePosixPath(instructions("WORKDIR")[-1][1]) / "artifacts" / "dlrm.pt"
    mounts = {PurePosixPath(str(m).split(":")[1]): str(m).split(":")[0] for m in dataflow["volumes"]}
    assert (ROOT / mounts[model.parent]).resolve() == ROOT / "artifacts"


# --------------------------------------------------------------------------- compose: shell snippets, run for real

FAKE_RPK = textwrap.dedent(
    """\
    # Stands in for rpk: keeps the broker's topics in a JSON file, logs each call.
    import json, os, sys
    args = sys.argv[1:]
    state_path, mode = os.environ["FAKE_RPK_STATE"], os.environ["FAKE_RPK_MODE"]
    state = json.load(open(state_path)) if os.path.exists(state_path) else {"topics": {}, "calls": []}
    state["calls"].append(args)

    def value(names):
        for i, a in enumerate(args):
            for n in names:
                if a == n and i + 1 < len(args):
                    return args[i + 1]
                if a.startswith(n + "="):
                    return a.split("=", 1)[1]
        return None

    def save():
        json.dump(state, open(state_path, "w"))

    if args[:2] == ["cluster", "health"]:
        save()
        if mode == "down":
            print("unable to request cluster health: connection refused", file=sys.stderr)
            sys.exit(1)
        print("CLUSTER HEALTH OVERVIEW")
        print("=======================")
        print("Healthy:                     " + ("true" if mode == "up" else "false"))
        sys.exit(0)  # like the real rpk: 0 whether healthy or not
    if args[:2] == ["topic", "create"]:
        if mode == "down":
            save()
            print("unable to create topics: dial tcp: connection refused", file=sys.stderr)
            sys.exit(1)
        with_value = {"-p", "--partitions", "-r", "--replicas", "--brokers", "-X", "-c", "--topic-config"}
        topics, skip = [], False
        for a in args[2:]:
            if skip:
                skip = False
            elif a in with_value:
                skip = True
            elif not a.startswith("-"):
                topics.append(a)
        brokers = value(["--brokers"]) or (value(["-X"]) or "").removeprefix("brokers=")
        print("TOPIC  STATUS")
        failed = False
        for t in topics:
            if mode == "invalid":
                print(t + "  INVALID_PARTITIONS: unable to create topic")
                failed = True
            elif t in state["topics"]:
                print(t + "  TOPIC_ALREADY_EXISTS: The topic has already been created.")
                failed = True
            else:
                state["topics"][t] = {"partitions": value(["-p", "--partitions"]), "brokers": brokers}
                print(t + "  OK")
        save()
        sys.exit(1 if failed else 0)
    print("fake rpk: unexpected call " + " ".join(args), file=sys.stderr)
    sys.exit(2)
    """
)


@pytest.fixture()
def fake_rpk(tmp_path):
    """Run a compose shell snippet with the fake rpk first on PATH; returns (runner, state)."""
    if shutil.which("sh") is None:
        pytest.skip("no sh to run the compose snippets with")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "fake_rpk.py").write_text(FAKE_RPK)
    rpk = bin_dir / "rpk"  # a sh wrapper: a long interpreter path could break a #! line
    rpk.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(tmp_path / "fake_rpk.py"))} "$@"\n')
    rpk.chmod(0o755)
    state_path = tmp_path / "rpk-state.json"

    def run(argv: list[str], mode: str) -> subprocess.CompletedProcess:
        env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "FAKE_RPK_STATE": str(state_path),
            "FAKE_RPK_MODE": mode,
        }
        return subprocess.run(argv, env=env, capture_output=True, check=False, text=True, timeout=60)

    def state() -> dict:
        return json.loads(state_path.read_text()) if state_path.exists() else {"topics": {}, "calls": []}

    return run, state


def topic_init_argv() -> list[str]:
    service = SERVICES["topic-init"]
    entrypoint = service.get("entrypoint")
    entrypoint = shlex.split(entrypoint) if isinstance(entrypoint, str) else list(entrypoint or [])
    assert entrypoint[-1:] == ["-c"] and PurePosixPath(entrypoint[0]).name in ("sh", "bash"), entrypoint
    command = service["command"]
    assert isinstance(command, list) and len(command) == 1, "topic-init's command must be one script for sh -c"
    return ["sh", "-c", compose_unescape(command[0])]


def test_topic_init_creates_exactly_the_project_topics(fake_rpk):
    run, state = fake_rpk
    result = run(topic_init_argv(), "up")
    assert result.returncode == 0, result.stdout + result.stderr
    topics = state()["topics"]
    assert sorted(topics) == sorted(Topics().all())
    for name, spec in topics.items():
        assert spec["partitions"] == str(DEFAULT_PARTITIONS), (name, spec)
        assert spec["brokers"] == "{}:{}".format(*INTERNAL), (name, spec)


def test_topic_init_is_idempotent(fake_rpk):
    run, state = fake_rpk
    first = run(topic_init_argv(), "up")
    second = run(topic_init_argv(), "up")
    assert first.returncode == 0 and second.returncode == 0, second.stdout + second.stderr
    assert sorted(state()["topics"]) == sorted(Topics().all())


@pytest.mark.parametrize("mode", ["down", "invalid"])
def test_topic_init_fails_on_other_errors(fake_rpk, mode):
    run, _ = fake_rpk
    result = run(topic_init_argv(), mode)
    assert result.returncode != 0, f"topic-init succeeded although rpk failed ({mode})"


def healthcheck_argv() -> list[str]:
    test = SERVICES["redpanda"]["healthcheck"]["test"]
    if isinstance(test, str):
        return ["sh", "-c", compose_unescape(test)]
    kind, *rest = test
    if kind == "CMD-SHELL":
        return ["sh", "-c", compose_unescape(rest[0])]
    assert kind == "CMD", test
    return [compose_unescape(t) for t in rest]


@pytest.mark.parametrize(("mode", "healthy"), [("up", True), ("unhealthy", False), ("down", False)])
def test_redpanda_healthcheck_reads_the_health_verdict(fake_rpk, mode, healthy):
    run, _ = fake_rpk
    assert (run(healthcheck_argv(), mode).returncode == 0) is healthy


# --------------------------------------------------------------------------- Dockerfile and .dockerignore


def test_dockerfile_base_image_is_a_pinned_python_311_slim():
    image = instructions("FROM")[-1][1].split()[0]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image), image


def test_dockerfile_installs_the_pinned_cpu_torch_before_the_project():
    pin = next(d for d in PYPROJECT["project"]["dependencies"] if re.fullmatch(r"torch==\S+", d))
    calls = pip_installs()
    torch = [(i, c) for i, c in calls if any(r.startswith("torch") for r in requirements(c))]
    project = [i for i, c in calls if "." in requirements(c)]
    assert torch and project, "torch and the project must both be pip-installed"
    for _, call in torch:
        assert pin in requirements(call) and flag(call, "--index-url") == TORCH_CPU_INDEX, call
    assert max(i for i, _ in torch) < min(project), "torch (CPU) first, or the project pulls in a CUDA build"


def test_dockerfile_installs_every_package_compiled_and_then_removes_the_sources():
    install_at, run = next((i, a) for i, a in instructions("RUN") if re.search(r"pip install[^&]* \.(\s|$)", a))
    copied = {PurePosixPath(s).name for i, a in instructions("COPY") if i < install_at for s in shlex.split(a)[:-1]}
    assert PACKAGES | {"pyproject.toml", "setup.py"} <= copied, f"not copied: {sorted(PACKAGES - copied)}"
    # setup.py compiles the hot path with mypyc: a C compiler in the same layer, and no opt-out
    assert re.search(r"apt-get install\b[^&]*\bgcc\b", run[: run.index("pip install")]), "no C compiler"
    assert "RECSTREAM_PURE_PYTHON" not in DOCKERFILE_TEXT
    # The sources leave the WORKDIR, or `python -m ...` there would import them (plain Python)
    # instead of the compiled modules in site-packages.
    removed = set(re.search(r"rm -rf ((?:[\w.]+ ?)+)$", run.strip()).group(1).split())
    assert removed >= PACKAGES, f"left in the WORKDIR: {sorted(PACKAGES - removed)}"


def test_dockerfile_drops_root_and_runs_the_dataflow():
    users = instructions("USER")
    assert users and users[-1][1].split(":")[0] not in ("root", "0"), "the container would run as root"
    assert users[-1][0] > max(i for i, _ in pip_installs()), "install as root, then drop privileges"
    assert json.loads(instructions("CMD")[-1][1])[:4] == ["python", "-m", "bytewax.run", "dataflows.features"]


def test_dockerignore_keeps_local_state_out_of_the_build():
    lines = {ln.strip().rstrip("/") for ln in (ROOT / ".dockerignore").read_text().splitlines()}
    lines = {ln.removeprefix("**/") for ln in lines if ln and not ln.startswith("#")}
    for name in (".venv", ".git", "data", "artifacts", "reports", "__pycache__", ".broker", ".pytest_cache",
                 "*.so", "events/_native_build.py"):  # a checkout's own build must not shadow the image's
        assert name in lines, f".dockerignore does not exclude {name}"
    assert not (lines & (PACKAGES | {"pyproject.toml"})), "the build needs these"
