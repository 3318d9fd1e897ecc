"""Benchmark of DLRM scoring: inside the flow vs the bare forward, and features + scoring Kafka to Kafka.

``python -m benchmarks.bench_scoring`` trains a model on generated history first (about
20 s; see :func:`benchmarks.common.train_model`) unless ``--model PATH`` is given, then
measures two things.

**A. Scoring throughput inside the flow vs the bare model forward** (one process, one
torch thread, batch sizes 64, 256, 1024, 2048 views). The input is realistic: completed
point-in-time vectors of views from a real features run, :class:`features.local.LocalPipeline`
(the flow's own stage logic, ``vectors_for="views"`` as in the flow) fed by the flow's
JSONL source over generated events. For each batch size the views are cut into
consecutive batches (up to 8 different ones, used in turn), and three calls are timed on
exactly the same views:

* ``bare forward``: the model's forward only, the frozen DLRM that :class:`Scorer` runs
  (``FrozenDLRM(artifact.build_model())``), on inputs already featurized and normalised,
  under ``torch.inference_mode()``;
* ``Scorer.score``: featurize + normalise + pad + forward + sigmoid, from count arrays
  and context lists prepared beforehand;
* ``in flow (VectorOutputs)``: the flow's scoring step itself,
  :class:`features.outputs.VectorOutputs` built as ``build_flow`` builds it, called with
  one runtime batch of completed vectors: unpacks the counts, gathers the context,
  ``Scorer.score``, and formats one score record (orjson) per view.

Events/s = views per call / mean seconds per call over a ``--seconds`` window; the three
calls are measured in turn, ``--repeats`` times, so load from other processes hits them
alike. The garbage collector runs as in the flow (``build_flow``'s thresholds, and the
prepared views frozen like the flow's long-lived state); the batches are warmed up first,
so caches (e.g. bucket ids of users and items) are as warm as in a running stream. The
table gives the median over repeats with the min-max spread, and the ratio in-flow / bare
forward (median of the per-repeat ratios; target: at least 0.5). A second
table splits the in-flow microseconds per view into its parts, each timed alone on the
same batches (``vector_counts``, ``featurize``, ``Scorer.score_features``, the
``score_records``; the rest is gathering the context lists and glue). With
``--seed-widths`` the same tables follow for an untrained model with the seed notebook's
widths (D 64, bottom 512-256-64, top 512-256-1) on our features: speed does not depend on
the weights, and it shows how the ratio depends on the size of the forward pass.

**B. Features plus scoring, Kafka to Kafka, one worker and two processes** (as ``bench_features``): an
embedded broker, ``--events`` generated interactions (backfill, 1,000 events/s of event
time) in a 4-partition topic, then ``python -m dataflows.features --backfill
--examples-out none`` over the whole topic, alternately with ``MODEL_PATH=none``
(features only) and with the model (every view scored and written to a fresh scores
topic), and the bare consume+parse+count loop (:func:`benchmarks.common.bare_loop`) over the
same topic once per round, the same-run baseline. Events/s counts input records from the
first one read to the end of the run; peak RSS is the flow process's maximum resident set;
"scoring cost" is the difference of the two medians in microseconds per input event. Target: at least 80,000 events/s with
the model on one worker. ``--processes 1 2`` (the default) repeats both for two cooperating
processes (``-i 0/1 -a ...``): records summed, the slower process's time, RSS summed.

The runs with the model go through a probe, ``python -m benchmarks.bench_scoring
--probe-flow FLOW-ARGS``: the same ``dataflows.features`` main in a process that first
wraps three functions with timers (``VectorOutputs.__call__``, ``Scorer.score`` and
``FrozenDLRM.__call__``: a few microseconds per runtime batch, nothing per event); the
features-only runs are plain ``python -m dataflows.features`` (the probe imports torch,
which would inflate their peak RSS by ~150 MiB). It
reports how the real flow batches its views (views per scoring call) and how long its
scoring step and the forward inside it took, so a third table gives the in-flow
throughput against the bare forward at the flow's own batch sizes, and the step's share
of the flow's time.

Every part leads with its ratios against the same run's baseline (A: the bare forward; B:
the bare loop), since the machine's speed varies about 2x from day to day and these ratios
much less; the absolute figures follow with the date, the machine and the load average.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import (
    FlowRun,
    add_flow_run_arguments,
    bare_loop,
    conditions,
    describe_model,
    generate_jsonl,
    headline,
    log_stderr,
    produce_input,
    ratio_table,
    run_flow,
    spread,
    throwaway_topics,
    train_model,
)
from broker.admin import ensure_topics
from broker.embedded import EmbeddedBroker
from dataflows.files import JsonlSource
from dataflows.gc_policy import GC_THRESHOLDS  # what build_flow sets for the flow process
from features.config import FeaturesConfig
from features.item_stage import Vector, Vectors
from features.local import LocalPipeline
from features.outputs import VectorOutputs, vector_counts
from features.records import score_records
from features.spec import featurize
from models.dlrm import DLRM, DLRMConfig, FrozenDLRM
from models.scorer import Scorer

INFLOW_TARGET = 0.5  # in-flow events/s / bare forward events/s
KAFKA_TARGET = 80_000.0  # features + scoring, events/s, one worker
PROBE_FLAG = "--probe-flow"
PROBE_LINE = re.compile(r"^probe: (\{.*\})$", re.MULTILINE)


def realistic_vectors(events: int, seed: int, log: Callable[[str], None] = log_stderr) -> list[Vector]:
    """Completed vectors of views from the flow's own stage logic over ``events`` generated events."""
    config = FeaturesConfig()
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        path = Path(tmp) / "events.jsonl"
        generate_jsonl(path, "--backfill", "--count", str(events), "--seed", str(seed), "--no-truth")
        source = JsonlSource(path, partitions=4)
        pipeline = LocalPipeline(config, source.partitions, vectors_for="views")
        part = source.build_part("bench", "file", None)
        try:
            while True:
                for batch in part.next_batch():
                    pipeline.feed(batch)
        except StopIteration:
            pass
        finally:
            part.close()
    vectors = pipeline.finish().vectors
    log(f"in-flow: {len(vectors):,} completed view vectors from {events:,} generated events")
    return vectors


