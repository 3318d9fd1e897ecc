"""Blocks of events turned into ready-to-send batches: messages, truth records, fault records.

:func:`iter_batches` is the CPU-heavy half of a run (simulation, serialisation, faults) and
holds no I/O, so it can run in another process (:mod:`producers.synthetic.parallel`); what it
yields depends on the configuration only. It also applies the run's bounds (``--count``,
the backfill span) and, in live mode, the uniform event-time grid
``ts_n = start + round(n * 1000 / rate)`` ms, assigned in simulation order.

A :class:`Batch` pickles its lists of bytes as one joined blob (no value contains a newline),
which is about twice as fast to ship between processes as a pickled list.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from producers.synthetic.config import ProducerConfig
from producers.synthetic.faults import FaultKind, inject
from producers.synthetic.prepare import Setup, backfill_span_s
from producers.synthetic.serialize import fault_record
from producers.synthetic.sinks import jsonl_lines
from producers.synthetic.stream import VIEW, EventBlock

_BLOBS = ("values", "truth_keys", "truth_values", "fault_keys", "fault_values")


@dataclass
class Batch:
    """One block's output in emission order. n events, M >= n messages, V views, F faults."""

    block: EventBlock  # (n,) the events, for statistics
    ts_ms: np.ndarray  # (n,) int64 event time as emitted (live: the grid)
    values: list[bytes]  # (M,) message values; duplicates appear twice
    message_user: np.ndarray  # (M,) int64 user number of each message (its key)
    position: np.ndarray  # (M,) int64 block index each message goes out with, non-decreasing
    views: np.ndarray  # (V,) int64 block index of each view
    truth_keys: list[bytes]  # (V,) event_id
    truth_values: list[bytes]  # (V,) truth record of the view
    fault_rows: np.ndarray  # (F,) int64 block index of each faulted event, sorted
    fault_kinds: list[FaultKind]  # (F,)
    fault_keys: list[bytes]  # (F,) event_id
    fault_values: list[bytes]  # (F,) fault truth record
    last: bool  # a bound was reached: no batch follows

    def __len__(self) -> int:
        return len(self.ts_ms)

    def payload(self, messages: int | None = None) -> bytes:
        """JSONL bytes of the first ``messages`` messages (all by default): what the checksum covers."""
        if messages is not None and messages < len(self.values):
            return jsonl_lines(self.values[:messages])
        cached = self.__dict__.get("_payload")
        if cached is None:
            cached = self.__dict__["_payload"] = jsonl_lines(self.values)
        return cached

    def __getstate__(self) -> dict[str, Any]:
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _BLOBS:
            state[name] = (len(state[name]), b"\n".join(state[name]))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        n_values, blob = state["values"]
        for name in _BLOBS:
            n, joined = state[name]
            state[name] = joined.split(b"\n") if n else []
        state["_payload"] = blob + b"\n" if n_values else b""
        self.__dict__.update(state)


def build_batch(setup: Setup, cfg: ProducerConfig, block: EventBlock, ts_ms: np.ndarray, last: bool) -> Batch:
    """Serialise a block, inject faults and prepare its truth records."""
    ser = setup.serializer
    values = ser.values(block, ts_ms)
    injected = inject(values, ts_ms, cfg.faults, round(cfg.late_by_s * 1000), setup.fault_rng)
    truth_keys, truth_values = ser.truth(block) if cfg.truth else ([], [])
    fault_rows = np.array([r[0] for r in injected.records], dtype=np.int64)
    fault_ids = ser.event_ids(block.counter[fault_rows])
    return Batch(
        block=block,
        ts_ms=ts_ms,
        values=injected.values,
        message_user=block.user[injected.source],
        position=injected.event_position(),
        views=np.flatnonzero(block.etype == VIEW) if cfg.truth else np.zeros(0, dtype=np.int64),
        truth_keys=truth_keys,
        truth_values=truth_values,
        fault_rows=fault_rows,
        fault_kinds=[kind for _, kind, _ in injected.records],
        fault_keys=[e.encode() for e in fault_ids] if cfg.truth else [],
        fault_values=[fault_record(e, kind, d) for e, (_, kind, d) in zip(fault_ids, injected.records, strict=True)]
        if cfg.truth
        else [],
        last=last,
    )


def iter_batches(cfg: ProducerConfig, setup: Setup, block_events: int) -> Iterator[Batch]:
    """Batches of the configured stream until a bound is reached (forever without one)."""
    live = cfg.mode == "live"
    end_ms = None if live else setup.start_ms + round(backfill_span_s(cfg) * 1000)
    built = 0
    for generated in setup.simulator.blocks(block_events):
        block, last = generated, False
        if end_ms is not None and len(block) and block.t_ms[-1] >= end_ms:
            block, last = block.take(slice(0, int(np.searchsorted(block.t_ms, end_ms)))), True
        if cfg.count is not None and built + len(block) >= cfg.count:
            block, last = block.take(slice(0, cfg.count - built)), True
        if live:
            n = built + np.arange(len(block))
            ts_ms = setup.start_ms + np.rint(n * (1000.0 / cfg.rate)).astype(np.int64)
        else:
            ts_ms = block.t_ms
        built += len(block)
        yield build_batch(setup, cfg, block, ts_ms, last)
        if last:
            return
