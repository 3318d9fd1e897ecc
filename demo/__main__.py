"""``python -m demo`` (``make demo``): the whole pipeline, end to end, in a few minutes.

1. a broker: the embedded Tansu broker, restarted empty (or KAFKA_BOOTSTRAP_SERVERS, with
   topics named ``demo-<run>-...`` so nothing of yours is touched);
2. history: the synthetic producer backfills ``--history-events`` events ending shortly before
   now (the span they need depends on the hour: the generator has a daily cycle);
3. the features flow runs over that history (backfill) and writes labelled examples;
4. a DLRM is trained on them, 5. evaluated against baselines and the generator's oracle;
6. a Two-Tower retriever is trained on the same examples and the profiles the producer
   published, 7. evaluated against popularity baselines and the generator's oracle retriever;
8. the features flow starts live with both models (a slate at every session start:
   docs/slates.md), the producer streams at ``--rate`` for ``--live-seconds``, and a few
   user/item window, score, slate and dead-letter records are shown; the live stream is an A/B
   experiment (``demo``): treatment users see the flow's slates (the pipeline: Two-Tower
   candidates ranked by the DLRM), control users popularity's;
9. the experiment is analysed from the topics: its verdict and the generator's true lift;
10. the history is explored (and OTTO's sample beside it, when the workspace has it), the
    slates are summed up, and ``reports/index.html`` is written (``python -m reporting``).

Every step is an ordinary command, printed before it runs, so it can be rerun by hand.
The embedded broker is left running at the end so the topics can be inspected.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

from broker.admin import BrokerUnreachable, ensure_topics
from broker.config import Topics, configured_bootstrap
from broker.console import read_topic
from broker.embedded import background_status, start_background, stop_background
from producers.synthetic.stream import span_for_events


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and paths of the demo run."""

    history_events: int = 1_200_000  # generated history, events (20 minutes at the mean rate)
    rate: float = 1000.0  # events per second, in history (event time) and live (wall time)
    live_seconds: float = 30.0  # how long the live producer runs
    epochs: int = 3  # training passes at most
    seed: int = 7
    data_dir: Path = Path("data")
    model_path: Path = Path("artifacts/dlrm.pt")
    retriever_path: Path = Path("artifacts/two_tower.pt")
    reports_dir: Path = Path("reports")


#: span of the history over the expected one: the realised count of a span falls up to ~20%
#: short of the expectation (sessions in progress at its start are missing), and the demo's
#: model quality depends on how much history it trains on, so the producer gets room and
#: stops at the count (the history then ends a few minutes before now)
HISTORY_MARGIN: Final = 1.3


def history_span_s(events: int, rate: float, now_ms: int) -> float:
    """Event-time seconds before ``now_ms`` for the backfill of ``events`` at ``rate`` (see HISTORY_MARGIN)."""
    return HISTORY_MARGIN * span_for_events(events, rate, now_ms)


STEPS: Final = 10
#: the live stream's A/B test (docs/experiments.md): the closed loop through the flow's slates
EXPERIMENT: Final = ("--experiment", "demo", "--arms", "control=popularity,treatment=pipeline")


def step(n: int, title: str) -> None:
    print(f"\n==[{n}/{STEPS}] {title} " + "=" * max(0, 60 - len(title)), flush=True)


def shown(cmd: list[str]) -> str:
    """The command as a user would type it."""
    return " ".join(cmd).replace(sys.executable, "python")


def run(cmd: list[str], env: dict[str, str]) -> None:
    print(f"$ {shown(cmd)}", flush=True)
    subprocess.run(cmd, env=env, check=True)


