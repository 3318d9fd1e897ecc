"""docker-compose.yml, Dockerfile and .dockerignore hold together.

No Docker engine runs on the development machines, so these files cannot be exercised with
``docker compose up``. Instead this test reads them and checks what ``up`` depends on: the
services and their wiring (listeners, ports, environment, start order, volumes), pinned
images, the topic list against ``broker.config`` and the Dockerfile's install steps against
``pyproject.toml``. The two shell snippets in the compose file (topic creation and the
Redpanda healthcheck) are run for real with ``sh`` against a fake ``rpk`` that behaves like
the real one: exit 1 with TOPIC_ALREADY_EXISTS for an existing topic, exit 0 from
``cluster health`` even when unhealthy.
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


# --------------------------------------------------------------------------- helpers


def env_of(service: dict) -> dict[str, str]:
    """``environment:`` in either compose form (mapping or list of KEY=VALUE)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def command_of(service: dict) -> list[str]:
    cmd = service.get("command")
    assert cmd is not None, "no command"
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
    """(host port, container port) pairs from short ("[ip:]host:container[/proto]") or long syntax."""
    pairs = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            pairs.add((int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        if len(parts) >= 2:
            pairs.add((int(parts[-2]), int(parts[-1])))
    return pairs


def depends_of(service: dict) -> dict[str, str]:
    """depends_on as {service: condition}; the list form means service_started."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def mounts_of(service: dict) -> list[tuple[str, str]]:
    """(source, target) for every volume in short or long syntax."""
    out = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            out.append((str(entry.get("source", "")), str(entry["target"])))
        else:
            parts = str(entry).split(":")
            out.append((parts[0], parts[1]) if len(parts) >= 2 else ("", parts[0]))
    return out


def image_tag(image: str) -> str | None:
    """The tag of ``[registry[:port]/]repo[:tag][@digest]``, or None when there is none."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def compose_unescape(text: str) -> str:
    """What the shell receives after compose interpolation, for text meant to have none.

    ``$$`` becomes ``$``; a lone ``$`` would be replaced by compose with a host variable
    (usually empty) before the shell saw it, which is the bug this guards against.
    """

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        context = text[m.start() : m.start() + 20]
        raise AssertionError(f"unescaped $ would be interpolated by compose: {context!r}")

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
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def pip_installs(run_args: str) -> list[list[str]]:
    """Arguments after ``pip install`` for each pip call in one RUN instruction."""
    calls: list[list[str]] = []
    tokens = shlex.split(run_args)
    segments: list[list[str]] = [[]]
    for tok in tokens:
        if tok in ("&&", ";", "||"):
            segments.append([])
        else:
            segments[-1].append(tok)
    for seg in segments:
        for i in range(len(seg) - 1):
            if seg[i].endswith("pip") and seg[i + 1] == "install":
                calls.append(seg[i + 2 :])
                break
    return calls


def pip_requirements(args: list[str]) -> list[str]:
    """The positional arguments of a pip install call (options and their values dropped)."""
    takes_value = {"--index-url", "-i", "--extra-index-url", "-r", "--requirement", "-c", "--constraint"}
    takes_value |= {"-f", "--find-links"}
    reqs, skip = [], False
    for tok in args:
        if skip:
            skip = False
        elif tok in takes_value:
            skip = True
        elif not tok.startswith("-"):
            reqs.append(tok)
    return reqs


INSTRUCTIONS = dockerfile_instructions(DOCKERFILE_TEXT)


def torch_pin() -> str:
    for dep in PYPROJECT["project"]["dependencies"]:
        m = re.fullmatch(r"torch\s*==\s*(\S+)", dep)
        if m:
            return m.group(1)
    raise AssertionError("pyproject.toml pins no exact torch version")


# --------------------------------------------------------------------------- compose: services and images


def test_every_service_is_defined():
    assert {"redpanda", "console", "topic-init", "producer", "dataflow"} <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_images_are_pinned_to_a_version(name):
    service = SERVICES[name]
    if "image" not in service:
        assert "build" in service, f"{name}: neither image nor build"
        return
    tag = image_tag(service["image"])
    assert tag is not None, f"{name}: {service['image']} has no tag"
    assert tag != "latest"
    assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {tag!r} is not a full version"


def test_no_latest_tag_anywhere():
    assert ":latest" not in COMPOSE_TEXT
    assert ":latest" not in DOCKERFILE_TEXT


def test_topic_init_uses_the_brokers_own_rpk():
    assert SERVICES["topic-init"]["image"] == SERVICES["redpanda"]["image"]


def test_referenced_services_and_volumes_exist():
    declared = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for dep in depends_of(service):
            assert dep in SERVICES, f"{name} depends on unknown service {dep}"
        for source, _ in mounts_of(service):
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} mounts undeclared volume {source}"


# --------------------------------------------------------------------------- compose: Redpanda


def redpanda_listeners() -> tuple[dict, dict]:
    tokens = command_of(SERVICES["redpanda"])
    bind, advertised = flag(tokens, "--kafka-addr"), flag(tokens, "--advertise-kafka-addr")
    assert bind and advertised, "redpanda needs --kafka-addr and --advertise-kafka-addr"
    return listeners(bind), listeners(advertised)


def test_redpanda_runs_a_single_dev_node():
    tokens = command_of(SERVICES["redpanda"])
    assert tokens[:2] == ["redpanda", "start"]
    assert flag(tokens, "--mode") == "dev-container"


def test_redpanda_advertises_internal_and_external_listeners():
    bind, advertised = redpanda_listeners()
    assert set(advertised) == set(bind), "every listener needs both a bind and an advertised address"
    by_address = {address: name for name, address in advertised.items()}
    assert INTERNAL in by_address, f"no listener advertises {INTERNAL}: {advertised}"
    assert EXTERNAL in by_address, f"no listener advertises {EXTERNAL}: {advertised}"
    assert bind[by_address[INTERNAL]][1] == INTERNAL[1]
    assert bind[by_address[EXTERNAL]][1] == EXTERNAL[1]


def test_redpanda_publishes_the_external_listener_on_the_host():
    bind, advertised = redpanda_listeners()
    external = next(name for name, address in advertised.items() if address == EXTERNAL)
    assert (EXTERNAL[1], bind[external][1]) in published_ports(SERVICES["redpanda"])


def test_redpanda_has_a_health_check_on_rpk():
    test = SERVICES["redpanda"]["healthcheck"]["test"]
    assert "rpk cluster health" in (test if isinstance(test, str) else " ".join(test))


def test_console_points_at_the_internal_listener_and_maps_8080():
    console = SERVICES["console"]
    assert env_of(console)["KAFKA_BROKERS"] == "%s:%d" % INTERNAL
    assert (8080, 8080) in published_ports(console)
    assert depends_of(console).get("redpanda") == "service_healthy"


# --------------------------------------------------------------------------- compose: the app services


@pytest.mark.parametrize("name", ["producer", "dataflow"])
def test_app_services_build_the_project_image(name):
    build = SERVICES[name]["build"]
    if isinstance(build, str):
        build = {"context": build}
    context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
    assert (ROOT / context).resolve() == ROOT
    assert (ROOT / context / dockerfile).resolve() == ROOT / "Dockerfile"


@pytest.mark.parametrize("name", ["producer", "dataflow"])
def test_app_services_use_the_internal_listener(name):
    assert env_of(SERVICES[name]).get(BOOTSTRAP_ENV) == "%s:%d" % INTERNAL


@pytest.mark.parametrize("name", ["producer", "dataflow"])
def test_app_services_wait_for_the_topics(name):
    assert depends_of(SERVICES[name]).get("topic-init") == "service_completed_successfully"


@pytest.mark.parametrize("name", ["producer", "dataflow"])
def test_app_services_stop_with_sigint(name):
    # DESIGN.md: Bytewax dies at once on SIGTERM; the producer flushes and reports on Ctrl-C.
    assert SERVICES[name].get("stop_signal") == "SIGINT"


def test_producer_runs_the_synthetic_producer():
    tokens = command_of(SERVICES["producer"])
    assert tokens[:3] == ["python", "-m", "producers.synthetic"]
    rate = flag(tokens, "--rate")
    assert rate is not None and float(rate) > 0


def test_dataflow_runs_the_features_flow():
    assert command_of(SERVICES["dataflow"])[:4] == ["python", "-m", "bytewax.run", "dataflows.features"]


def test_dataflow_reads_its_model_from_the_artifacts_volume():
    dataflow = SERVICES["dataflow"]
    model = PurePosixPath(env_of(dataflow)["MODEL_PATH"])
    assert model == PurePosixPath(dockerfile_workdir()) / "artifacts" / "dlrm.pt"
    mounts = {PurePosixPath(target.split(":")[0]): source for source, target in mounts_of(dataflow)}
    assert model.parent in mounts, f"nothing is mounted at {model.parent}: {mounts}"
    source = mounts[model.parent]
    if source.startswith((".", "/")):  # bind mount: the host folder that training writes to
        assert (ROOT / source).resolve() == ROOT / "artifacts"


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
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)

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
        assert spec["brokers"] == "%s:%d" % INTERNAL, (name, spec)


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


