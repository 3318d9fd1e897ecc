"""What a run derives from its configuration before the first event: world, funnel, ids, seeds.

Randomness comes from one seed: ``SeedSequence(seed).spawn(4)`` gives the world, the
calibration sample, the behaviour and the faults a stream each, so turning faults on does
not change the events. Everything here is deterministic in the configuration once the
start time is fixed (:func:`resolve_start`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from producers.synthetic.behavior import Funnel, calibrate
from producers.synthetic.config import ModelParams, ProducerConfig
from producers.synthetic.serialize import Serializer, run_tag
from producers.synthetic.stream import SessionSimulator
from producers.synthetic.world import World, build_world

Wall = Callable[[], float]  # seconds since the epoch
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Setup:
    """Everything a run derives from its configuration before the first event."""

    world: World
    funnel: Funnel
    start_ms: int  # event time of the stream's start, epoch ms UTC
    tag: str  # run tag inside event and session ids
    serializer: Serializer
    simulator: SessionSimulator
    fault_rng: np.random.Generator


def from_ms(ms: int) -> datetime:
    """An epoch-ms time as an aware UTC datetime, exactly.

    >>> from_ms(1735689600123).isoformat()
    '2025-01-01T00:00:00.123000+00:00'
    """
    return EPOCH + timedelta(milliseconds=ms)


def backfill_span_s(cfg: ProducerConfig) -> float:
    """Event-time span of a backfill: ``--duration`` seconds if given, else ``--days``."""
    return cfg.duration_s if cfg.duration_s is not None else cfg.days * 86_400.0


def resolve_start(cfg: ProducerConfig, wall: Wall = time.time) -> ProducerConfig:
    """``cfg`` with ``start`` fixed: as given, else now (live) or now minus the span (backfill)."""
    if cfg.start is not None:
        return replace(cfg, start=cfg.start.astimezone(UTC))
    now = datetime.fromtimestamp(math.floor(wall()), tz=UTC)
    return replace(cfg, start=now if cfg.mode == "live" else now - timedelta(seconds=backfill_span_s(cfg)))


def block_events(cfg: ProducerConfig) -> int:
    """Events per generated block: ``--block-events``, capped in live mode at 1/4 s of events.

    Small live blocks keep the pause for generating the next block short (a few ms), so
    pacing stays smooth; the cap depends only on the rate, so output stays deterministic.

    >>> block_events(ProducerConfig(rate=1000)), block_events(ProducerConfig(mode="backfill", rate=1000))
    (256, 65536)
    """
    if cfg.mode == "backfill":
        return cfg.block_events
    return min(cfg.block_events, max(256, math.ceil(cfg.rate / 4)))


def world_and_funnel(seed: int, model: ModelParams) -> tuple[World, Funnel]:
    """The world and the calibrated funnel a run with this seed and model draws (what evaluations rebuild)."""
    world_ss, calibration_ss, _, _ = np.random.SeedSequence(seed).spawn(4)
    world = build_world(model, np.random.default_rng(world_ss))
    return world, calibrate(world, model, np.random.default_rng(calibration_ss))


def prepare(cfg: ProducerConfig, wall: Wall = time.time, purpose: str = "stream") -> Setup:
    """Build the world, calibrate the funnel and seed the simulator (which the run then consumes).

    ``purpose`` enters the run tag, so a ``--check`` stream never reuses a real run's ids.
    """
    cfg = resolve_start(cfg, wall)
    assert cfg.start is not None
    _, _, behaviour_ss, fault_ss = np.random.SeedSequence(cfg.seed).spawn(4)
    world, funnel = world_and_funnel(cfg.seed, cfg.model)
    start_ms = (cfg.start - EPOCH) // timedelta(milliseconds=1)
    identity = (
        f"{purpose}|seed={cfg.seed}|start={start_ms}|mode={cfg.mode}|rate={cfg.rate!r}"
        f"|block={block_events(cfg)}|{cfg.model!r}"
    )
    if cfg.experiment is not None:
        identity += f"|{cfg.experiment!r}"
    tag = run_tag(identity)
    simulator = SessionSimulator(world, cfg.model, funnel, cfg.rate, start_ms, np.random.default_rng(behaviour_ss))
    serializer = Serializer(world, tag)
    if cfg.experiment is not None:  # experiment mode: serving (producers/synthetic/serving.py)
        from producers.synthetic.serving import build_serving

        simulator.serving = build_serving(cfg.experiment, world, cfg.model, funnel, cfg.seed, start_ms, cfg.rate)
        outcomes, origins = simulator.serving.for_serializer() if cfg.truth else ({}, {})  # no truth: keep none
        serializer.for_experiment(cfg.experiment.name, cfg.experiment.arm_names, outcomes, origins)
    return Setup(world, funnel, start_ms, tag, serializer, simulator, np.random.default_rng(fault_ss))
