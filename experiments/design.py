"""The design of an experiment: its name, arms and their policies, weights, and how sessions are served.

One frozen dataclass, shared by the producer's experiment mode and the offline simulation;
the producer's flags map onto it (``--experiment NAME --arms control=popularity,treatment=random``).

>>> d = ExperimentDesign("homepage", arms=parse_arms("control=popularity,treatment=random"))
>>> d.arm_names, d.policies, d.assignment_salt
(('control', 'treatment'), ('popularity', 'random'), 'homepage')
>>> parse_arms("control=popularity")
Traceback (most recent call last):
...
ValueError: --arms needs at least two arms such as control=popularity,treatment=random, got 'control=popularity'
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import MISSING, dataclass, fields
from typing import TYPE_CHECKING, Final

from common.config_cli import add_config_flags, flag_of, option, pop_config_args

if TYPE_CHECKING:
    from experiments.policies import PolicyOptions

_NAME: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

#: policies that need trained artifacts or the pipeline: name -> what they need (see experiments.policies)
MODEL_POLICIES: Final = {
    "pipeline": "the features flow's slates on the recommendations topic (a broker; the producer only)",
    "two-tower": "a retriever artifact trained on this world (python -m models.train_retrieval; --retriever PATH)",
    "two-tower-dlrm": "the features flow's point-in-time counts: run it as the 'pipeline' policy (the closed loop)",
}
POLICY_NAMES: Final = ("random", "popularity", "popularity-explore", "oracle", *MODEL_POLICIES)


def parse_arms(spec: str) -> tuple[tuple[str, str], ...]:
    """``control=popularity,treatment=random`` -> ``(("control", "popularity"), ("treatment", "random"))``."""
    arms = []
    for part in spec.split(","):
        name, sep, policy = part.strip().partition("=")
        if not sep or not name or not policy:
            msg = f"--arms expects NAME=POLICY pairs separated by commas, got {spec!r}"
            raise ValueError(msg)
        arms.append((name.strip(), policy.strip()))
    if len(arms) < 2:
        msg = f"--arms needs at least two arms such as control=popularity,treatment=random, got {spec!r}"
        raise ValueError(msg)
    return tuple(arms)


def parse_weights(spec: str) -> tuple[float, ...]:
    """``1,1`` or ``0.2,0.8`` -> relative weights of the arms, in --arms order."""
    try:
        return tuple(float(w) for w in spec.split(","))
    except ValueError:
        msg = f"--arm-weights expects numbers separated by commas, got {spec!r}"
        raise ValueError(msg) from None


@dataclass(frozen=True)
class ExperimentDesign:
    """An experiment: who is in which arm, what each arm is shown, and how users view slates."""

    name: str = option(MISSING, "serve slates to the users enrolled in experiment NAME; their sessions' events "
                       "carry experiment, arm, slate_id and position (schema version 2); also the default salt "
                       "(default: no experiment)", flag="--experiment", metavar="NAME")
    arms: tuple[tuple[str, str], ...] = option(
        (("control", "popularity"), ("treatment", "random")),
        f"arms and their policies, control first; policies: {', '.join(POLICY_NAMES)} "
        "(default: control=popularity,treatment=random)", parse=parse_arms, metavar="ARM=POLICY,...")
    weights: tuple[float, ...] | None = option(None, "relative arm sizes in --arms order (default: equal)",
                                               flag="--arm-weights", parse=parse_weights, metavar="W,W")
    salt: str | None = option(None, "assignment salt; a new salt re-randomises (default: the experiment's name)",
                              metavar="TEXT")
    coverage: float = option(1.0, "share of users enrolled; the others browse as usual", metavar="X")
    served_share: float = option(1.0, "share of an enrolled user's sessions served a slate; the rest browse as usual",
                                 metavar="X")
    slate_k: int = option(10, "items per slate", metavar="K")
    position_bias: float = option(1.0, "rank r of a slate is viewed with probability r ** -ETA", metavar="ETA")
    warmup_events: int = option(200_000, "organic events simulated before the start for the policies to learn from",
                                metavar="N")
    popularity_window_s: float = option(86_400.0, "popularity: trailing window of counted views, seconds",
                                        flag="--popularity-window", metavar="S")
    popularity_refresh_s: float = option(3_600.0, "popularity: counting bin, seconds; the slate changes once per bin",
                                         flag="--popularity-refresh", metavar="S")
    explore_rate: float = option(0.1, "popularity-explore: share of ranks replaced by a random item", metavar="X")
    retriever: str = option("artifacts/two_tower.pt", "two-tower: the retriever artifact", metavar="PATH")
    slates_topic: str | None = option(None, "pipeline: the topic of the flow's slates (default: "
                                      "$TOPIC_RECOMMENDATIONS or recommendations)", metavar="TOPIC")

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            msg = f"--experiment must be 1-64 letters, digits or _.:- , got {self.name!r}"
            raise ValueError(msg)
        names = [a for a, _ in self.arms]
        if len(self.arms) < 2 or len(set(names)) != len(names) or not all(_NAME.match(a) for a in names):
            msg = f"--arms needs at least two distinct arm names (letters, digits, _.:-), got {names}"
            raise ValueError(msg)
        if self.weights is not None and (len(self.weights) != len(self.arms)
                                         or not all(math.isfinite(w) and w >= 0 for w in self.weights)
                                         or sum(self.weights) <= 0):
            msg = f"--arm-weights must be {len(self.arms)} non-negative numbers with a positive sum, got {self.weights}"
            raise ValueError(msg)
        checks = (
            ("coverage", 0 < self.coverage <= 1, "in (0, 1]"),
            ("served_share", 0 < self.served_share <= 1, "in (0, 1]"),
            ("slate_k", 1 <= self.slate_k <= 100, "between 1 and 100"),
            ("position_bias", math.isfinite(self.position_bias) and self.position_bias >= 0, ">= 0"),
            ("warmup_events", self.warmup_events >= 0, ">= 0"),
            ("popularity_window_s", self.popularity_window_s > 0, "> 0 seconds"),
            ("popularity_refresh_s", self.popularity_refresh_s > 0, "> 0 seconds"),
            ("explore_rate", 0 <= self.explore_rate <= 1, "between 0 and 1"),
        )
        for name, ok, requirement in checks:
            if not ok:
                flag = "--" + name.removesuffix("_s").replace("_", "-")
                msg = f"{flag} must be {requirement}, got {getattr(self, name)!r}"
                raise ValueError(msg)

    @property
    def arm_names(self) -> tuple[str, ...]:
        return tuple(a for a, _ in self.arms)

    @property
    def policies(self) -> tuple[str, ...]:
        return tuple(p for _, p in self.arms)

    @property
    def assignment_salt(self) -> str:
        return self.name if self.salt is None else self.salt

    @property
    def arm_weights(self) -> tuple[float, ...]:
        return self.weights if self.weights is not None else (1.0,) * len(self.arms)

    @property
    def policy_options(self) -> PolicyOptions:
        from experiments.policies import PolicyOptions

        return PolicyOptions(self.popularity_window_s, self.popularity_refresh_s, self.explore_rate, self.retriever,
                             self.slates_topic)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The producer's experiment flags (one argument group); :func:`from_args` reads them."""
    add_config_flags(parser, ExperimentDesign, dest_prefix="exp_", given_only=True,
                     group="experiment (an A/B test of recommendation policies; docs/experiments.md)")


def from_args(args: argparse.Namespace) -> ExperimentDesign | None:
    """The design the flags describe, None without --experiment; raises ValueError naming the flag."""
    given = pop_config_args(args, ExperimentDesign, dest_prefix="exp_")
    if "name" not in given:
        if given:
            flags = [flag_of(f) for f in fields(ExperimentDesign) if f.name in given]
            msg = f"{', '.join(flags)} need --experiment NAME"
            raise ValueError(msg)
        return None
    return ExperimentDesign(**given)