def test_topic_init_waits_for_a_healthy_redpanda():
    assert depends_of(SERVICES["topic-init"]).get("redpanda") == "service_healthy"


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


def instructions(keyword: str) -> list[tuple[int, str]]:
    return [(i, args) for i, (kw, args) in enumerate(INSTRUCTIONS) if kw == keyword]


def dockerfile_workdir() -> str:
    workdirs = instructions("WORKDIR")
    assert workdirs, "Dockerfile sets no WORKDIR"
    return workdirs[-1][1]


def test_dockerfile_base_image_is_a_pinned_python_311_slim():
    froms = instructions("FROM")
    assert froms, "no FROM"
    image = froms[-1][1].split()[0]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image), image


def test_dockerfile_workdir_is_app():
    assert dockerfile_workdir() == "/app"


def pip_calls() -> list[tuple[int, list[str]]]:
    return [(i, call) for i, args in instructions("RUN") for call in pip_installs(args)]


def test_dockerfile_installs_cpu_torch_at_the_pinned_version():
    pin = f"torch=={torch_pin()}"
    torch_calls = [(i, c) for i, c in pip_calls() if any(r.startswith("torch") for r in pip_requirements(c))]
    assert torch_calls, "no pip install of torch"
    for _, call in torch_calls:
        assert pin in pip_requirements(call), f"torch must be installed as {pin}: {call}"
        assert flag(call, "--index-url") == TORCH_CPU_INDEX, f"torch must come from {TORCH_CPU_INDEX} only: {call}"


