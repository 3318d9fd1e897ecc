"""A small reports folder with every part the run report shows, written the way a run writes it.

* real explorations: the producer's JSONL (a few thousand events, seed 7) and an OTTO-format
  file of made-up sessions (OTTO's own sample is not in the repository), through
  :func:`reporting.explore.explore`;
* slates summed up by :func:`reporting.slates.summarize` from made-up slate records;
* the JSON reports of the DLRM evaluation, retrieval, an experiment, the experiment checks,
  the producer's history and a flow run: trimmed copies of real outputs in
  ``tests/fixtures/run_reports/``; their PNGs are drawn here (small, with matplotlib) under the
  names the commands give them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson
from matplotlib.figure import Figure

from reporting.explore import ExploreConfig, explore
from reporting.slates import summarize

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "run_reports"
REPO = Path(__file__).resolve().parent.parent
T0 = 1_659_304_800_000  # 2022-07-31T22:00:00Z, where OTTO's data starts
#: the PNGs the commands write beside their JSON reports (models.evaluate, models.evaluate_retrieval,
#: experiments.analyze / offline, make bench-experiments)
PNGS = ("roc.png", "calibration.png", "training_curve.png", "retrieval_recall.png", "retrieval_tsne_items.png",
        "retrieval_tsne_users.png", "experiments/offline_ctr.png", "experiments/offline_lift.png",
        "experiments/offline_pvalue.png", "experiments/checks/aa_pvalues.png")


def small_png(path: Path, label: str) -> None:
    fig = Figure(figsize=(3, 2), dpi=50)
    ax = fig.subplots()
    ax.plot([0, 1, 2], [0, 1, 0.5])
    ax.set_title(label)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def generated_history(path: Path, count: int = 4000, seed: int = 7, sink: str = "jsonl") -> Path:
    """The producer's backfill of ``count`` events to a file (no truth, no profiles)."""
    subprocess.run([sys.executable, "-m", "producers.synthetic", "--backfill", "--sink", sink, "--out", str(path),
                    "--count", str(count), "--seed", str(seed), "--no-truth", "--no-profiles",
                    "--start", "2026-01-05T00:00:00Z"],
                   check=True, capture_output=True, cwd=REPO)
    return path


def otto_lines(sessions: int = 12) -> list[bytes]:
    """OTTO-format session lines: clicks, a cart and an order, with a 2-hour gap (two visits) in each."""
    lines = []
    for s in range(sessions):
        events = []
        for k in range(6 + s):
            ts = T0 + s * 60_000 + k * 30_000 + (7_200_000 if k >= 4 else 0)
            events.append({"aid": (s * 3 + k) % 25, "ts": ts, "type": "clicks"})
        events.append({"aid": s % 25, "ts": events[-1]["ts"] + 1000, "type": "carts"})
        if s % 3 == 0:
            events.append({"aid": s % 25, "ts": events[-1]["ts"] + 1000, "type": "orders"})
        lines.append(orjson.dumps({"session": 1000 + s, "events": events}))
    return lines


def slate_lines(n: int = 6) -> list[bytes]:
    """Slate records as the flow writes them (slates/ranker.py), one of them cold start."""
    out = []
    for r in range(n):
        cold = r == 0
        out.append(orjson.dumps({
            "request_id": f"s{r}", "user_id": f"u{r % 4}", "ts": T0 + r * 1000, "source": "session_start", "k": 3,
            "cold_start": cold,
            "slate": [{"item_id": f"i{(r + j) % 5}", "rank": j + 1, "retrieval_score": None if cold else 1.0 - j / 10,
                       "score": None if cold else 0.5 - j / 20} for j in range(3)],
        }))
    return out


def write_reports(folder: Path, history: Path) -> Path:
    """Fill ``folder`` with every report the page shows; ``history`` is a producer JSONL file."""
    shutil.copytree(FIXTURES, folder, dirs_exist_ok=True)
    for name in PNGS:
        small_png(folder / name, name)
    quiet = lambda line: None  # noqa: E731
    explore(ExploreConfig(input=str(history), generator_seed=7, out=str(folder / "explore" / "generated")), quiet)
    otto = folder.parent / "otto_train.jsonl"
    otto.write_bytes(b"\n".join(otto_lines()) + b"\n")
    explore(ExploreConfig(input=str(otto), out=str(folder / "explore" / "otto")), quiet)
    summary = {"topic": "recommendations"} | summarize(iter([*slate_lines(), b"not a slate"]))
    (folder / "slates.json").write_bytes(orjson.dumps(summary))
    return folder