def python_m(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


class FlowWatcher:
    """The live flow in the background; its progress lines are echoed and parsed."""

    _IN = re.compile(r"^features: ([\d,]+) in ")

    def __init__(self, cmd: list[str], env: dict[str, str]):
        self.records_in = 0
        self.process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            print("   | " + line, end="", flush=True)
            match = self._IN.match(line)
            if match:
                self.records_in = int(match.group(1).replace(",", ""))

    def wait_for(self, records: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.records_in < records:
            if self.process.poll() is not None:
                msg = f"the flow exited with code {self.process.returncode}"
                raise RuntimeError(msg)
            if time.monotonic() > deadline:
                msg = f"the flow read {self.records_in:,} of {records:,} records in {timeout_s:g} s"
                raise RuntimeError(msg)
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # an orderly stop
            self.process.wait(60)
        self._reader.join(5)


def prepare_broker() -> tuple[str, Topics]:
    """A broker and the topic names this run uses."""
    configured = configured_bootstrap()
    if configured:
        tag = f"demo-{uuid.uuid4().hex[:6]}"
        base = Topics()
        topics = Topics(**{k: f"{tag}-{v}" for k, v in vars(base).items()})
        print(f"using the broker at {configured} (KAFKA_BOOTSTRAP_SERVERS), topics prefixed {tag}-")
        bootstrap = configured
    else:
        if background_status() is not None:
            print("restarting the embedded broker so the demo starts from empty topics")
            stop_background()
        pid, bootstrap, _ = start_background()
        print(f"embedded broker (Tansu) at {bootstrap}, pid {pid}; `make broker-stop` stops it")
        topics = Topics()
    ensure_topics(bootstrap, topics.all())
    return bootstrap, topics


def show(bootstrap: str, topic: str, title: str, n: int, newest: bool = False) -> None:
    records = read_topic(bootstrap, topic)
    print(f"\n-- {title}: {len(records):,} records in topic {topic!r}" + (", the newest:" if newest else ":"))
    if newest:
        records = sorted(records, key=lambda r: r.timestamp_ms)[-n:]
    for r in records[:n]:
        key = r.key.decode(errors="replace") if r.key else None
        print(f"   key={key}  {(r.value or b'').decode(errors='replace')[:300]}")


def summary(report: Path) -> None:
    """The evaluation's headline numbers (models.evaluate printed the full table above)."""
    results = orjson.loads(report.read_bytes())["results"]
    oracle_auc = results.get("oracle", {}).get("auc")
    print(f"\n-- evaluation ({report}): click AUC on the evaluation range")
    for name, r in results.items():
        lift = f", {100 * (r['auc'] - 0.5) / (oracle_auc - 0.5):.0f}% of the oracle's lift" if oracle_auc else ""
        print(f"   {name:20s} AUC {r['auc']:.4f}{lift if name != 'oracle' else ''}")


def retrieval_summary(report: Path) -> None:
    """The retrieval evaluation's headline numbers (models.evaluate_retrieval printed the full table above)."""
    data = orjson.loads(report.read_bytes())
    print(f"\n-- retrieval ({report}): the clicked item among the top 100 of {data['catalog_items']:,} items")
    for name, r in data["results"].items():
        share = r.get("share_of_oracle_recall@100")
        print(f"   {name:20s} Recall@100 {r['recall@100']:.4f}" + (f", {100 * share:.0f}% of the oracle's"
                                                                    if share and name != "oracle" else ""))
    purity = data.get("embeddings", {})
    for key, what in (("item_category_purity@10", "item embeddings, category"),
                      ("user_segment_purity@10", "user embeddings, latent segment")):
        if key in purity:
            print(f"   10-NN purity of the {what}: {purity[key]['purity']:.3f} (chance {purity[key]['chance']:.3f})")


def experiment_summary(report: Path, live: Path) -> None:
    """The experiment's verdict and true lift (experiments.analyze printed the full table above)."""
    r = orjson.loads(report.read_bytes())
    arms = orjson.loads(live.read_bytes()).get("experiment", {}).get("arms", {})
    t = arms.get("treatment", {})
    print(f"\n-- experiment {r['experiment']!r} ({report}): treatment = the pipeline's slates, control = popularity")
    if "sessions_shown_pipeline" in t:
        print(f"   treatment sessions shown the flow's slate: {t['sessions_shown_pipeline']:,}; popularity's (no slate "
              f"for the user yet): {t['sessions_shown_fallback']:,}")
    c = r["comparisons"][0]
    u, truth = c["ctr"]["user_level"], c.get("true_lift")
    print(f"   measured lift {100 * u['relative']:+.2f}% (95% CI {100 * u['relative_ci'][0]:+.2f}% to "
          f"{100 * u['relative_ci'][1]:+.2f}%), p = {u['p']:.3g}")
    if truth is not None:
        print(f"   true lift     {100 * truth['relative']:+.2f}% (from the generator's truth; "
              f"{'covered' if truth['covered_relative'] else 'NOT covered'} by the interval)")
    print(f"   verdict: {r['verdict']}")


#: OTTO's real clickstream sample where the workspace keeps it (beside the repository: shared/data/SOURCES.md);
#: explored when present
OTTO_SAMPLE: Final = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "otto_sample" / "train.jsonl"


def report_page(cfg: DemoConfig, env: dict[str, str], topics: Topics) -> Path:
    """Explore the history (only its run's events), OTTO's sample if present, the slates; write the page.

    A part that fails is reported and left out: the page says how to produce it.
    """
    tag = orjson.loads((cfg.reports_dir / "history.json").read_bytes())["run_tag"]
    explore = cfg.reports_dir / "explore"
    commands = [python_m("reporting.explore", "--input", f"topic:{topics.interactions}", "--run-tag", tag,
                         "--generator-seed", str(cfg.seed), "--out", str(explore / "generated"))]
    if OTTO_SAMPLE.is_file():
        commands.append(python_m("reporting.explore", "--input", str(OTTO_SAMPLE), "--out", str(explore / "otto")))
    commands.append(python_m("reporting.slates", "--input", f"topic:{topics.recommendations}", "--out",
                             str(cfg.reports_dir / "slates.json")))
    for cmd in commands:
        try:
            run(cmd, env)
        except subprocess.CalledProcessError as e:
            print(f"   (exit code {e.returncode}: the page leaves this part out)", flush=True)
    run(python_m("reporting", "--reports", str(cfg.reports_dir)), env)
    return cfg.reports_dir / "index.html"


def main(argv: list[str] | None = None) -> int:
    d = DemoConfig()
    p = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--history-events", type=int, default=d.history_events,
                   help=f"events of generated history; its span follows the daily cycle (default: {d.history_events:,})")
    p.add_argument("--rate", type=float, default=d.rate, help=f"events per second (default: {d.rate:g})")
    p.add_argument("--live-seconds", type=float, default=d.live_seconds,
                   help=f"seconds of live traffic (default: {d.live_seconds:g})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"training epochs at most (default: {d.epochs})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of everything (default: {d.seed})")
    args = p.parse_args(argv)
    for name in ("history_events", "rate", "live_seconds", "epochs"):
        if getattr(args, name) <= 0:
            print(f"error: --{name.replace('_', '-')} must be > 0, got {getattr(args, name)}", file=sys.stderr)
            return 2
    cfg = DemoConfig(history_events=args.history_events, rate=args.rate, live_seconds=args.live_seconds,
                     epochs=args.epochs, seed=args.seed)
    started = time.monotonic()
    try:
        step(1, "broker and topics")
        bootstrap, topics = prepare_broker()
    except (BrokerUnreachable, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PYTHONUNBUFFERED": "1"}
    env.update({f"TOPIC_{k.upper()}": v for k, v in vars(topics).items()})
    examples = cfg.data_dir / "examples.jsonl"
    cfg.data_dir.mkdir(parents=True, exist_ok=True)

    step(2, f"history: {cfg.history_events:,} events at {cfg.rate:g}/s on average")
    span_s = history_span_s(cfg.history_events, cfg.rate, time.time_ns() // 1_000_000)
    print(f"at this hour the daily cycle puts them in about {span_s / HISTORY_MARGIN / 60:.0f} minutes of event "
          f"time; the backfill starts {span_s / 60:.0f} minutes before now and stops after {cfg.history_events:,} "
          "events", flush=True)
    run(python_m("producers.synthetic", "--backfill", "--rate", str(cfg.rate), "--duration", f"{span_s:.0f}",
                 "--count", str(cfg.history_events), "--seed", str(cfg.seed), "--report",
                 str(cfg.reports_dir / "history.json")), env)

    step(3, "features backfill over the history -> labelled examples")
    run(python_m("dataflows.features", "--backfill", "--output", "none", "--examples-out", str(examples),
                 "--model", "none", "--progress-interval", "5", "--counters-out",
                 str(cfg.reports_dir / "flow_backfill.json")), env)

    step(4, "train the DLRM")
    run(python_m("models.train", "--examples", str(examples), "--out", str(cfg.model_path),
                 "--epochs", str(cfg.epochs), "--seed", str(cfg.seed)), env)

    step(5, "evaluate against baselines and the generator's oracle")
    run(python_m("models.evaluate", "--examples", str(examples), "--model", str(cfg.model_path),
                 "--truth-topic", topics.truth, "--out", str(cfg.reports_dir)), env)

    step(6, "train the Two-Tower retriever (profiles from the users and items topics)")
    profiles = ["--users", f"topic:{topics.users}", "--items", f"topic:{topics.items}"]
    run(python_m("models.train_retrieval", "--examples", str(examples), *profiles, "--out", str(cfg.retriever_path),
                 "--seed", str(cfg.seed)), env)

    step(7, "evaluate the retriever against popularity baselines and the generator's oracle retriever")
    run(python_m("models.evaluate_retrieval", "--examples", str(examples), *profiles, "--model",
                 str(cfg.retriever_path), "--generator-seed", str(cfg.seed), "--map-points", "2000",
                 "--out", str(cfg.reports_dir)), env)

    step(8, f"live: the features flow with both models, the producer at {cfg.rate:g}/s for {cfg.live_seconds:g} s, "
            "an A/B test")
    history = orjson.loads((cfg.reports_dir / "history.json").read_bytes())["messages"]
    flow_cmd = python_m("dataflows.features", "--model", str(cfg.model_path), "--retriever", str(cfg.retriever_path),
                        "--progress-interval", "2", "--counters-out", str(cfg.reports_dir / "flow_live.json"))
    print(f"$ {shown(flow_cmd)}   (in the background)", flush=True)
    flow = FlowWatcher(flow_cmd, env)
    try:
        print(f"waiting for the flow to read the {history:,} history events (warm state) ...", flush=True)
        flow.wait_for(history, timeout_s=600)
        # the same world as the history (--seed), so the models trained on it know its users and items
        run(python_m("producers.synthetic", "--rate", str(cfg.rate), "--duration", str(cfg.live_seconds),
                     "--seed", str(cfg.seed), "--faults", "malformed=0.001,invalid=0.001,duplicate=0.002,late=0.002",
                     "--progress-interval", "5", "--report", str(cfg.reports_dir / "live.json"), *EXPERIMENT), env)
        live = orjson.loads((cfg.reports_dir / "live.json").read_bytes())["messages"]
        print(f"waiting for the flow to read the {live:,} live records ...", flush=True)
        flow.wait_for(history + live, timeout_s=300)
        time.sleep(3)  # the last batch through scoring and the sink
    finally:
        flow.stop()

    show(bootstrap, topics.user_features, "user windows", 2, newest=True)
    show(bootstrap, topics.item_features, "item windows", 2, newest=True)
    show(bootstrap, topics.scores, "scores", 3, newest=True)
    show(bootstrap, topics.recommendations, "slates", 2, newest=True)
    show(bootstrap, topics.dead_letters, "dead letters", 2, newest=True)
    report = cfg.reports_dir / "evaluation.json"
    if report.exists():
        summary(report)
    retrieval = cfg.reports_dir / "retrieval.json"
    if retrieval.exists():
        retrieval_summary(retrieval)

    step(9, "the experiment: treatment (the pipeline's slates) vs control (popularity), against the truth")
    experiments_dir = cfg.reports_dir / "experiments"
    run(python_m("experiments.analyze", "--experiment", EXPERIMENT[1], "--events", f"topic:{topics.interactions}",
                 "--truth", f"topic:{topics.truth}", "--out", str(experiments_dir)), env)
    experiment_summary(experiments_dir / f"{EXPERIMENT[1]}.json", cfg.reports_dir / "live.json")

    step(10, "the run report: exploration of the history, the slates, every report above in one page")
    page = report_page(cfg, env, topics)
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s. Inspect the topics, e.g.:\n"
          f"   python -m broker.console {topics.scores} --from-beginning --max-messages 5 --print-key\n"
          f"   python -m broker.console {topics.recommendations} --from-beginning --max-messages 2 --print-key\n"
          f"plots and the evaluation are in {cfg.reports_dir}/; `make broker-stop` stops the embedded broker.\n"
          f"the run report: {page.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
