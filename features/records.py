"""The bytes the features flow writes: every output record is keyed and deterministic.

Replaying the same input yields the same bytes, so the duplicates that an at-least-once
sink writes after a restart are harmless upserts:

* window statistics: key ``<entity id>@<window start ms>``;
* dead letters: key ``<source>:<partition>:<offset>`` (one per input record);
* scores and event features: key ``event_id``.

A record leaves a stage as ``(destination, key, value)``; the destination is a logical
name from :data:`DESTINATIONS`, mapped to a topic (or file) by the sink.

>>> key, value = window_record("user", "u7", 1_732_233_600_000, 60_000, (10, 6, 2, 1), Priors())
>>> key
b'u7@1732233600000'
>>> orjson.loads(value)["ctr"], orjson.loads(value)["ctr_smoothed"]
(0.6, 0.6)
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final, Literal

import orjson

from features.spec import Priors
from features.tiles import unpack_window

Destination = Literal["user_features", "item_features", "dead_letters", "scores", "event_features", "recommendations"]
DESTINATIONS: Final[tuple[Destination, ...]] = (
    "user_features",
    "item_features",
    "dead_letters",
    "scores",
    "event_features",
    "recommendations",
)
Record = tuple[str, bytes, bytes]  # (destination, key, value)

#: where in the flow a dead letter was refused
Stage = Literal["source", "decode", "time_check", "dedup", "watermark", "slate_request"]


@lru_cache(maxsize=1024)  # every record of a window shares its start
def iso_utc(ms: int) -> str:
    """Epoch ms as an ISO-8601 UTC string.

    >>> iso_utc(1_732_233_600_000)
    '2024-11-22T00:00:00Z'
    """
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None


def window_stats(counts: tuple[int, int, int, int], priors: Priors) -> dict[str, Any]:
    """Counts and rates of one window: raw ratios (null on a zero denominator) and smoothed ones."""
    views, clicks, carts, purchases = counts
    return {
        "views": views,
        "clicks": clicks,
        "add_carts": carts,
        "purchases": purchases,
        "ctr": _ratio(clicks, views),
        "ctr_smoothed": round(priors.ctr.smooth(clicks, views), 6),
        "cart_per_click": _ratio(carts, clicks),
        "cart_per_click_smoothed": round(priors.cart_per_click.smooth(carts, clicks), 6),
        "purchase_per_click": _ratio(purchases, clicks),
        "purchase_per_click_smoothed": round(priors.purchase_per_click.smooth(purchases, clicks), 6),
        "purchase_per_view": _ratio(purchases, views),
        "purchase_per_view_smoothed": round(priors.purchase_per_view.smooth(purchases, views), 6),
    }


STATS_CACHE_ENTRIES: Final = 8192  # per priors; a few thousand count combinations cover nearly all windows
STATS_CACHE_PRIORS: Final = 8  # priors objects with a cache (a flow has one)
#: id(priors) -> (priors, {packed counts: the stats' JSON members}). Keyed by identity:
#: hashing the nested frozen dataclass costs ~0.5 us per window record (2026-12-01).
_stats_json: dict[int, tuple[Priors, dict[int, bytes]]] = {}


def _packed_stats_json(counts: int, priors: Priors) -> bytes:
    """The JSON members of :func:`window_stats` (``b'"views":1,...}'``: no opening brace), cached."""
    entry = _stats_json.get(id(priors))
    if entry is None or entry[0] is not priors:
        if len(_stats_json) >= STATS_CACHE_PRIORS:
            _stats_json.clear()
        entry = _stats_json[id(priors)] = (priors, {})
    cache = entry[1]
    members = cache.get(counts)
    if members is None:
        if len(cache) >= STATS_CACHE_ENTRIES:
            cache.clear()
        members = cache[counts] = orjson.dumps(window_stats(unpack_window(counts), priors))[1:]
    return members


def window_record(
    entity: Literal["user", "item"], entity_id: str, start_ms: int, length_ms: int, counts: tuple[int, ...] | int,
    priors: Priors,
) -> tuple[bytes, bytes]:
    """Key and value of one closed tumbling window of a user or an item (``counts`` packed or not).

    The value is the JSON object ``{"<entity>_id", "window_start", "window_end",
    "window_start_utc", <window_stats>}``, assembled from pieces: the stats part is cached
    per count combination (it is most of the record; a test checks the bytes against
    ``orjson.dumps`` of the whole dict).

    >>> window_record("user", "u1", 60_000, 60_000, (2, 1, 0, 0), Priors())[1][:70]
    b'{"user_id":"u1","window_start":60000,"window_end":120000,"window_start'
    """
    if isinstance(counts, int):
        stats = _packed_stats_json(counts, priors)
    else:
        stats = orjson.dumps(window_stats(counts, priors))[1:]  # type: ignore[arg-type]
    value = b"%s%s,\"window_start\":%d,\"window_end\":%d,\"window_start_utc\":\"%s\",%s" % (
        _ID_MEMBER[entity], json_string(entity_id), start_ms, start_ms + length_ms, iso_utc(start_ms).encode(), stats,
    )
    return f"{entity_id}@{start_ms}".encode(), value


_ID_MEMBER: Final = {"user": b'{"user_id":', "item": b'{"item_id":'}


def json_string(value: str) -> bytes:
    """``orjson.dumps(value)`` for a string, without its cost for the common plain ids.

    Printable ASCII without ``"`` and ``\\`` needs no escaping; anything else goes through
    orjson (``dumps`` starts every output with a 1 KiB buffer, ~0.5 µs in the flow, 2026-12-02).

    >>> json_string("u42"), json_string('a"b')
    (b'"u42"', b'"a\\\\"b"')
    """
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return b'"' + value.encode() + b'"'
    return orjson.dumps(value)


def dead_letter(
    reason: str,
    stage: Stage,
    detail: str,
    source: str,
    partition: int,
    offset: int,
    payload: bytes | None,
    event: dict[str, Any] | None = None,
) -> tuple[bytes, bytes]:
    """Key and value of a refused input record; the original bytes travel with it.

    The payload is kept as text when it is valid UTF-8, else base64 (``payload_b64``).
    """
    value: dict[str, Any] = {
        "reason": reason,
        "stage": stage,
        "detail": detail,
        "source": {"topic": source, "partition": partition, "offset": offset},
    }
    if event is not None:
        value["event_id"] = event.get("event_id")
        value["ts"] = event.get("ts")
    if payload is None:
        value["payload"] = None
    else:
        try:
            value["payload"] = payload.decode("utf-8")
        except UnicodeDecodeError:
            value["payload_b64"] = base64.b64encode(payload).decode("ascii")
    return f"{source}:{partition}:{offset}".encode(), orjson.dumps(value)


def original_payload(dead_letter_value: bytes) -> bytes | None:
    """The exact input bytes carried by a dead-letter record.

    >>> _, v = dead_letter("late", "watermark", "x", "interactions", 0, 5, b"\\xff{")
    >>> original_payload(v)
    b'\\xff{'
    """
    value = orjson.loads(dead_letter_value)
    if "payload_b64" in value:
        return base64.b64decode(value["payload_b64"])
    payload = value.get("payload")
    return None if payload is None else payload.encode("utf-8")


#: A score record's JSON, the members in the order of the dict it equals (strings pre-encoded).
_SCORE_TEMPLATE: Final = (b'{"event_id":"%b","user_id":"%b","item_id":"%b","ts":%d,"score":%b,"model_version":%b,'
                          b'"features_as_of":%d,"item_features_as_of":%d}')


def _json_members(values: Sequence[Any], strings: bool) -> list[bytes]:
    """Each value's JSON text, from one ``orjson.dumps`` of the whole list (strings without their quotes).

    Splitting the array's text is exact: inside an encoded string every ``"`` is escaped,
    so ``","`` only occurs between two strings; numbers, ``null`` and ``true`` hold no comma.
    """
    if strings:
        return orjson.dumps(values)[2:-2].split(b'","')
    return orjson.dumps(values)[1:-1].split(b",")


def score_records(
    event_ids: Sequence[str], user_ids: Sequence[str], item_ids: Sequence[str], ts_ms: Sequence[int],
    scores: Sequence[float], model_version: str, item_as_of: Sequence[int],
) -> list[Record]:
    """``("scores", key, value)`` of a batch of scored views, in order, from its columns.

    One record per view: event_id, user_id, item_id, ts, the score, the model version, the
    as-of time of the user features (the event's own time: they count everything before
    it) and of the item features (the item cut). Built from columns the scorer gathered
    anyway: the strings and the scores are JSON-encoded one column at a time and each
    record is filled into a template. The bytes equal ``orjson.dumps`` of the record's dict
    (a property test checks it). One ``dumps`` per record spends most of its time in
    ``malloc`` (orjson starts each output with a 1 KiB buffer); the template costs under a
    third of that (2026-12-02).

    >>> records = score_records(["e1"], ["u1"], ["i1"], [60000], [0.25], "v1", [0])
    >>> [(dest, key, orjson.loads(value)["score"]) for dest, key, value in records]
    [('scores', b'e1', 0.25)]
    """
    if not event_ids:
        return []
    events, users, items = (_json_members(c, strings=True) for c in (event_ids, user_ids, item_ids))
    numbers = _json_members(scores, strings=False)
    version = orjson.dumps(model_version)
    template = _SCORE_TEMPLATE
    return [
        ("scores", event_id.encode(), template % (e, u, i, t, score, version, t, cut))
        for event_id, e, u, i, t, score, cut in zip(event_ids, events, users, items, ts_ms, numbers, item_as_of,
                                                     strict=True)
    ]


def vector_fields(event: dict[str, Any], counts: list[int], item_as_of: int) -> dict[str, Any]:
    """The point-in-time vector of one event with the context the model needs.

    This is both the ``event-features`` record and the body of a training example, so
    the live vector and the backfill vector are written by the same code.
    """
    return {
        "event_id": event["event_id"],
        "event_type": event["event_type"],
        "ts": event["ts"],
        "user_id": event["user_id"],
        "item_id": event["item_id"],
        "category": event["category"],
        "price": event["price"],
        "country": event["country"],
        "device": event["device"],
        "session_id": event["session_id"],
        "counts": counts,
        "item_as_of": item_as_of,
    }
