"""File input and output for backfills: a JSONL interactions source and the examples writer.

The JSONL source splits the file into the virtual partitions a Kafka topic would have
(murmur2 of ``user_id``, as the producer's partitioner), so per-partition decisions
(watermarks, late events) are the same as when the events are read from the topic.

The examples writer collects the point-in-time vectors of views as they come and the
follow-up events that label them, and joins them when the run ends: an example's label
for a follow-up type is 1 when such an event referencing the view was accepted with an
event time within ``label_horizon_ms`` of the view.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from dataflows.kafka_io import wall_ms
from events.partitioning import partition_for
from features.outputs import ExampleRows
from features.partition_stage import FollowUps, RawBatch

LABELS = ("click", "add_cart", "purchase")

#: murmur2 in Python is most of a JSONL backfill's reading (~16x a cache hit, 2026-12-02); users
#: repeat, so the partitions of recently seen keys are remembered (bounded: ~100 B each)
_partition_of = functools.lru_cache(maxsize=1 << 16)(partition_for)


class _JsonlPartition(StatefulSourcePartition[RawBatch, tuple[int, int]]):
    def __init__(self, path: Path, partitions: int, batch_size: int, resume: tuple[int, int] | None):
        self.path, self.partitions, self.batch_size = path, partitions, batch_size
        self.file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self.byte_offset, self.line_no = resume or (0, 0)
        self.file.seek(self.byte_offset)
        self.finished = False

    def next_batch(self) -> list[RawBatch]:
        if self.finished:
            raise StopIteration
        now = wall_ms()
        source = str(self.path)
        batches = [RawBatch(source, p, wall_ms=now) for p in range(self.partitions)]
        for _ in range(self.batch_size):
            line = self.file.readline()
            if not line:
                self.finished = True
                for b in batches:
                    b.eof = True
                break
            self.byte_offset += len(line)
            value = line.rstrip(b"\r\n")
            self.line_no += 1
            if not value:
                continue  # blank line: nothing to process, nothing lost
            try:
                key = orjson.loads(value)["user_id"].encode()
                p = _partition_of(key, self.partitions)
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                p = 0  # unreadable: partition 0 refuses it with its reason
            batch = batches[p]
            batch.offsets.append(self.line_no)
            batch.values.append(value)
        return [b for b in batches if b.values or b.eof]

    def snapshot(self) -> tuple[int, int]:
        return self.byte_offset, self.line_no

    def close(self) -> None:
        self.file.close()


class JsonlSource(FixedPartitionedSource[RawBatch, tuple[int, int]]):
    """Interactions from a JSONL file (one event per line), read to its end.

    Dead letters name the file as their source and the 1-based line as their offset.
    """

    def __init__(self, path: str | Path, partitions: int = 4, batch_size: int = 2000):
        self.path = Path(path)
        if not self.path.is_file():
            msg = f"input file {str(self.path)!r} does not exist"
            raise FileNotFoundError(msg)
        if partitions < 1:
            msg = f"virtual partitions must be >= 1, got {partitions}"
            raise ValueError(msg)
        self.partitions, self.batch_size = partitions, batch_size

    def list_parts(self) -> list[str]:
        return ["file"]

    def build_part(self, step_id: str, for_part: str, resume_state: tuple[int, int] | None) -> _JsonlPartition:
        return _JsonlPartition(self.path, self.partitions, self.batch_size, resume_state)


class _ExamplesPartition(StatefulSinkPartition[Any, None]):
    def __init__(self, path: Path, label_horizon_ms: int):
        self.path, self.label_horizon_ms = path, label_horizon_ms
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rows_path = path.with_name(path.name + ".rows.tmp")
        self.rows = open(self.rows_path, "wb")  # noqa: SIM115 - closed in close()
        self.first_follow_up: dict[str, list[int | None]] = {}  # view_id -> earliest ts per label

    def write_batch(self, values: list[Any]) -> None:
        write = self.rows.write
        for item in values:
            if isinstance(item, ExampleRows):
                for row in item.rows:
                    write(orjson.dumps(row))
                    write(b"\n")
            elif isinstance(item, FollowUps):
                first = self.first_follow_up
                for view_id, k, ts in item.items:
                    slots = first.get(view_id)
                    if slots is None:
                        slots = first[view_id] = [None, None, None]
                    earliest = slots[k - 1]
                    if earliest is None or ts < earliest:
                        slots[k - 1] = ts

    def snapshot(self) -> None:
        self.rows.flush()

    def close(self) -> None:
        """Join labels onto the rows and write the examples file atomically."""
        self.rows.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        horizon, first = self.label_horizon_ms, self.first_follow_up
        n = 0
        with open(self.rows_path, "rb") as rows, open(tmp, "wb") as out:
            for line in rows:
                row = orjson.loads(line)
                slots = first.get(row["event_id"]) or (None, None, None)
                limit = row["ts"] + horizon
                row["labels"] = {name: int(ts is not None and ts <= limit) for name, ts in zip(LABELS, slots)}
                out.write(orjson.dumps(row))
                out.write(b"\n")
                n += 1
        os.replace(tmp, self.path)
        self.rows_path.unlink()
        print(f"features: wrote {n:,} examples to {self.path}", flush=True)


class ExamplesSink(FixedPartitionedSink[Any, None]):
    """Writes labelled point-in-time examples (views) to a JSONL file at the end of a backfill."""

    def __init__(self, path: str | Path, label_horizon_ms: int):
        self.path, self.label_horizon_ms = Path(path), label_horizon_ms

    def list_parts(self) -> list[str]:
        return ["examples"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _ExamplesPartition:
        return _ExamplesPartition(self.path, self.label_horizon_ms)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a JSONL file (small files: tests, inspection)."""
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]
