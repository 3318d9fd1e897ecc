"""The compiled hot path (events/native.py) and its Python source write the same bytes.

A seeded event log with every kind of bad input runs through the partition and item stages
in subprocesses, once as installed (compiled) and once with ``RECSTREAM_PURE_PYTHON=1``:
records, vectors and follow-ups must be identical, and a snapshot taken mid-stream by one
build must resume in the other to the same outputs.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from events import native

ROOT = Path(__file__).resolve().parents[2]
BATCH = 150


def run_log(mode: str, snapshot: str) -> None:
    """Feed a fixed log; print the build and a digest of everything the stages emitted.

    ``mode``: ``whole`` (no interruption), ``first`` (stop halfway, pickle the states to
    ``snapshot``) or ``second`` (resume from ``snapshot``, feed the rest).
    """
    from features.config import FeaturesConfig
    from features.local import LocalPipeline
    from features.partition_stage import RawBatch
    from tests.eventlog import T0, make_log

    parts = make_log(seed=11, n=3000, partitions=3, faults=True, future_ts=T0 + 30 * 86_400_000)
    batches = [(p, i, values[i:i + BATCH]) for p, values in enumerate(parts) for i in range(0, len(values), BATCH)]
    batches.sort(key=lambda b: (b[1], b[0]))  # partitions interleaved, each in its own order
    half = len(batches) // 2
    windows_only = os.environ.get("WINDOWS_ONLY") == "1"
    pipeline = LocalPipeline(FeaturesConfig(), partitions=3, want_follow_ups=not windows_only,
                             vectors_for="none" if windows_only else "all", keep_events=not windows_only,
                             want_contexts=not windows_only)
    if mode == "second":
        pipeline.partitions, pipeline.shards = pickle.loads(Path(snapshot).read_bytes())
    todo = {"whole": batches, "first": batches[:half], "second": batches[half:]}[mode]
    for n, (p, offset, values) in enumerate(todo):
        wall = T0 + 86_400_000 + 4_000 * (n + (half if mode == "second" else 0))  # ahead of the log; 4 s per batch
        pipeline.feed(RawBatch("t", p, list(range(offset, offset + len(values))), values, wall_ms=wall))
    if mode == "first":
        Path(snapshot).write_bytes(pickle.dumps((pipeline.partitions, pipeline.shards), protocol=5))
        out = pipeline.out
    else:
        out = pipeline.finish()
    emitted = ([repr(r) for r in out.records], [repr((v.event["event_id"], v.fields()[1:])) for v in out.vectors],
               [repr(f) for f in out.follow_ups])
    earlier = Path(snapshot + ".out")
    if mode == "first":
        earlier.write_bytes(pickle.dumps(emitted))
    elif mode == "second":  # what the first half emitted, then this half
        emitted = tuple(a + b for a, b in zip(pickle.loads(earlier.read_bytes()), emitted, strict=True))
    digest = hashlib.sha256("\n".join("\n".join(kind) for kind in emitted).encode()).hexdigest()
    print(json.dumps({"build": native.build(), "digest": digest, "records": len(emitted[0]),
                      "vectors": len(emitted[1])}))


def _run(mode: str, pure: bool, snapshot: Path, windows_only: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (native.PURE_ENV, "WINDOWS_ONLY")}
    if windows_only:
        env["WINDOWS_ONLY"] = "1"
    if pure:
        env[native.PURE_ENV] = "1"
    code = f"from tests.contract.test_native_build import run_log; run_log({mode!r}, {str(snapshot)!r})"
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def compiled_available() -> None:
    if os.environ.get(native.PURE_ENV) == "1":
        pytest.skip("this suite runs on the Python source (RECSTREAM_PURE_PYTHON=1)")
    missing = [m for m in native.COMPILED if native.compiled_path(m) is None]
    assert not missing, f"not compiled: {missing}; run `make venv` (pip install -e .)"
    assert not native.stale_modules(), "compiled modules are older than their source: run `make venv`"


def test_both_builds_emit_the_same_bytes(compiled_available, tmp_path):
    compiled = _run("whole", pure=False, snapshot=tmp_path / "unused")
    pure = _run("whole", pure=True, snapshot=tmp_path / "unused")
    assert (compiled["build"], pure["build"]) == ("compiled", "python")
    assert compiled["records"] > 100 and compiled["vectors"] > 1000
    assert compiled["digest"] == pure["digest"]


@pytest.mark.parametrize(("first_pure", "second_pure"), [(False, True), (True, False), (False, False)])
def test_a_snapshot_resumes_in_either_build(compiled_available, tmp_path, first_pure, second_pure):
    whole = _run("whole", pure=True, snapshot=tmp_path / "unused")
    first = _run("first", pure=first_pure, snapshot=tmp_path / "state.pickle")
    resumed = _run("second", pure=second_pure, snapshot=tmp_path / "state.pickle")  # digests both halves
    assert 0 < first["records"] < whole["records"] and 0 < first["vectors"] < whole["vectors"]
    assert (resumed["digest"], resumed["records"], resumed["vectors"]) == (whole["digest"], whole["records"], whole["vectors"])


def test_both_builds_count_the_same_windows_without_vectors(compiled_available, tmp_path):
    compiled = _run("whole", pure=False, snapshot=tmp_path / "unused", windows_only=True)
    pure = _run("whole", pure=True, snapshot=tmp_path / "unused", windows_only=True)
    assert compiled["records"] > 100 and compiled["vectors"] == 0
    assert compiled["digest"] == pure["digest"]


def test_stale_compiled_modules_are_detected_by_content(tmp_path):
    recorded = {}
    for module in native.COMPILED:
        source = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"# {module}\n")
        built = source.with_name(source.stem + importlib.machinery.EXTENSION_SUFFIXES[0])
        built.write_bytes(b"")
        os.utime(source, (3_000, 3_000))  # newer than its build, as a wheel install leaves it: not stale
        os.utime(built, (2_000, 2_000))
        recorded[module] = native.source_digest(module, tmp_path)
    assert native.stale_modules(tmp_path, recorded) == []
    (tmp_path / "features" / "tiles.py").write_text("# edited\n")
    assert native.stale_modules(tmp_path, recorded) == ["features.tiles"]
    assert native.stale_modules(tmp_path, {}) == list(native.COMPILED)  # built without a record


def test_the_installed_build_recorded_its_sources(compiled_available):
    assert set(native.recorded_digests()) == set(native.COMPILED)


def test_the_switch_runs_the_python_source():
    code = "from events import native; import features.tiles as t; print(native.build(), t.__file__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, native.PURE_ENV: "1"},
                          capture_output=True, text=True, check=True)
    build, path = done.stdout.split()
    assert build == "python" and path.endswith("features/tiles.py")


def test_make_reinstalls_when_a_compiled_source_changes():
    # The Makefile asks events.hotpath for the list (no copy of it): read what make expanded.
    dump = subprocess.run(["make", "-pn", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in dump.splitlines() if ln.startswith("COMPILED_SOURCES :="))
    listed = set(line.partition(":=")[2].split())
    assert listed == {"setup.py", "events/native.py"} | {str(native.source_path(m).relative_to(ROOT)) for m in native.COMPILED}


def test_the_flow_says_when_it_runs_the_python_source(compiled_available, tmp_path):
    from tests.eventlog import make_log, write_jsonl

    source = write_jsonl(tmp_path / "in.jsonl", make_log(3, n=200, partitions=1, faults=False)[0])
    cmd = [sys.executable, "-m", "dataflows.features", "--backfill", "--input", str(source), "--output", "none",
           "--examples-out", str(tmp_path / "ex.jsonl"), "--model", "none"]
    env = {k: v for k, v in os.environ.items() if k != native.PURE_ENV}
    for pure in (False, True):
        run_env = {**env, native.PURE_ENV: "1"} if pure else env
        done = subprocess.run(cmd, cwd=ROOT, env=run_env, capture_output=True, text=True, check=True)
        said = [line for line in done.stderr.splitlines() if "runs as plain Python" in line]
        assert said == ([f"features: the hot path runs as plain Python, ~1.4x slower: {native.PURE_ENV}=1"]
                        if pure else [])