def test_dockerfile_installs_the_project_after_torch():
    calls = pip_calls()
    project = [i for i, c in calls if "." in pip_requirements(c) or "/app" in pip_requirements(c)]
    torch = [i for i, c in calls if any(r.startswith("torch") for r in pip_requirements(c))]
    assert project, "the project itself is never pip-installed"
    assert torch and max(torch) < min(project), "torch (CPU) must be installed before the project pulls in a CUDA build"
    for i, call in calls:
        if i in project:
            assert flag(call, "--index-url") is None, "the project's other dependencies are on PyPI"


def test_dockerfile_copies_every_package_before_installing():
    install_at = min(i for i, c in pip_calls() if "." in pip_requirements(c))
    copied: set[str] = set()
    for i, args in instructions("COPY"):
        if i < install_at:
            copied.update(PurePosixPath(s).name for s in shlex.split(args)[:-1] if not s.startswith("--"))
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert "pyproject.toml" in copied
    assert packages <= copied, f"not copied before `pip install .`: {sorted(packages - copied)}"


def test_dockerfile_compiles_the_hot_path():
    # setup.py compiles events/native.py's modules with mypyc: it needs setup.py in the
    # build context and a C compiler in the layer that installs the project.
    install_at, run = next((i, args) for i, args in instructions("RUN")
                           if any("." in pip_requirements(c) for c in pip_installs(args)))
    copied = {PurePosixPath(s).name for i, args in instructions("COPY") if i < install_at
              for s in shlex.split(args)[:-1]}
    assert "setup.py" in copied
    before_pip = run[: run.index("pip install")]
    assert re.search(r"apt-get install\b[^&]*\bgcc\b", before_pip), "no C compiler before `pip install .`"
    assert "RECSTREAM_PURE_PYTHON" not in DOCKERFILE_TEXT
    # The copied sources leave the WORKDIR after the install, or `python -m ...` there would
    # import them (plain Python) instead of the compiled modules in site-packages.
    after_pip = run[run.index("pip install"):]
    removed = set(re.search(r"rm -rf ((?:[\w.]+ ?)+)$", after_pip.strip()).group(1).split())
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= removed, f"left in {dockerfile_workdir()}: {sorted(packages - removed)}"


def test_dockerfile_runs_as_a_non_root_user():
    users = instructions("USER")
    assert users, "no USER: the container would run as root"
    user = users[-1][1].split(":")[0]
    assert user not in ("root", "0")
    if not user.isdigit():
        creates = re.compile(rf"\b(useradd|adduser)\b.*\b{re.escape(user)}\b")
        created = [a for i, a in instructions("RUN") if i < users[-1][0] and creates.search(a)]
        assert created, f"USER {user} is never created"
    assert users[-1][0] > max(i for i, _ in pip_calls()), "install as root, then drop privileges"


def test_dockerfile_default_command_is_the_dataflow():
    cmds = instructions("CMD")
    assert cmds, "no CMD"
    assert json.loads(cmds[-1][1])[:4] == ["python", "-m", "bytewax.run", "dataflows.features"]


def test_dockerignore_keeps_local_state_out_of_the_build():
    lines = {ln.strip().rstrip("/") for ln in (ROOT / ".dockerignore").read_text().splitlines()}
    lines = {ln.removeprefix("**/") for ln in lines if ln and not ln.startswith("#")}
    for name in (".venv", ".git", "data", "artifacts", "reports", "__pycache__", ".broker", ".pytest_cache",
                 "*.so", "events/_native_build.py"):  # a checkout's own build must not shadow the image's
        assert name in lines, f".dockerignore does not exclude {name}"
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert not (lines & (packages | {"pyproject.toml"})), "the build needs these"
