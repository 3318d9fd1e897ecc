"""``python -m experiments.offline``: one offline experiment on the generator's world, with its report.

Examples::

    python -m experiments.offline --arms control=popularity,treatment=random
    python -m experiments.offline --arms control=popularity,treatment=two-tower --duration 120

The experiment is simulated in-process (:mod:`experiments.simulate`; no broker, no files read)
and analysed like a produced one (:mod:`experiments.analyze`): the report, its table and its
plots go to ``--out``. :func:`run_short_experiment` is the demo's entry point: control =
popularity, treatment = the best policy available (the Two-Tower when its artifact fits the
world, else the truth's oracle), and it returns the verdict and the true lift.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.config_cli import config_parser, option, require_field, run_cli
from experiments.analysis import AnalysisSettings
from experiments.analyze import table, write_report
from experiments.design import ExperimentDesign, parse_arms
from experiments.simulate import SimWorld, simulate


@dataclass(frozen=True)
class OfflineConfig:
    """An offline experiment; CLI flags map 1:1 to fields."""

    name: str = option("offline", "the experiment's name (and the report's file names)")
    arms: str = option("control=popularity,treatment=random", "ARM=POLICY pairs, control first")
    seed: int = option(7, "the generator's seed: the world (the producer's --seed) and the experiment's draws")
    duration_s: float = option(120.0, "seconds of event time of served sessions")
    rate: float = option(1000.0, "events per second of event time (sets how many sessions start)")
    position_bias: float = option(1.0, "eta: rank r of a slate is viewed with probability r ** -eta")
    slate_k: int = option(10, "items per slate")
    explore_rate: float = option(0.1, "popularity-explore: share of ranks replaced by a random item")
    retriever: str = option("artifacts/two_tower.pt", "two-tower: the retriever artifact")
    max_sessions_per_user: int = option(10, "count each user's first N served sessions (0: all)")
    out: str = option("reports/experiments", "folder of the report files")

    def __post_init__(self) -> None:
        require_field(self.duration_s > 0, "OfflineConfig", "duration_s", "> 0", self.duration_s)
        require_field(self.rate > 0, "OfflineConfig", "rate", "> 0", self.rate)

    def design(self) -> ExperimentDesign:
        return ExperimentDesign(self.name, arms=parse_arms(self.arms), slate_k=self.slate_k,
                                position_bias=self.position_bias, explore_rate=self.explore_rate, retriever=self.retriever)


def run(cfg: OfflineConfig, sim: SimWorld | None = None) -> dict[str, Any]:
    """Simulate, analyse and write the report; returns it."""
    design = cfg.design()
    sim = sim or SimWorld(seed=cfg.seed, rate=cfg.rate, warmup_events=design.warmup_events)
    result = simulate(design, sim, seed=cfg.seed, duration_s=cfg.duration_s)
    return write_report(result.data, AnalysisSettings(max_sessions_per_user=cfg.max_sessions_per_user), Path(cfg.out))


def best_policy(retriever: str, sim: SimWorld) -> str:
    """``two-tower`` when its artifact exists and fits the world, else ``oracle``."""
    from experiments.policies import PolicyOptions, make_policy

    try:
        make_policy("two-tower", sim.world, sim.params, sim.funnel, sim.start_ms, PolicyOptions(retriever=retriever))
    except ValueError:
        return "oracle"
    return "two-tower"


def run_short_experiment(seed: int = 7, retriever: str = "artifacts/two_tower.pt", duration_s: float = 120.0,
                         out: str = "reports/experiments") -> dict[str, Any]:
    """Control = popularity, treatment = :func:`best_policy`, ``duration_s`` of default traffic.

    Returns ``{"treatment", "verdict", "true_lift" (relative), "covered", "report"}``.
    """
    sim = SimWorld(seed=seed)
    treatment = best_policy(retriever, sim)
    cfg = OfflineConfig(name="demo", arms=f"control=popularity,treatment={treatment}", seed=seed, duration_s=duration_s,
                        retriever=retriever, out=out)
    report = run(cfg, sim)
    truth = report["comparisons"][0]["true_lift"]
    return {"treatment": treatment, "verdict": report["verdict"], "true_lift": truth["relative"],
            "covered": truth["covered_relative"], "report": report["files"]["json"]}


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(OfflineConfig, "experiments.offline",
                           "Simulate an A/B experiment of recommendation policies on the generator's world and "
                           "write its report (no broker needed).")

    def go(cfg: OfflineConfig) -> None:
        report = run(cfg)
        print(table(report), flush=True)
        print(f"wrote {report['files']['json']} and the PNGs beside it", flush=True)

    return run_cli(parser, argv, OfflineConfig, go, (ValueError, OSError))


if __name__ == "__main__":
    sys.exit(main())
