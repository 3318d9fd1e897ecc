"""Training examples: load the backfill's JSONL into columns, split by time, normalise.

The features flow's backfill writes one line per view, in event-time order::

    {"event_id": "e1", "ts": 1732233600000, "user_id": "u1", "item_id": "i9",
     "category": "Books", "price": 12.5, "country": "US", "device": "mobile",
     "session_id": "s1", "counts": [36 ints], "item_as_of": 1732233590000,
     "labels": {"click": 1, "add_cart": 0, "purchase": 0}}

:func:`load_examples` reads it with orjson into numpy columns (:class:`Examples`). The
split is by event time, never random (:class:`TimeSplit`): the time range is cut into three
consecutive parts, training (earliest), validation (early stopping and the choice of the
kept weights only) and test (the latest part, never seen by training or model selection;
the evaluation reports on it alone), so both held-out parts look like the future the model
will score. :class:`Normaliser` is fitted on the training part only and stored in the
artifact, so serving applies the exact same arithmetic.

>>> split = TimeSplit.from_fractions(np.array([0, 100, 1000]), val_fraction=0.2, test_fraction=0.1)
>>> split.val_start_ms, split.test_start_ms
(700, 900)
>>> [m.tolist() for m in split.masks(np.array([0, 100, 700, 899, 900, 1000]))]
[[True, True, False, False, False, False], [False, False, True, True, False, False], [False, False, False, False, True, True]]
>>> norm = Normaliser.fit(np.array([[1.0, 5.0], [3.0, 5.0]], dtype=np.float32))
>>> norm.apply(np.array([[2.0, 5.0]], dtype=np.float32)).tolist()
[[0.0, 0.0]]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from features.spec import FeatureSpec, featurize

LABELS = ("click", "add_cart", "purchase")
_STRING_FIELDS = ("event_id", "user_id", "item_id", "category", "country", "device")
FEATURIZE_CHUNK = 65_536  # rows per featurize() call: bounds the float64 temporaries (~20 MB)


class ExamplesError(ValueError):
    """The examples file is missing, empty or malformed; the message names the file and line."""


@dataclass(frozen=True)
class Examples:
    """Views with their point-in-time counts and labels, as columns (N rows).

    Strings stay Python lists (featurize hashes them, through its cache of ids seen before); numbers are numpy arrays.
    """

    event_id: list[str]
    ts: np.ndarray  # (N,) int64 event time, epoch ms UTC
    user_id: list[str]
    item_id: list[str]
    category: list[str]
    country: list[str]
    device: list[str]
    price: np.ndarray  # (N,) float64 USD
    counts: np.ndarray  # (N, count_len) int32 point-in-time counts, FeatureSpec layout
    labels: dict[str, np.ndarray]  # "click" / "add_cart" / "purchase" -> (N,) int8 in {0, 1}

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def click(self) -> np.ndarray:
        """(N,) int8 click labels, the model's target."""
        return self.labels["click"]

    def select(self, rows: np.ndarray) -> Examples:
        """The rows given by a boolean mask or an index array, in that order."""
        idx = np.flatnonzero(rows) if rows.dtype == bool else np.asarray(rows)
        pick = idx.tolist()
        strings = {f: [getattr(self, f)[i] for i in pick] for f in _STRING_FIELDS}
        return Examples(
            **strings,
            ts=self.ts[idx],
            price=self.price[idx],
            counts=self.counts[idx],
            labels={k: v[idx] for k, v in self.labels.items()},
        )

    def featurize(self, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs via :func:`features.spec.featurize`, the serving code path.

        Returns:
            dense (N, n_dense) float32 (not normalised) and sparse (N, n_sparse) int64.
        """
        n = len(self)
        dense = np.empty((n, len(spec.dense_names)), dtype=np.float32)
        sparse = np.empty((n, len(spec.sparse_names)), dtype=np.int64)
        for a in range(0, n, FEATURIZE_CHUNK):
            b = min(a + FEATURIZE_CHUNK, n)
            dense[a:b], sparse[a:b] = featurize(
                spec,
                self.counts[a:b],
                self.user_id[a:b],
                self.item_id[a:b],
                self.category[a:b],
                self.country[a:b],
                self.device[a:b],
                self.ts[a:b],
                self.price[a:b],
            )
        return dense, sparse


def _parse_lines(path: Path, lines: list[bytes]) -> list[dict[str, Any]]:
    try:
        records = [orjson.loads(line) for line in lines if line.strip()]
    except orjson.JSONDecodeError:
        records = []
    if len(records) == sum(1 for line in lines if line.strip()) and all(type(r) is dict for r in records):
        return records
    for lineno, line in enumerate(lines, start=1):  # slow path: name the first bad line
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            msg = f"examples file {path} line {lineno}: not JSON ({e})"
            raise ExamplesError(msg) from None
        if not isinstance(rec, dict):
            msg = f"examples file {path} line {lineno}: expected a JSON object, got {type(rec).__name__}"
            raise ExamplesError(msg)
    raise AssertionError  # unreachable: the fast path failed, so some line is bad


def _column(path: Path, records: list[dict[str, Any]], field: str) -> list[Any]:
    try:
        return [r[field] for r in records]
    except KeyError:
        lineno = next(i for i, r in enumerate(records, start=1) if field not in r)
        msg = f"examples file {path} record {lineno}: missing field {field!r}"
        raise ExamplesError(msg) from None


def load_examples(path: str | Path, max_examples: int | None = None, spec: FeatureSpec | None = None) -> Examples:
    """Read the backfill's examples JSONL into columns.

    Args:
        path: the JSONL file.
        max_examples: read only the first this many lines (the earliest views); None: all.
        spec: the feature layout the counts must follow (default ``FeatureSpec()``).

    Raises:
        ExamplesError: missing or empty file, a malformed line, or counts of the wrong length.
    """
    path = Path(path)
    spec = spec or FeatureSpec()
    if not path.is_file():
        msg = f"examples file {path} not found; write it with the features flow's backfill"
        raise ExamplesError(msg)
    with path.open("rb") as f:
        lines = f.read().splitlines() if max_examples is None else [line for _, line in zip(range(max_examples), f)]
    records = _parse_lines(path, lines)
    if not records:
        msg = f"examples file {path} holds no examples"
        raise ExamplesError(msg)
    counts_col = _column(path, records, "counts")
    bad = next((i for i, c in enumerate(counts_col, start=1) if len(c) != spec.count_len), None)
    if bad is not None:
        msg = f"examples file {path} record {bad}: counts has {len(counts_col[bad - 1])} values, expected {spec.count_len}"
        raise ExamplesError(msg)
    labels_col = _column(path, records, "labels")
    try:
        labels = {k: np.array([lab[k] for lab in labels_col], dtype=np.int8) for k in LABELS}
        ts = np.array(_column(path, records, "ts"), dtype=np.int64)
        price = np.array(_column(path, records, "price"), dtype=np.float64)
        counts = np.array(counts_col, dtype=np.int32)
    except (KeyError, TypeError, ValueError) as e:
        msg = f"examples file {path}: a label, ts, price or counts value is missing or not a number ({e!r})"
        raise ExamplesError(msg) from None
    strings = {f: _column(path, records, f) for f in _STRING_FIELDS}
    return Examples(**strings, ts=ts, price=price, counts=counts, labels=labels)


PARTS = ("train", "validation", "test")


@dataclass(frozen=True)
class TimeSplit:
    """Three consecutive event-time ranges over ``[start_ms, end_ms]``, all bounds epoch ms UTC.

    * train: ``start_ms <= ts < val_start_ms`` (fits the weights and the normaliser);
    * validation: ``val_start_ms <= ts < test_start_ms`` (early stopping and the kept
      weights, for the DLRM and the logistic-regression baseline);
    * test: ``test_start_ms <= ts <= end_ms`` (the evaluation reports on it; nothing in
      training or model selection reads it).

    The training run stores this in the artifact, and evaluation reads it back, so both use
    the same bounds even on an examples file that has grown since.
    """

    start_ms: int  # first event time of the training run's examples
    val_start_ms: int  # first validation millisecond
    test_start_ms: int  # first test millisecond
    end_ms: int  # last event time of the training run's examples (inclusive)
    val_fraction: float  # share of [start_ms, end_ms] given to validation
    test_fraction: float  # share of [start_ms, end_ms] given to test
    label_wait_ms: int = 0  # views this close to the newest example belong to no part (labels not yet complete)

    def __post_init__(self) -> None:
        bounds = (self.start_ms, self.val_start_ms, self.test_start_ms, self.end_ms)
        if not all(type(b) is int for b in bounds) or list(bounds) != sorted(bounds):
            msg = f"TimeSplit bounds must be integers with start <= val_start <= test_start <= end (ms), got {bounds}"
            raise ValueError(msg)

    @classmethod
    def from_fractions(cls, ts: np.ndarray, val_fraction: float, test_fraction: float,
                       label_wait_ms: int = 0) -> TimeSplit:
        """Cut ``[min(ts), max(ts) - label_wait_ms]``: the last ``test_fraction`` of the span
        tests, the ``val_fraction`` before it validates, the rest trains.

        Fractions are of the time span, not of the example count: traffic varies over the
        day, so the parts' counts follow the traffic. ``label_wait_ms``: a view's clicks
        come after it, so the views just before the end of the history have labels that
        are still incomplete (a click that would have come is missing); they belong to no
        part, instead of biasing every part's newest views (the test part's most of all)
        towards "no click".

        >>> TimeSplit.from_fractions(np.array([0, 1000, 1200]), 0.2, 0.1, label_wait_ms=200).end_ms
        1000
        """
        if label_wait_ms < 0:
            msg = f"label_wait_ms must be >= 0, got {label_wait_ms}"
            raise ValueError(msg)
        if not 0.0 < val_fraction < 1.0:
            msg = f"val_fraction must be in (0, 1), got {val_fraction}"
            raise ValueError(msg)
        if not 0.0 < test_fraction < 1.0:
            msg = f"test_fraction must be in (0, 1), got {test_fraction}"
            raise ValueError(msg)
        if val_fraction + test_fraction >= 1.0:
            msg = f"val_fraction + test_fraction must be < 1 to leave a training part, got {val_fraction} + {test_fraction}"
            raise ValueError(msg)
        t0 = int(ts.min())
        t1 = int(ts.max()) - int(label_wait_ms)
        if t1 <= t0:
            msg = (f"the examples span {int(ts.max()) - t0} ms, not more than the label wait of {label_wait_ms} ms: "
                   "generate a longer history or lower the label wait")
            raise ExamplesError(msg)
        span = t1 - t0
        return cls(
            start_ms=t0,
            val_start_ms=t0 + int(span * (1.0 - val_fraction - test_fraction)),
            test_start_ms=t0 + int(span * (1.0 - test_fraction)),
            end_ms=t1,
            val_fraction=float(val_fraction),
            test_fraction=float(test_fraction),
            label_wait_ms=int(label_wait_ms),
        )

    def bounds(self, part: str) -> tuple[int, int]:
        """``(first ms, last ms)`` of a part, both inclusive; ``part`` is one of :data:`PARTS`."""
        if part == "train":
            return self.start_ms, self.val_start_ms - 1
        if part == "validation":
            return self.val_start_ms, self.test_start_ms - 1
        if part == "test":
            return self.test_start_ms, self.end_ms
        msg = f"part must be one of {PARTS}, got {part!r}"
        raise ValueError(msg)

    def masks(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boolean masks (train, validation, test) over ``ts``; each part must be non-empty.

        Rows outside ``[start_ms, end_ms]`` belong to no part.

        Raises:
            ExamplesError: a part holds no example; the message gives every part's bounds and count.
        """
        masks = []
        for part in PARTS:
            lo, hi = self.bounds(part)
            masks.append((ts >= lo) & (ts <= hi))
        train, val, test = masks
        if not (train.any() and val.any() and test.any()):
            counts = (f"{p} [{self.bounds(p)[0]}, {self.bounds(p)[1]}] ms: {int(m.sum())}" for p, m in zip(PARTS, masks, strict=True))
            parts = ", ".join(counts)
            msg = f"the time split leaves an empty part ({parts} examples); each part needs at least one"
            raise ExamplesError(msg)
        return train, val, test

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TimeSplit:
        """The split stored by :meth:`to_dict`; KeyError / TypeError / ValueError if malformed."""
        added_later = {"label_wait_ms"}  # older artifacts lack it: the default applies
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d or f.name not in added_later})


@dataclass(frozen=True)
class Normaliser:
    """Per-feature standardisation ``(x - mean) / std`` fitted on training rows.

    Constant features (std below ``min_std``) get std 1 so they pass through centred.
    """

    mean: np.ndarray  # (N_dense,) float32
    inv_std: np.ndarray  # (N_dense,) float32, 1 / std

    @classmethod
    def fit(cls, dense: np.ndarray, min_std: float = 1e-6) -> Normaliser:
        x = np.asarray(dense, dtype=np.float64)
        std = x.std(axis=0)
        std[std < min_std] = 1.0
        return cls(mean=x.mean(axis=0).astype(np.float32), inv_std=(1.0 / std).astype(np.float32))

    def apply(self, dense: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Normalised float32 copy of ``dense`` (B, N_dense), or written into ``out``.

        Training and serving both call this, so the arithmetic is identical bit for bit.
        """
        out = np.empty(dense.shape, dtype=np.float32) if out is None else out
        np.subtract(dense, self.mean, out=out)
        np.multiply(out, self.inv_std, out=out)
        return out

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "inv_std": self.inv_std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> Normaliser:
        return cls(mean=np.asarray(d["mean"], dtype=np.float32), inv_std=np.asarray(d["inv_std"], dtype=np.float32))
