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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from experiments.policies import PolicyOptions

_NAME: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


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

    name: str  # the experiment's name, written on its events; also the default salt
    arms: tuple[tuple[str, str], ...] = (("control", "popularity"), ("treatment", "random"))  # (arm, policy)
    weights: tuple[float, ...] | None = None  # relative share of each arm; None: equal
    salt: str | None = None  # assignment salt; None: the name (a new salt re-randomises)
    coverage: float = 1.0  # share of users in the experiment; the others browse as usual
    served_share: float = 1.0  # share of an enrolled user's sessions that are served a slate
    slate_k: int = 10  # items per slate
    position_bias: float = 1.0  # eta of the examination probability theta(rank) = rank ** -eta
    warmup_events: int = 200_000  # organic events generated before the start for the policies to learn from
    popularity_window_s: float = 86_400.0  # popularity: trailing window of counted views
    popularity_refresh_s: float = 3_600.0  # popularity: bin size; the slate changes once per bin
    explore_rate: float = 0.1  # popularity-explore: share of ranks replaced by a random item
    retriever: str = "artifacts/two_tower.pt"  # two-tower: the retriever artifact
    slates_topic: str | None = None  # pipeline: the recommendations topic (None: $TOPIC_RECOMMENDATIONS or recommendations)

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


_DEFAULT: Final = ExperimentDesign("x")
#: flag -> (field, type, metavar, help) of the producer's experiment flags (besides --experiment and --arms)
_FLAGS: Final = (
    ("--arm-weights", "weights", str, "W,W", "relative arm sizes in --arms order (default: equal)"),
    ("--salt", "salt", str, "TEXT", "assignment salt; a new salt re-randomises (default: the experiment's name)"),
    ("--coverage", "coverage", float, "X", f"share of users enrolled (default: {_DEFAULT.coverage:g})"),
    ("--served-share", "served_share", float, "X",
     f"share of an enrolled user's sessions served a slate; the rest browse as usual (default: {_DEFAULT.served_share:g})"),
    ("--slate-k", "slate_k", int, "K", f"items per slate (default: {_DEFAULT.slate_k})"),
    ("--position-bias", "position_bias", float, "ETA",
     f"rank r of a slate is viewed with probability r ** -ETA (default: {_DEFAULT.position_bias:g})"),
    ("--warmup-events", "warmup_events", int, "N",
     f"organic events simulated before the start for the policies to learn from (default: {_DEFAULT.warmup_events})"),
    ("--explore-rate", "explore_rate", float, "X",
     f"popularity-explore: share of ranks replaced by a random item (default: {_DEFAULT.explore_rate:g})"),
    ("--retriever", "retriever", str, "PATH", f"two-tower: the retriever artifact (default: {_DEFAULT.retriever})"),
    ("--slates-topic", "slates_topic", str, "TOPIC",
     "pipeline: the topic of the flow's slates (default: $TOPIC_RECOMMENDATIONS or recommendations)"),
    ("--popularity-window", "popularity_window_s", float, "S",
     f"popularity: trailing window of counted views, seconds (default: {_DEFAULT.popularity_window_s:g})"),
    ("--popularity-refresh", "popularity_refresh_s", float, "S",
     f"popularity: counting bin, seconds; the slate changes once per bin (default: {_DEFAULT.popularity_refresh_s:g})"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The producer's experiment flags (one argument group); :func:`from_args` reads them."""
    from experiments.policies import POLICY_NAMES

    g = parser.add_argument_group("experiment (an A/B test of recommendation policies; docs/experiments.md)")
    g.add_argument("--experiment", dest="exp_name", default=None, metavar="NAME",
                   help="serve slates to the users enrolled in experiment NAME; their sessions' events carry "
                   "experiment, arm, slate_id and position (schema version 2) (default: no experiment)")
    g.add_argument("--arms", dest="exp_arms", default=None, metavar="ARM=POLICY,...",
                   help=f"arms and their policies, control first; policies: {', '.join(POLICY_NAMES)} "
                   "(default: control=popularity,treatment=random)")
    for flag, name, kind, metavar, text in _FLAGS:
        g.add_argument(flag, dest=f"exp_{name}", type=kind, default=None, metavar=metavar, help=text)


def from_args(args: argparse.Namespace) -> ExperimentDesign | None:
    """The design the flags describe, None without --experiment; raises ValueError naming the flag."""
    given = {name: getattr(args, f"exp_{name}") for _, name, _, _, _ in _FLAGS if getattr(args, f"exp_{name}") is not None}
    if args.exp_name is None:
        if given or args.exp_arms is not None:
            flags = [f for f, name, _, _, _ in _FLAGS if name in given] + (["--arms"] if args.exp_arms else [])
            msg = f"{', '.join(flags)} need --experiment NAME"
            raise ValueError(msg)
        return None
    if "weights" in given:
        given["weights"] = parse_weights(given["weights"])
    arms = parse_arms(args.exp_arms) if args.exp_arms is not None else _DEFAULT.arms
    return ExperimentDesign(args.exp_name, arms=arms, **given)
