"""Benchmark of the DLRM: bare forward passes and the batch scorer, one torch thread.

``python -m benchmarks.bench_model`` prints a markdown table. Rows:

* ``forward``: ``DLRM.forward`` (``nn.Module``) under ``torch.inference_mode()``;
* ``frozen``: :class:`models.dlrm.FrozenDLRM`, the same arithmetic as plain tensor ops,
  which the scorer runs;
* ``featurize``: :func:`features.spec.featurize` alone (counts and context -> inputs), in
  steady state: the bucket-id cache already holds the batch's ids, as it does after the
  first batches of a stream over a bounded population of users and items;
* ``featurize, cold cache``: the same with the bucket-id cache emptied before every call,
  the cost when no id repeats (every id is hashed with crc32);
* ``Scorer.score``: featurize + normalise + pad + frozen forward + sigmoid, end to end;

for the default model (sized for our features) and the seed notebook's model (13 dense,
10 x 100-row tables, D 64, 512-256-64 / 512-256-1), at batch sizes 1, 64, 256, 1024. The
weights are untrained: speed does not depend on their values. The views come from
:func:`models.scorer.random_views`: 10,000 users and 5,000 items with heavy-tailed activity,
like the generator's default world. ``--what`` picks the rows. Each row is measured
``--repeats`` times for ``--seconds`` each after a warm-up; events/s = batch / p50 of the
per-batch latency (median over repeats).

The same-run baseline is the bare model forward, ``frozen`` (always measured): the first
table gives every other row's events/s / the frozen forward's for the same model and batch
size (the machine's speed varies about 2x from day to day, these ratios much less; below
1 means slower than the bare forward), the second the absolute figures (events/s, p50 and
p99 ms) with the date, the machine and the load average.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypedDict

import numpy as np
import torch

from benchmarks.common import conditions, headline
from features.spec import FeatureSpec, clear_bucket_cache, featurize
from models.artifact import ModelArtifact
from models.data import Normaliser
from models.dlrm import DLRM, DLRMConfig, FrozenDLRM
from models.scorer import Scorer, random_views


@dataclass(frozen=True)
class BenchConfig:
    """What to measure and for how long."""

    batch_sizes: tuple[int, ...] = (1, 64, 256, 1024)  # events per call
    repeats: int = 5  # measurements per row; the table shows their median
    seconds: float = 0.4  # wall time per measurement, after warm-up
    min_calls: int = 30  # calls per measurement at least, however slow
    what: tuple[str, ...] = ("forward", "frozen", "featurize", "score")  # which rows to measure


def measure(call: Callable[[], object], cfg: BenchConfig) -> tuple[float, float]:
    """Median over repeats of (p50, p99) seconds per call."""
    for _ in range(5):
        call()
    p50s, p99s = [], []
    for _ in range(cfg.repeats):
        times: list[float] = []
        end = time.perf_counter() + cfg.seconds
        while time.perf_counter() < end or len(times) < cfg.min_calls:
            t = time.perf_counter()
            call()
            times.append(time.perf_counter() - t)
        p50s.append(float(np.percentile(times, 50)))
        p99s.append(float(np.percentile(times, 99)))
    return statistics.median(p50s), statistics.median(p99s)


def model_inputs(cfg: DLRMConfig, b: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    dense = torch.from_numpy(rng.normal(size=(b, cfg.num_dense)).astype(np.float32))  # (B, N)
    sparse = torch.from_numpy(np.stack([rng.integers(0, rows, b) for rows in cfg.sparse_cardinalities], axis=1))  # (B, F)
    return dense, sparse


def default_scorer() -> Scorer:
    spec = FeatureSpec()
    torch.manual_seed(0)
    model = DLRM(DLRMConfig.for_spec(spec))
    n = len(spec.dense_names)
    normaliser = Normaliser(mean=np.zeros(n, dtype=np.float32), inv_std=np.ones(n, dtype=np.float32))
    artifact = ModelArtifact(config=model.config, spec=spec, state_dict=model.state_dict(), normaliser=normaliser, split={})
    return Scorer(artifact)


class Row(TypedDict):
    """One measured row of the table."""

    what: str
    model: str
    batch: int
    events_per_s: float
    p50_ms: float
    p99_ms: float


def run(cfg: BenchConfig) -> list[Row]:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    rows: list[Row] = []

    def add(what: str, model: str, b: int, call: Callable[[], object]) -> None:
        p50, p99 = measure(call, cfg)
        rows.append({"what": what, "model": model, "batch": b, "events_per_s": b / p50, "p50_ms": p50 * 1e3, "p99_ms": p99 * 1e3})

    models = (("default", DLRMConfig()), ("seed notebook", DLRMConfig.seed_notebook()))
    for name, model_cfg in models if {"forward", "frozen"} & set(cfg.what) else ():
        torch.manual_seed(0)
        model = DLRM(model_cfg).eval()
        frozen = FrozenDLRM(model)
        for b in cfg.batch_sizes:
            dense, sparse = model_inputs(model_cfg, b, rng)
            with torch.inference_mode():
                if "forward" in cfg.what:
                    add("forward", name, b, partial(model, dense, sparse))
                if "frozen" in cfg.what:
                    add("frozen", name, b, partial(frozen, dense, sparse))
    scorer = default_scorer()
    spec = FeatureSpec()

    def cold(x: dict[str, Any]) -> object:
        clear_bucket_cache()
        return featurize(spec, *x.values())

    for b in cfg.batch_sizes:
        batch = random_views(b, rng)
        if "featurize" in cfg.what:
            add("featurize", "default", b, partial(featurize, spec, *batch.values()))
            add("featurize, cold cache", "default", b, partial(cold, batch))
        if "score" in cfg.what:
            add("Scorer.score", "default", b, partial(scorer.score, **batch))
    return rows


def markdown(rows: list[Row]) -> str:
    lines = ["| what | model | batch | events/s | p50 ms | p99 ms |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    lines.extend(f"| {r['what']} | {r['model']} | {r['batch']} | {r['events_per_s']:,.0f} | {r['p50_ms']:.3f} "
                 f"| {r['p99_ms']:.3f} |" for r in rows)
    return "\n".join(lines)


def ratios(rows: list[Row]) -> dict[tuple[str, str], dict[int, float]]:
    """(what, model) -> {batch: events/s / the frozen forward's, same model and batch}, frozen rows left out."""
    bare = {(r["model"], r["batch"]): r["events_per_s"] for r in rows if r["what"] == "frozen"}
    out: dict[tuple[str, str], dict[int, float]] = {}
    for r in rows:
        base = bare.get((r["model"], r["batch"]))
        if r["what"] != "frozen" and base:
            out.setdefault((r["what"], r["model"]), {})[r["batch"]] = r["events_per_s"] / base
    return out


def ratio_markdown(table: dict[tuple[str, str], dict[int, float]], batches: tuple[int, ...]) -> str:
    lines = ["| what | model | " + " | ".join(f"batch {b:,}" for b in batches) + " | against (same run) |",
             "| --- | --- | " + " | ".join("---:" for _ in batches) + " | --- |"]
    for (what, model), by_batch in table.items():
        cells = " | ".join(f"{by_batch[b]:.2f}" if b in by_batch else "-" for b in batches)
        lines.append(f"| {what} | {model} | {cells} | frozen forward, same model and batch |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    d = BenchConfig()
    p = argparse.ArgumentParser(prog="benchmarks.bench_model", description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=list(d.batch_sizes), help=f"(default: {d.batch_sizes})")
    p.add_argument("--repeats", type=int, default=d.repeats, help=f"(default: {d.repeats})")
    p.add_argument("--seconds", type=float, default=d.seconds, help=f"per measurement (default: {d.seconds})")
    p.add_argument("--what", nargs="+", choices=d.what, default=list(d.what), help=f"rows to measure (default: {' '.join(d.what)})")
    args = p.parse_args(argv)
    what = tuple(dict.fromkeys([*args.what, "frozen"]))  # the baseline is always measured
    cfg = BenchConfig(batch_sizes=tuple(args.batch_sizes), repeats=args.repeats, seconds=args.seconds, what=what)
    rows = run(cfg)
    table = ratios(rows)
    score = table.get(("Scorer.score", "default"), {})
    if score:
        batch = 1024 if 1024 in score else max(score)
        headline("bench_model", f"Scorer.score / bare forward (default model, batch {batch:,})", score[batch],
                 "frozen forward")
    print(f"DLRM, torch {torch.__version__}, 1 thread: events/s / the bare (frozen) forward's, same run\n")
    print(ratio_markdown(table, cfg.batch_sizes))
    print(f"\nAbsolute figures, median of {cfg.repeats} repeats; {conditions()}\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
