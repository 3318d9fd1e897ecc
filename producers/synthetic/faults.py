"""Fault injection: corrupt a configurable share of the stream so downstream handling can be tested.

Each event gets at most one fault, drawn per event with the configured rates:

============ ================================================== ===========================
kind         what is emitted                                    ``events.schema.decode``
============ ================================================== ===========================
malformed    the event's JSON cut short (not parseable)         ``unparseable``
missing      the event without one required field               ``schema``
invalid      one field with a bad value: ``ts`` as a string,    ``schema`` or
             a negative ``price`` or ``event_type`` ``"like"``  ``unknown_event_type``
duplicate    the same bytes (same event_id) sent again a few    valid (a dedup stage
             messages later                                     must drop the copy)
late         the event with ``ts`` pushed back by ``late_by``,  valid (a watermark
             emitted at its normal position                     stage calls it late)
============ ================================================== ===========================

Every injected fault is listed in the truth sink as
``{"event_id", "kind": "fault", "fault": <kind>, "detail"}``. Faults change the transport,
never the ground truth: the oracle metrics in the report are computed on the generated
views as if every message had arrived intact.

>>> FaultRates.parse("malformed=0.01, late=0.02")
FaultRates(malformed=0.01, missing=0.0, invalid=0.0, duplicate=0.0, late=0.02)
>>> FaultRates.parse("slow=0.1")
Traceback (most recent call last):
...
ValueError: --faults: unknown fault kind 'slow'; expected one of malformed, missing, invalid, duplicate, late
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields
from typing import Final, Literal

import numpy as np
import orjson

FaultKind = Literal["malformed", "missing", "invalid", "duplicate", "late"]
FAULT_KINDS: Final[tuple[FaultKind, ...]] = ("malformed", "missing", "invalid", "duplicate", "late")
#: required fields a ``missing`` fault may remove
MISSABLE: Final = ("schema_version", "event_id", "event_type", "ts", "user_id", "item_id", "session_id", "price")
#: how a duplicate trails its original, in messages (uniform 1..this)
DUPLICATE_MAX_LAG: Final = 50


@dataclass(frozen=True)
class FaultRates:
    """Per-event probability of each fault kind (0 = off); their sum is at most 1."""

    malformed: float = 0.0
    missing: float = 0.0
    invalid: float = 0.0
    duplicate: float = 0.0
    late: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            rate = getattr(self, f.name)
            if not (isinstance(rate, (int, float)) and math.isfinite(rate) and 0 <= rate <= 1):
                msg = f"--faults: rate of {f.name!r} must be between 0 and 1, got {rate!r}"
                raise ValueError(msg)
        if self.total > 1:
            msg = f"--faults: the rates add up to {self.total:g}; at most 1 is possible"
            raise ValueError(msg)

    @property
    def total(self) -> float:
        """Probability that an event carries some fault."""
        return float(sum(astuple(self)))

    @classmethod
    def parse(cls, spec: str) -> FaultRates:
        """Read ``kind=rate,kind=rate``; an empty spec means no faults."""
        rates: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            kind, sep, value = part.partition("=")
            kind = kind.strip()
            if not sep:
                msg = f"--faults: expected kind=rate, got {part!r}"
                raise ValueError(msg)
            if kind not in FAULT_KINDS:
                msg = f"--faults: unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}"
                raise ValueError(msg)
            try:
                rates[kind] = float(value)
            except ValueError:
                msg = f"--faults: rate of {kind!r} must be a number, got {value.strip()!r}"
                raise ValueError(msg) from None
        return cls(**rates)


@dataclass(frozen=True)
class Injected:
    """The faulted form of one block, in emission order.

    ``source[j]`` is the index (into the block) of the event message ``j`` carries; a
    duplicate appears twice, its second copy flagged in ``is_copy``. ``records`` lists
    ``(index, kind, detail)`` per fault, by index.
    """

    values: list[bytes]
    source: np.ndarray  # (M,) int64, M = block size + duplicates
    is_copy: np.ndarray  # (M,) bool: a duplicate's second copy
    records: list[tuple[int, FaultKind, str]]

    def event_position(self) -> np.ndarray:
        """Per message, the block index of the last original sent up to it; (M,), non-decreasing."""
        return np.cumsum(~self.is_copy) - 1


def inject(
    values: list[bytes], ts_ms: np.ndarray, rates: FaultRates, late_by_ms: int, rng: np.random.Generator
) -> Injected:
    """Apply faults to one block of serialised events (``values[k]`` has event time ``ts_ms[k]``).

    >>> rng = np.random.default_rng(0)
    >>> out = inject([b'{"ts":5,"a":1}'] * 3, np.array([5, 5, 5]), FaultRates(late=1.0), 2, rng)
    >>> out.values[0], [r[1] for r in out.records]
    (b'{"ts":3,"a":1}', ['late', 'late', 'late'])
    """
    n = len(values)
    if rates.total == 0 or n == 0:
        return Injected(values, np.arange(n, dtype=np.int64), np.zeros(n, dtype=bool), [])
    thresholds = np.cumsum([getattr(rates, k) for k in FAULT_KINDS])
    kind_of = np.searchsorted(thresholds, rng.random(n), side="right")  # len(FAULT_KINDS) = none
    hit = np.flatnonzero(kind_of < len(FAULT_KINDS))
    out = list(values)
    records: list[tuple[int, FaultKind, str]] = []
    dup_at: list[int] = []
    dup_src: list[int] = []
    for k in hit.tolist():
        kind = FAULT_KINDS[kind_of[k]]
        value = values[k]
        if kind == "malformed":
            cut = int(rng.integers(1, len(value) - 1))
            out[k] = value[:cut]
            detail = f"cut after byte {cut} of {len(value)}"
        elif kind == "missing":
            obj = orjson.loads(value)
            name = MISSABLE[int(rng.integers(len(MISSABLE)))]
            del obj[name]
            out[k] = orjson.dumps(obj)
            detail = f"missing field {name!r}"
        elif kind == "invalid":
            out[k], detail = _invalidate(orjson.loads(value), int(rng.integers(3)))
        elif kind == "duplicate":
            lag = int(rng.integers(1, DUPLICATE_MAX_LAG + 1))
            dup_at.append(min(k + lag, n - 1))
            dup_src.append(k)
            detail = f"sent again {min(lag, n - 1 - k)} messages later"
        else:  # late
            ts = int(ts_ms[k])
            out[k] = value.replace(b'"ts":%d,' % ts, b'"ts":%d,' % (ts - late_by_ms), 1)
            detail = f"ts {ts - late_by_ms} is {late_by_ms} ms behind its position"
        records.append((k, kind, detail))
    source = np.arange(n, dtype=np.int64)
    is_copy = np.zeros(n, dtype=bool)
    if dup_src:
        # a copy goes right after the message at position dup_at (0.5 sorts it there)
        order = np.argsort(np.concatenate([source.astype(np.float64), np.asarray(dup_at) + 0.5]), kind="stable")
        source = np.concatenate([source, np.asarray(dup_src, dtype=np.int64)])[order]
        is_copy = np.concatenate([is_copy, np.ones(len(dup_src), dtype=bool)])[order]
        out = [out[s] for s in source.tolist()]
    return Injected(out, source, is_copy, records)


def _invalidate(obj: dict[str, object], variant: int) -> tuple[bytes, str]:
    """Give one field a value the schema refuses; return the bytes and a detail."""
    if variant == 0:
        obj["ts"] = str(obj["ts"])
        detail = f"ts as a string {obj['ts']!r}"
    elif variant == 1:
        obj["price"] = -float(obj["price"])  # type: ignore[arg-type]
        detail = f"negative price {obj['price']}"
    else:
        obj["event_type"] = "like"
        detail = "event_type 'like'"
    return orjson.dumps(obj), detail
