"""What the Two-Tower retriever reads: the backfill's examples, the user profiles and the catalog.

* Queries: every view of the examples (``models.data`` describes the rows), with its context
  (device, hour), the user's profile and the user's history as of the view (``history``:
  recent items and per-category counts, features/README.md). A query's positive is the viewed
  item when the view was clicked: the retriever learns which item a user will click next.
* The catalog: every item of the items file (or topic), with its category, price and its
  point-in-time popularity as of a cut-off time (:meth:`Catalog.popularity_at`), read from the
  item counts of the latest view of each item before the cut-off: the same numbers the flow
  computed, never anything after the cut-off.
* Profiles: the latest record per key of the users and items topics or files (events/profiles.py).

>>> hashed("u1", 16) == hashed("u1", 16), 0 <= hashed("u1", 16) < 16
(True, True)
>>> price_bucket(np.array([0.5, 12.5, 5000.0])).tolist()
[4, 26, 85]
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from events.profiles import GENDERS, check_item, check_user
from events.schema import CATEGORIES, COUNTRIES, DEVICES
from features.spec import FeatureSpec
from models.data import ExamplesError

N_RECENT = 20  # recent items per query (the flow keeps FeaturesConfig.recent_items, default 20)
PRICE_BUCKETS = 100
AGE_BUCKETS = 100  # ages are years; the table is the seed notebook's size


def hashed(key: str, buckets: int) -> int:
    """crc32 bucket of an id (stable across processes and runs)."""
    return zlib.crc32(key.encode()) % buckets


def price_bucket(price: np.ndarray) -> np.ndarray:
    """``floor(10 * log1p(price))``, clipped to the table (0.1 log-units per bucket)."""
    return np.clip(np.floor(10.0 * np.log1p(np.asarray(price, dtype=np.float64))), 0, PRICE_BUCKETS - 1).astype(np.int64)


@dataclass(frozen=True)
class Profiles:
    """User profiles and the catalog, by id."""

    users: dict[str, dict[str, Any]]
    items: dict[str, dict[str, Any]]


def _latest_by_key(values: list[bytes], key: str, check: Any, where: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for n, raw in enumerate(values, start=1):
        if not raw.strip():
            continue
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            msg = f"{where} record {n}: not JSON ({e})"
            raise ExamplesError(msg) from None
        rejection = check(record)
        if rejection is not None:
            msg = f"{where} record {n}: {rejection.detail}"
            raise ExamplesError(msg)
        if record[key] not in out or out[record[key]]["updated_ms"] <= record["updated_ms"]:
            out[record[key]] = record
    if not out:
        msg = f"{where} holds no records"
        raise ExamplesError(msg)
    return out


def _read(source: str, what: str, bootstrap: str | None = None) -> tuple[list[bytes], str]:
    """The records of a JSONL file, or of a topic when ``source`` is ``topic:NAME``; and where they came from."""
    if source.startswith("topic:"):
        from broker.console import read_topic
        from broker.embedded import resolve_bootstrap

        topic = source.removeprefix("topic:")
        bootstrap = bootstrap or resolve_bootstrap(autostart=False)
        return [r.value or b"" for r in read_topic(bootstrap, topic)], f"topic {topic}"
    path = Path(source)
    if not path.is_file():
        msg = f"{what} file {path} not found; the producer writes it next to its output (see docs/catalog-and-profiles.md)"
        raise ExamplesError(msg)
    return path.read_bytes().splitlines(), f"{what} file {path}"


def load_profiles(users: str, items: str) -> Profiles:
    """Profiles from JSONL files, or from the topics when a source is ``topic:NAME``."""
    user_values, user_where = _read(users, "users")
    item_values, item_where = _read(items, "items")
    return Profiles(_latest_by_key(user_values, "user_id", check_user, user_where),
                    _latest_by_key(item_values, "item_id", check_item, item_where))


def load_table(source: str, what: str, bootstrap: str | None = None) -> dict[str, dict[str, Any]]:
    """The latest record per key of the users or items (``what``) file or topic; {} when there is none."""
    values, where = _read(source, what, bootstrap)
    if not any(v.strip() for v in values):
        return {}
    key, check = ("user_id", check_user) if what == "users" else ("item_id", check_item)
    return _latest_by_key(values, key, check, where)


@dataclass(frozen=True)
class Queries:
    """Views as retrieval queries, as columns (N rows); ``positive`` marks the clicked ones."""

    ts: np.ndarray  # (N,) int64 event time, epoch ms
    user_id: list[str]
    item_id: list[str]  # the viewed item
    item_index: np.ndarray  # (N,) int64 index of the viewed item in the catalog
    device: np.ndarray  # (N,) int64 index into DEVICES
    country: np.ndarray  # (N,) int64 index into COUNTRIES (the user's, from the event)
    hour: np.ndarray  # (N,) int64 UTC hour of day
    recent: np.ndarray  # (N, N_RECENT) int64 catalog indices of the recent items, -1 padded
    category_counts: np.ndarray  # (N, C, 4) float32 the user's per-category counts (24 h)
    item_counts: np.ndarray  # (N, 12) float32 the viewed item's point-in-time counts (3 horizons x 4 types)
    positive: np.ndarray  # (N,) bool: the view was clicked

    def __len__(self) -> int:
        return len(self.ts)

    def select(self, rows: np.ndarray) -> Queries:
        idx = np.flatnonzero(rows) if rows.dtype == bool else np.asarray(rows)
        pick = idx.tolist()
        return Queries(ts=self.ts[idx], user_id=[self.user_id[i] for i in pick], item_id=[self.item_id[i] for i in pick],
                       item_index=self.item_index[idx], device=self.device[idx], country=self.country[idx],
                       hour=self.hour[idx], recent=self.recent[idx], category_counts=self.category_counts[idx],
                       item_counts=self.item_counts[idx], positive=self.positive[idx])


@dataclass(frozen=True)
class Catalog:
    """Every item, in a fixed order (the index order of the retriever)."""

    item_ids: list[str]
    index: dict[str, int]
    category: np.ndarray  # (I,) int64 index into CATEGORIES
    price: np.ndarray  # (I,) float64 USD

    @classmethod
    def from_profiles(cls, profiles: Profiles) -> Catalog:
        ids = sorted(profiles.items, key=lambda i: (len(i), i))  # i0, i1, ..., i10: natural order
        cat = {c: n for n, c in enumerate(CATEGORIES)}
        return cls(ids, {i: n for n, i in enumerate(ids)},
                   np.array([cat[profiles.items[i]["category"]] for i in ids], dtype=np.int64),
                   np.array([profiles.items[i]["price"] for i in ids], dtype=np.float64))

    def __len__(self) -> int:
        return len(self.item_ids)

    def popularity_at(self, queries: Queries, cutoff_ms: int) -> np.ndarray:
        """(I, 12) float32: each item's point-in-time counts from its latest view before ``cutoff_ms``.

        Items without a view before the cut-off get zeros.
        """
        out = np.zeros((len(self), queries.item_counts.shape[1]), dtype=np.float32)
        before = np.flatnonzero(queries.ts < cutoff_ms)
        if len(before):
            order = before[np.argsort(queries.ts[before], kind="stable")]
            out[queries.item_index[order]] = queries.item_counts[order]  # later rows overwrite earlier ones
        return out


def load_queries(path: str | Path, catalog: Catalog, profiles: Profiles, spec: FeatureSpec | None = None,
                 max_examples: int | None = None) -> Queries:
    """Read the examples JSONL (rows with ``history``) into retrieval queries.

    Raises ExamplesError naming the file and record when a row lacks the history (an examples
    file written before the flow kept it) or names an item missing from the catalog.
    """
    spec = spec or FeatureSpec()
    path = Path(path)
    if not path.is_file():
        msg = f"examples file {path} not found; write it with the features flow's backfill"
        raise ExamplesError(msg)
    item_part = slice(spec.count_index("item", spec.horizons[0].name, "view"),
                      spec.count_index("item", spec.horizons[-1].name, "purchase") + 1)
    dev = {d: n for n, d in enumerate(DEVICES)}
    country = {c: n for n, c in enumerate(COUNTRIES)}
    cols: dict[str, list[Any]] = {k: [] for k in ("ts", "user", "item", "device", "country", "recent", "cats",
                                                    "counts", "click")}
    with path.open("rb") as f:
        for n, line in enumerate(f, start=1):
            if max_examples is not None and n > max_examples:
                break
            row = orjson.loads(line)
            history = row.get("history")
            if history is None:
                msg = (f"examples file {path} record {n}: no 'history' (written by an older flow); rerun the "
                       "features backfill to write it")
                raise ExamplesError(msg)
            item = row["item_id"]
            if item not in catalog.index:
                msg = f"examples file {path} record {n}: item {item!r} is not in the catalog"
                raise ExamplesError(msg)
            recent = [catalog.index.get(i, -1) for i in history["recent_items"][:N_RECENT]]
            cols["ts"].append(row["ts"])
            cols["user"].append(row["user_id"])
            cols["item"].append(item)
            cols["device"].append(dev[row["device"]])
            cols["country"].append(country[row["country"]])
            cols["recent"].append(recent + [-1] * (N_RECENT - len(recent)))
            cols["cats"].append(history["category_counts"])
            cols["counts"].append(row["counts"][item_part])
            cols["click"].append(row["labels"]["click"])
    if not cols["ts"]:
        msg = f"examples file {path} holds no examples"
        raise ExamplesError(msg)
    ts = np.array(cols["ts"], dtype=np.int64)
    return Queries(ts=ts, user_id=cols["user"], item_id=cols["item"],
                   item_index=np.array([catalog.index[i] for i in cols["item"]], dtype=np.int64),
                   device=np.array(cols["device"], dtype=np.int64), country=np.array(cols["country"], dtype=np.int64),
                   hour=(ts // 3_600_000) % 24, recent=np.array(cols["recent"], dtype=np.int64),
                   category_counts=np.array(cols["cats"], dtype=np.float32).reshape(len(ts), len(CATEGORIES), 4),
                   item_counts=np.array(cols["counts"], dtype=np.float32), positive=np.array(cols["click"]) == 1)


@dataclass(frozen=True)
class UserInputs:
    """What the user tower reads of a batch of queries (B rows)."""

    user_bucket: np.ndarray  # (B,) int64 hashed user id
    age: np.ndarray  # (B,) int64 age in years (0 when the profile is missing)
    gender: np.ndarray  # (B,) int64 index into GENDERS + 1 (0: missing profile)
    country: np.ndarray  # (B,) int64 index into COUNTRIES
    device: np.ndarray  # (B,) int64 index into DEVICES (the context's)
    hour: np.ndarray  # (B,) int64 UTC hour
    recent: np.ndarray  # (B, R) int64 catalog indices, -1 padded
    category_counts: np.ndarray  # (B, C, 4) float32


def user_inputs(queries: Queries, profiles: Profiles, user_buckets: int) -> UserInputs:
    """The user tower's inputs for queries; a user without a profile gets age 0 / gender 0."""
    gender = {g: n + 1 for n, g in enumerate(GENDERS)}
    age, gen = [], []
    for u in queries.user_id:
        p = profiles.users.get(u)
        age.append(p["age"] if p else 0)
        gen.append(gender[p["gender"]] if p else 0)
    return UserInputs(user_bucket=np.array([hashed(u, user_buckets) for u in queries.user_id], dtype=np.int64),
                      age=np.array(age, dtype=np.int64), gender=np.array(gen, dtype=np.int64),
                      country=queries.country, device=queries.device, hour=queries.hour, recent=queries.recent,
                      category_counts=queries.category_counts)
