"""Slates computed offline: the stages run in one thread over a log, then the slate stage ranks.

The same partition stage, item stages, slate stage and ranker the features flow runs, driven
by :class:`features.local.LocalPipeline` instead of Bytewax. A slate depends only on the
input (requests wait for their item windows), so this gives the flow's slates for the same
input, whatever the interleaving: the check that the live flow and a backfill agree.
"""

from __future__ import annotations

from collections.abc import Iterable

from features.config import FeaturesConfig
from features.local import LocalPipeline
from features.partition_stage import RawBatch
from features.records import Record
from slates.ranker import SlateRanker
from slates.stage import SlateStageState


def offline_slates(config: FeaturesConfig, batches: Iterable[RawBatch], partitions: int, ranker: SlateRanker,
                   slate_k: int) -> list[Record]:
    """The recommendations records of a finite log (each partition's batches in its order)."""
    pipeline = LocalPipeline(config, partitions, vectors_for="views", keep_events=False, want_contexts=False,
                             slate_k=slate_k)
    for batch in batches:
        pipeline.feed(batch)
    out = pipeline.finish()
    stage = SlateStageState(config, config.item_shards, partitions)
    records: list[Record] = []
    for message in out.for_slates:
        stage.add(message)
        ready = stage.take_ready()
        if ready:
            records += ranker.rank(ready, stage.items)
    return records
