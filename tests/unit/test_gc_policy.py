"""The flow's garbage-collector policy, and the property it relies on: the stages make no cycles."""

from __future__ import annotations

import gc

import orjson
import pytest

from dataflows import gc_policy
from features.config import FeaturesConfig
from features.local import run_local
from features.partition_stage import RawBatch
from tests.eventlog import make_log

T0 = 1_767_225_600_000


@pytest.fixture
def frozen_restored():
    yield
    gc.unfreeze()


def test_the_freezer_freezes_survivors_once_per_interval(frozen_restored):
    now = [100.0]
    freezer = gc_policy.SurvivorFreezer(interval_s=1.0, clock=lambda: now[0])
    survivor = [[i] for i in range(1000)]  # tracked containers that outlive the tick
    before = gc.get_freeze_count()
    now[0] += 0.5
    assert not freezer.tick() and gc.get_freeze_count() == before
    now[0] += 0.6
    assert freezer.tick()
    assert gc.get_freeze_count() >= before + len(survivor)
    assert not freezer.tick()  # the interval restarts at the freeze


def test_the_stages_leave_no_cyclic_garbage_even_on_faulty_input():
    # Frozen state is never scanned for cycles again: the partition and item stages must
    # not make any, also on the dead-letter paths (bad JSON, schema errors, duplicates,
    # late and future events, consumer errors).
    parts = make_log(11, n=3000, partitions=2, faults=True)
    batches = [RawBatch("t", p, list(range(len(values))), list(values), wall_ms=T0 + 10**7,
                        errors=[(len(values), "_TRANSPORT: broker down")])
               for p, values in enumerate(parts)]
    gc.collect()
    gc.freeze()  # whatever exists now (other tests' objects too) is not counted: only what the stages make
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        out = run_local(FeaturesConfig(item_shards=3), batches, partitions=2, want_follow_ups=True)
        assert gc.collect() == 0
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()
    reasons = {orjson.loads(value)["reason"] for dest, _, value in out.records if dest == "dead_letters"}
    assert {"unparseable", "duplicate", "kafka_error"} <= reasons and len(reasons) >= 5, reasons
