"""Same input, same output bytes: the features flow of this tree against another commit's.

A refactoring must not change what the flow writes. This script generates one fixed history
(seeded, with every kind of fault), trains a small DLRM on it once, then runs the backfill of
``dataflows.features`` twice over that history on one embedded broker, each run into its own
output topics: once with the code of ``--base`` (a commit, its Python source) and once with
this working tree (as installed, compiled when built). It then compares every output topic
(user-features, item-features, scores, event-features, dead-letters) as multisets of
(key, value) and the examples files byte for byte, and exits 1 when anything differs. A second
pair of runs without model, examples or event features checks the features-only mode (which
counts windows without computing vectors) the same way.

    python -m benchmarks.check_identical                 # against HEAD (the last commit)
    python -m benchmarks.check_identical --base HEAD~3 --events 300000
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from broker.admin import ensure_topics
from broker.console import read_topic
from broker.embedded import EmbeddedBroker
from common.config_cli import config_parser, option, require_field, run_cli

ROOT = Path(__file__).resolve().parent.parent
#: output destination -> the environment variable naming its topic (None: a flag names it)
OUTPUTS = {"user-features": "TOPIC_USER_FEATURES", "item-features": "TOPIC_ITEM_FEATURES", "scores": "TOPIC_SCORES",
           "dead-letters": "TOPIC_DEAD_LETTERS", "event-features": None}


@dataclass(frozen=True)
class CheckConfig:
    base: str = option("HEAD", "the commit whose flow is the reference")
    events: int = option(100_000, "events of generated history")
    seed: int = option(7, "seed of the history and of the model")
    model: bool = option(True, "train a small DLRM on the history and score with it (the scores topic)")

    def __post_init__(self) -> None:
        require_field(self.events >= 1000, "CheckConfig", "events", ">= 1000", self.events)


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False, text=True)
    if done.returncode != 0:
        msg = f"{' '.join(cmd)} failed ({done.returncode}) in {cwd}:\n{done.stderr[-3000:]}"
        raise RuntimeError(msg)


def _export(ref: str, into: Path) -> str:
    """The tree of commit ``ref`` written under ``into``; returns the full commit id."""
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    if commit.returncode != 0:
        msg = f"--base {ref!r} is not a commit of {ROOT}"
        raise ValueError(msg)
    archive = subprocess.run(["git", "archive", commit.stdout.strip()], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return commit.stdout.strip()


def _digest(records: list[tuple[bytes, bytes]]) -> str:
    h = hashlib.sha256()
    for key, value in sorted(records):
        h.update(len(key).to_bytes(4, "little") + key + len(value).to_bytes(4, "little") + value)
    return h.hexdigest()[:16]


def _flow_outputs(tree: Path, history: Path, model: Path | None, bootstrap: str, examples: Path | None, pure: bool,
                  ) -> dict[str, tuple[int, str]]:
    """Run the backfill of ``tree``'s flow into fresh topics; per destination (records, digest).

    ``examples`` None: a features-only run (no model, no examples, no event features), which
    counts windows without computing vectors.
    """
    run_id = uuid.uuid4().hex[:8]
    topics = {name: f"identical-{run_id}-{name}" for name in OUTPUTS}
    ensure_topics(bootstrap, list(topics.values()))
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PYTHONPATH": str(tree)}
    env.pop("RECSTREAM_PURE_PYTHON", None)
    if pure:
        env["RECSTREAM_PURE_PYTHON"] = "1"
    env |= {var: topics[name] for name, var in OUTPUTS.items() if var}
    outputs = ["--model", "none", "--examples-out", "none"] if examples is None else [
        "--model", str(model) if model else "none", "--examples-out", str(examples),
        "--event-features-topic", topics["event-features"]]
    _run([sys.executable, "-m", "dataflows.features", "--backfill", "--input", str(history), *outputs,
          "--progress-interval", "60"], tree, env)
    result = {}
    for name, topic in topics.items():
        records = [(r.key or b"", r.value or b"") for r in read_topic(bootstrap, topic)]
        result[name] = (len(records), _digest(records))
    return result


def check(cfg: CheckConfig) -> bool:
    """Run both flows and print the comparison; True when every output is identical."""
    with tempfile.TemporaryDirectory(prefix="check-identical-") as tmp:
        work = Path(tmp)
        base_tree = work / "base"
        commit = _export(cfg.base, base_tree)
        history = work / "history.jsonl"
        print(f"history: {cfg.events:,} events (seed {cfg.seed}, with faults) ...", flush=True)
        _run([sys.executable, "-m", "producers.synthetic", "--backfill", "--sink", "jsonl", "--out", str(history),
              "--no-truth", "--seed", str(cfg.seed), "--count", str(cfg.events), "--rate", "100", "--start", "2026-11-02T08:00:00Z",
              "--faults", "malformed=0.001,missing=0.001,invalid=0.001,duplicate=0.002,late=0.002"], ROOT)
        model = None
        if cfg.model:
            print("model: backfill examples and a small DLRM (this tree) ...", flush=True)
            examples = work / "train.examples.jsonl"
            _run([sys.executable, "-m", "dataflows.features", "--backfill", "--input", str(history), "--output", "none",
                  "--model", "none", "--examples-out", str(examples)], ROOT)
            model = work / "dlrm.pt"
            _run([sys.executable, "-m", "models.train", "--examples", str(examples), "--out", str(model), "--epochs", "1",
                  "--seed", str(cfg.seed), "--val-fraction", "0.2", "--test-fraction", "0.1", "--label-wait-s", "10"], ROOT)
        broker = EmbeddedBroker(port=0, log_path=work / "tansu.log")
        bootstrap = broker.start()
        try:
            t0 = time.monotonic()
            base = _flow_outputs(base_tree, history, model, bootstrap, work / "base.examples.jsonl", pure=True)
            print(f"base {commit[:12]} (Python source): {time.monotonic() - t0:.0f} s", flush=True)
            t0 = time.monotonic()
            head = _flow_outputs(ROOT, history, model, bootstrap, work / "head.examples.jsonl", pure=False)
            print(f"this tree (as installed): {time.monotonic() - t0:.0f} s", flush=True)
            base_windows = _flow_outputs(base_tree, history, None, bootstrap, None, pure=True)
            head_windows = _flow_outputs(ROOT, history, None, bootstrap, None, pure=False)
            print("features-only runs (windows without vectors): done", flush=True)
        finally:
            broker.stop()
        same = True
        print(f"\n{'output':<30} {'base records':>12} {'tree records':>12}  identical")
        for run, (a_out, b_out) in (("", (base, head)), (" (features only)", (base_windows, head_windows))):
            for name in OUTPUTS:
                if run and a_out[name][0] == b_out[name][0] == 0:
                    continue  # not written by a features-only run
                ok = a_out[name] == b_out[name]
                same &= ok
                print(f"{name + run:<30} {a_out[name][0]:>12,} {b_out[name][0]:>12,}  {'yes' if ok else 'NO'}")
        a, b = (work / "base.examples.jsonl").read_bytes(), (work / "head.examples.jsonl").read_bytes()
        lines_a, lines_b = a.count(b"\n"), b.count(b"\n")
        ok = a == b
        same &= ok
        print(f"{'examples file':<30} {lines_a:>12,} {lines_b:>12,}  {'yes' if ok else 'NO'}")
        print("\nidentical" if same else "\nDIFFERENT: this tree's flow does not write what the base wrote")
        return same


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(CheckConfig, "benchmarks.check_identical",
                           "Compare the features flow's outputs for one fixed history: this tree vs a base commit.")
    outcome: list[bool] = []
    rc = run_cli(parser, argv, CheckConfig, lambda cfg: outcome.append(check(cfg)), (RuntimeError, OSError))
    return rc or (0 if outcome and outcome[0] else 1)


if __name__ == "__main__":
    sys.exit(main())