@dataclass(frozen=True)
class Batch:
    """One batch of views in every form the timed calls take."""

    vectors: list[Vector]
    score_args: tuple  # Scorer.score's positional arguments
    dense: np.ndarray  # featurized, not normalised (B, N)
    sparse: np.ndarray  # (B, F)
    dense_in: torch.Tensor  # normalised model input (B, N)
    sparse_in: torch.Tensor  # (B, F)
    scores: list[float]
    record_args: tuple[list[str], list[str], list[str], list[int]]  # score_records' event_ids, user_ids, item_ids, ts
    item_as_of: list[int]


def make_batch(vectors: list[Vector], scorer: Scorer, n_groups: int) -> Batch:
    """Prepare every input form of one batch (untimed)."""
    events = [v.event for v in vectors if v.event is not None]
    assert len(events) == len(vectors), "make_batch needs vectors that kept their events"
    args = (
        vector_counts(vectors, n_groups),
        [e["user_id"] for e in events], [e["item_id"] for e in events], [e["category"] for e in events],
        [e["country"] for e in events], [e["device"] for e in events],
        np.array([e["ts"] for e in events], dtype=np.int64), np.array([e["price"] for e in events], dtype=np.float64),
    )
    dense, sparse = featurize(scorer.spec, *args)
    normalised = scorer.artifact.normaliser.apply(dense)
    return Batch(vectors=vectors, score_args=args, dense=dense, sparse=sparse,
                 dense_in=torch.from_numpy(np.ascontiguousarray(normalised, dtype=np.float32)),
                 sparse_in=torch.from_numpy(np.ascontiguousarray(sparse, dtype=np.int64)),
                 scores=scorer.score(*args).tolist(),
                 record_args=([e["event_id"] for e in events], args[1], args[2], args[6].tolist()),
                 item_as_of=[v.item_as_of for v in vectors])


def seconds_per_call(calls: list[Callable[[], object]], seconds: float) -> float:
    """Mean seconds per call, cycling through ``calls`` for ``seconds`` (at least one round)."""
    n, started = 0, time.perf_counter()
    end = started + seconds
    while True:
        for call in calls:
            call()
        n += len(calls)
        now = time.perf_counter()
        if now >= end:
            return (now - started) / n


@dataclass
class InflowRow:
    """Per batch size: events/s of each timed call, one value per repeat."""

    batch: int
    rates: dict[str, list[float]]  # call name -> events/s per repeat
    micros: dict[str, list[float]]  # call or part name -> us per view, per repeat


def seed_width_scorer(trained: Scorer) -> Scorer:
    """An untrained model with the seed notebook's widths on our features (same spec and normalisation)."""
    seed = DLRMConfig.seed_notebook()
    config = replace(trained.artifact.config, embedding_dim=seed.embedding_dim, bottom_mlp=seed.bottom_mlp,
                     top_mlp=seed.top_mlp)
    torch.manual_seed(0)
    return Scorer(replace(trained.artifact, config=config, state_dict=DLRM(config).state_dict()))


def bench_inflow(vectors: list[Vector], scorer: Scorer, batch_sizes: list[int], repeats: int, seconds: float,
                 log: Callable[[str], None] = log_stderr) -> list[InflowRow]:
    """Part A: the flow's scoring step vs Scorer.score vs the bare forward, same views, same batches."""
    torch.set_num_threads(1)
    n_groups = len(FeaturesConfig().horizons)
    formatter = VectorOutputs(n_groups=n_groups, score=scorer.score, model_version=scorer.version)
    forward = FrozenDLRM(scorer.artifact.build_model())
    version = scorer.version
    rows = []
    for b in batch_sizes:
        count = min(8, len(vectors) // b)
        if count < 1:
            msg = f"batch size {b} needs at least {b} vectors, got {len(vectors)}: raise --vector-events"
            raise ValueError(msg)
        batches = [make_batch(vectors[i * b:(i + 1) * b], scorer, n_groups) for i in range(count)]
        gc.collect()
        gc.freeze()  # the prepared views are long-lived state, as the flow's entity state is

        def bare(x: Batch) -> object:
            with torch.inference_mode():
                return forward(x.dense_in, x.sparse_in)

        calls: dict[str, Callable[[Batch], object]] = {
            "bare forward": bare,
            "Scorer.score": lambda x: scorer.score(*x.score_args),
            "in flow (VectorOutputs)": lambda x: formatter([Vectors(x.vectors)]),
        }
        parts: dict[str, Callable[[Batch], object]] = {
            "vector_counts": lambda x: vector_counts(x.vectors, n_groups),
            "featurize": lambda x: featurize(scorer.spec, *x.score_args),
            "normalise + pad + forward + sigmoid": lambda x: scorer.score_features(x.dense, x.sparse),
            "score records": lambda x: score_records(*x.record_args, x.scores, version, x.item_as_of),
        }
        everything = {**calls, **parts}
        for fn in everything.values():  # warm-up: allocator, buffers, caches
            for x in batches:
                fn(x)
        timed: dict[str, list[float]] = {name: [] for name in everything}
        for _ in range(repeats):
            for name, fn in everything.items():
                timed[name].append(seconds_per_call([functools.partial(fn, x) for x in batches], seconds))
        gc.unfreeze()
        row = InflowRow(b, {n: [b / t for t in timed[n]] for n in calls},
                        {n: [1e6 * t / b for t in timed[n]] for n in everything})
        rows.append(row)
        log(f"in-flow: batch {b}: " + ", ".join(f"{n} {statistics.median(r):,.0f}/s" for n, r in row.rates.items()))
    return rows


def verdict(ratio: float) -> str:
    """``met`` or ``missed`` against the in-flow target."""
    return "met" if ratio >= INFLOW_TARGET else "missed"


def inflow_tables(title: str, rows: list[InflowRow], repeats: int, seconds: float) -> str:
    """The markdown tables of part A for one model: ratios first, then absolute figures, then the parts."""
    lines = [(f"A. {title}: scoring throughput / the bare forward's on the same views, same run "
              f"(1 torch thread; median of the {repeats} per-repeat ratios, min - max)"), "",
             ("| batch (views) | Scorer.score / bare forward | in flow (VectorOutputs) / bare forward "
              "| target >= 0.5 |"),
             "| ---: | ---: | ---: | --- |"]
    for r in rows:
        score = [f / b for f, b in zip(r.rates["Scorer.score"], r.rates["bare forward"])]
        ratios = [f / b for f, b in zip(r.rates["in flow (VectorOutputs)"], r.rates["bare forward"])]
        ratio = statistics.median(ratios)
        lines.append(f"| {r.batch:,} | {statistics.median(score):.2f} ({min(score):.2f} - {max(score):.2f}) "
                     f"| {ratio:.2f} ({min(ratios):.2f} - {max(ratios):.2f}) | {verdict(ratio)} |")
    lines += ["", (f"A. {title}: absolute figures, views/s, median | min-max of {repeats} repeats of {seconds:g} s; "
               f"{conditions()}"), "",
              "| batch (views) | bare forward | spread | Scorer.score | spread | in flow (VectorOutputs) | spread |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r.batch:,} | {spread(r.rates['bare forward'])} | {spread(r.rates['Scorer.score'])} "
                     f"| {spread(r.rates['in flow (VectorOutputs)'])} |")
    names = list(rows[0].micros)
    lines += ["", (f"A. {title}: where the in-flow time goes, microseconds per view (median of repeats; parts timed "
               "alone)"), "",
              "| batch | " + " | ".join(names) + " | rest (context lists, glue) |",
              "| ---: | " + " | ".join("---:" for _ in names) + " | ---: |"]
    for r in rows:
        med = {n: statistics.median(v) for n, v in r.micros.items()}
        rest = med["in flow (VectorOutputs)"] - sum(
            med[n] for n in ("vector_counts", "featurize", "normalise + pad + forward + sigmoid", "score records"))
        lines.append(f"| {r.batch:,} | " + " | ".join(f"{med[n]:.2f}" for n in names) + f" | {rest:.2f} |")
    return "\n".join(lines)


def inflow_headline(title: str, rows: list[InflowRow]) -> None:
    """Offer in-flow / bare forward at batch 1,024 (or the largest measured) to run_all's headline table."""
    row = next((r for r in rows if r.batch == 1024), rows[-1])
    ratio = statistics.median(f / b for f, b in zip(row.rates["in flow (VectorOutputs)"], row.rates["bare forward"]))
    headline("bench_scoring", f"in-flow scoring / bare forward ({title}, batch {row.batch:,})", ratio, "bare forward")


def probe_flow(flow_argv: list[str]) -> int:
    """Run ``dataflows.features`` main in this process with timers around its scoring step.

    Prints ``probe: {json}`` to stderr at the end: scoring calls that had views, views,
    and seconds inside ``VectorOutputs.__call__``, ``Scorer.score`` and ``FrozenDLRM.__call__``.
    """
    from dataflows.cli import main as flow_main

    stats: dict[str, Any] = {"calls": 0, "views": 0, "step_s": 0.0, "score_s": 0.0, "forward_s": 0.0}

    def timed(fn: Callable[..., Any], key: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                stats[key] += time.perf_counter() - started
        return wrapper

    step = timed(VectorOutputs.__call__, "step_s")

    def counted_step(self: VectorOutputs, batches: list[Vectors]) -> Any:
        before = self.scored
        out = step(self, batches)
        if self.scored > before:
            stats["calls"] += 1
            stats["views"] += self.scored - before
        return out

    VectorOutputs.__call__ = counted_step  # type: ignore[method-assign]
    Scorer.score = timed(Scorer.score, "score_s")  # type: ignore[method-assign]
    FrozenDLRM.__call__ = timed(FrozenDLRM.__call__, "forward_s")  # type: ignore[method-assign]
    try:
        return flow_main(flow_argv)
    finally:
        print(f"probe: {json.dumps(stats)}", file=sys.stderr, flush=True)


@dataclass
class KafkaResult:
    """Part B: flow runs without and with the model over the same input topic, by process count."""

    events: int
    users: int
    without: dict[int, list[FlowRun]]
    with_model: dict[int, list[FlowRun]]
    loop: list[float]  # the bare loop's events/s, once per round

    @staticmethod
    def probe(run: FlowRun) -> dict[str, Any]:
        """The probe's figures of one run."""
        match = PROBE_LINE.search(run.stderr)
        if match is None:
            msg = f"no probe line in the flow's output:\n{run.stderr[-2000:]}"
            raise RuntimeError(msg)
        return json.loads(match.group(1))


def bench_kafka(model: Path, events: int, users: int, runs: int, partitions: int, flow_args: list[str],
                processes: Sequence[int] = (1,), log: Callable[[str], None] = log_stderr) -> KafkaResult:
    """Part B: features only vs features + scoring, alternately, over one generated input topic.

    One-process runs with the model go through the probe (part A'); runs of more cooperating
    processes use the plain flow.
    """
    result = KafkaResult(events, users, {n: [] for n in processes}, {n: [] for n in processes}, [])
    probe = ("-m", "benchmarks.bench_scoring", PROBE_FLAG)
    plain = ("-m", "dataflows.features")
    with EmbeddedBroker(port=0) as broker:
        bootstrap = broker.bootstrap
        assert bootstrap is not None
        interactions = f"in-scoring-{uuid.uuid4().hex[:6]}"
        ensure_topics(bootstrap, [interactions, interactions + "-truth"], partitions=partitions)
        log(f"kafka: producing {events:,} events ({users:,} users)")
        produce_input(bootstrap, interactions, events, users, seed=7)
        for n in processes:
            for i in range(runs):
                result.loop.append(bare_loop(bootstrap, interactions, partitions)[0])
                log(f"kafka: bare loop: {result.loop[-1]:,.0f} events/s")
                for name, path, launcher, into in (
                        ("features only", None, plain, result.without[n]),
                        ("features + scoring", str(model), probe if n == 1 else plain, result.with_model[n])):
                    topics = throwaway_topics(bootstrap, interactions, partitions)
                    run = run_flow(bootstrap, topics, flow_args, model=path, launcher=launcher, processes=n)
                    into.append(run)
                    log(f"kafka: {n} process(es), run {i + 1}/{runs} {name}: {run.events_per_s:,.0f} events/s, "
                        f"{run.scores:,} scores, peak RSS {run.peak_rss_mib:,.0f} MiB")
    return result


def kafka_tables(r: KafkaResult) -> str:
    """The markdown tables of part B, and the in-flow figures its probe observed."""
    runs_each = len(next(iter(r.without.values())))
    loop = statistics.median(r.loop)
    ratios: list[tuple[str, float | str, str]] = []
    for n in r.without:
        base = statistics.median(x.events_per_s for x in r.without[n])
        scored = statistics.median(x.events_per_s for x in r.with_model[n])
        ratios += [(f"features only, {n} process(es)", base / loop, "bare loop"),
                   (f"features + scoring, {n} process(es)", scored / loop, "bare loop"),
                   (f"features + scoring / features only, {n} process(es)", scored / base, "features only")]
        if n == 1:
            headline("bench_scoring", "features + scoring / bare loop (Kafka to Kafka, 1 worker)", scored / loop,
                     "bare loop")
    lines = [ratio_table(ratios, title=f"B. Features + scoring, Kafka to Kafka, {r.events:,} events, {r.users:,} users: "
                         "ratios of events/s (medians) to the bare consume+parse+count loop over the same topic"), "",
             (f"B. Absolute figures, {runs_each} runs each (alternating), bare loop {statistics.median(r.loop):,.0f} "
              f"events/s (median of {len(r.loop)}); "
              f"{conditions()}. The target is for one worker."), "",
             ("| flow | processes | events/s | spread | views scored | peak RSS (all processes) | us per event "
              "| scoring cost, us per event | target >= 80,000 |"),
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for n in r.without:
        base = statistics.median(x.events_per_s for x in r.without[n])
        for name, runs in (("features only (MODEL_PATH=none)", r.without[n]),
                           ("features + scoring (model)", r.with_model[n])):
            rate = statistics.median(x.events_per_s for x in runs)
            cost = "-" if runs is r.without[n] else f"{1e6 / rate - 1e6 / base:.2f}"
            if runs is r.without[n]:
                target = "-"
            elif n != 1:
                target = f"{100 * rate / KAFKA_TARGET:.0f}% of it, with {n} processes (the target is for one)"
            else:
                target = "met" if rate >= KAFKA_TARGET else f"missed by {100 * (1 - rate / KAFKA_TARGET):.0f}%"
            scores, rss = statistics.median(x.scores for x in runs), statistics.median(x.peak_rss_mib for x in runs)
            lines.append(f"| {name} | {n} | {spread([x.events_per_s for x in runs])} | {scores:,.0f} "
                         f"| {rss:,.0f} MiB | {1e6 / rate:.2f} | {cost} | {target} |")
    probed = r.with_model.get(1, [])
    if not probed:
        return "\n".join(lines)
    lines += ["", ("A'. Scoring inside the real flow (the one-process runs with the model above, probe timers): "
               "the flow's own runtime batches"), "",
              ("| run | scoring calls | views per call (mean) | scoring step, views/s | Scorer.score, views/s "
               "| forward inside it, views/s | in flow / forward | target >= 0.5 | step share of the flow's time |"),
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for i, run in enumerate(probed):
        p = KafkaResult.probe(run)
        views = max(p["views"], 1)
        ratio = p["forward_s"] / p["step_s"]
        lines.append(f"| {i + 1} | {p['calls']:,} | {views / max(p['calls'], 1):,.0f} | {views / p['step_s']:,.0f} "
                     f"| {views / p['score_s']:,.0f} | {views / p['forward_s']:,.0f} | {ratio:.2f} | {verdict(ratio)} "
                     f"| {100 * p['step_s'] / run.seconds:.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [PROBE_FLAG]:
        return probe_flow(argv[1:])
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_scoring",
                                description=__doc__.split("\n\n")[0].replace("``", ""),
                                epilog="The module docstring says exactly what each row measures.")
    p.add_argument("--model", type=Path, default=None,
                   help="DLRM artifact to score with (default: train one on 40 min of generated history, ~20 s)")
    p.add_argument("--parts", nargs="+", choices=["inflow", "kafka"], default=["inflow", "kafka"],
                   help="what to measure (default: both)")
    g = p.add_argument_group("A. in-flow vs bare forward")
    g.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024, 2048],
                   help="views per call (default: 64 256 1024 2048)")
    g.add_argument("--repeats", type=int, default=5, help="measurements per call and batch size (default: 5)")
    g.add_argument("--seconds", type=float, default=0.5, help="seconds per measurement (default: 0.5)")
    g.add_argument("--vector-events", type=int, default=60_000,
                   help="generated events the views are taken from (default: 60000, ~34k views)")
    g.add_argument("--seed-widths", action="store_true",
                   help="also measure an untrained model with the seed notebook's widths "
                   "(D 64, 512-256-64 / 512-256-1)")
    g = p.add_argument_group("B. features + scoring, Kafka to Kafka")
    g.add_argument("--events", type=int, default=1_000_000, help="input events (default: 1,000,000)")
    g.add_argument("--users", type=int, default=10_000, help="users in the generated world (default: 10000)")
    g.add_argument("--runs", type=int, default=3, help="runs with and without the model each (default: 3)")
    add_flow_run_arguments(g)
    args = p.parse_args(argv)
    gc.set_threshold(*GC_THRESHOLDS)  # as dataflows.wiring.build_flow sets it for the flow
    with tempfile.TemporaryDirectory(prefix="bench-scoring-model-") as tmp:
        model = args.model or train_model(Path(tmp) / "dlrm.pt").path
        caption = f"Model: {describe_model(model)}"
        tables = []
        if "inflow" in args.parts:
            scorer = Scorer.load(model, FeaturesConfig().spec)
            vectors = realistic_vectors(args.vector_events, seed=11)
            variants = [("trained model", scorer)]
            if args.seed_widths:
                variants.append(("untrained model with the seed notebook's widths", seed_width_scorer(scorer)))
            for title, variant in variants:
                rows = bench_inflow(vectors, variant, args.batch_sizes, args.repeats, args.seconds)
                tables.append(inflow_tables(title, rows, args.repeats, args.seconds))
                if variant is scorer:
                    inflow_headline(title, rows)
        if "kafka" in args.parts:
            result = bench_kafka(model, args.events, args.users, args.runs, args.partitions, args.flow_args.split(),
                                 args.processes)
            tables.append(kafka_tables(result))
    print(f"\n{caption}\n")
    print("\n\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
