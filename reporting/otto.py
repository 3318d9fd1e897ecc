"""OTTO's session file as rows of our contract: the adapter behind ``--format otto``.

The OTTO Recommender Systems Dataset (OTTO GmbH & Co KG, https://github.com/otto-de/recsys-dataset,
DOI 10.34740/KAGGLE/DSV/4991874, licence CC BY 4.0) is a real e-commerce clickstream. Its
``train.jsonl`` holds one anonymous session per line::

    {"session": 12899779, "events": [{"aid": 59625, "ts": 1661724000278, "type": "clicks"}, ...]}

How its fields map to ours:

=========== ================== ==================================================================
OTTO        ours               how
=========== ================== ==================================================================
``session`` ``user_id``        ``s{session}``: an OTTO session is one visitor's activity over the
                               four weeks the file covers, so it plays the part of a user
``aid``     ``item_id``        ``a{aid}``
``ts``      ``ts``             epoch ms; a value below 10^11 is taken as seconds (OTTO's Kaggle
                               copies use seconds) and multiplied by 1000
``type``    ``event_type``     ``clicks`` -> ``click``, ``carts`` -> ``add_cart``, ``orders`` ->
                               ``purchase``
(derived)   ``session_id``     ``s{session}-{k}``: the visitor's events split into visits where
                               :data:`VISIT_GAP_MS` (30 minutes) pass without an event, the usual
                               web-analytics rule
=========== ================== ==================================================================

Not in OTTO, so left out, never invented: views (OTTO logs no impressions; its clicks are
product-page visits), category, price, country (hence local time), device, ``view_id`` and
rating. The exploration skips what needs them and says so. A record that breaks the format
is refused with a reason (``unparseable``, ``schema``, ``unknown_event_type``,
``ts_out_of_range``), as events of our contract are.

>>> line = b'{"session": 3, "events": [{"aid": 7, "ts": 1659304800000, "type": "clicks"},' \\
...        b' {"aid": 7, "ts": 1659304860000, "type": "carts"}, {"aid": 9, "ts": 1659312000000, "type": "clicks"}]}'
>>> rows, refused = session_rows(line)
>>> [(r[0], r[2], r[3], r[4]) for r in rows], refused
([(1, 's3', 'a7', 's3-0'), (2, 's3', 'a7', 's3-0'), (1, 's3', 'a9', 's3-1')], [])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

import orjson

from events.schema import EVENT_TYPE_INDEX, TS_MIN_MS, Rejection
from reporting.sources import CHUNK, Chunk, Row

OTTO_TYPES: Final = {"clicks": "click", "carts": "add_cart", "orders": "purchase"}
VISIT_GAP_MS: Final = 30 * 60 * 1000  # a visit ends after 30 minutes without an event
SECONDS_BELOW: Final = 10**11  # a ts below this is in seconds (10^11 ms is 1973; 10^11 s is year 5138)
MISSING_FIELDS: Final = ("view", "category", "price", "country", "device", "view_id", "rating")
ATTRIBUTION: Final = ("OTTO Recommender Systems Dataset, OTTO (GmbH & Co KG), CC BY 4.0, "
                      "DOI 10.34740/KAGGLE/DSV/4991874")


def _event(e: Any) -> tuple[int, int, int] | Rejection:
    """(type index, ts ms, aid) of one OTTO event, or why it is refused."""
    if not isinstance(e, dict):
        return Rejection("schema", f"an OTTO event must be an object, got {type(e).__name__}")
    aid, ts, kind = e.get("aid"), e.get("ts"), e.get("type")
    if type(aid) is not int or type(ts) is not int:
        return Rejection("schema", f"OTTO event needs integer aid and ts, got aid {aid!r}, ts {ts!r}")
    if kind not in OTTO_TYPES:
        return Rejection("unknown_event_type", f"OTTO type {kind!r}; expected one of {', '.join(OTTO_TYPES)}")
    if 0 < ts < SECONDS_BELOW:
        ts *= 1000
    if ts < TS_MIN_MS:
        return Rejection("ts_out_of_range", f"ts {ts} is before 2000-01-01")
    return EVENT_TYPE_INDEX[OTTO_TYPES[kind]], ts, aid


def session_rows(line: bytes) -> tuple[list[Row], list[Rejection]]:
    """The rows of one OTTO session line (split into visits) and the events it refuses."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        return [], [Rejection("unparseable", f"invalid JSON: {e}")]
    if not isinstance(obj, dict) or type(obj.get("session")) is not int or not isinstance(obj.get("events"), list):
        return [], [Rejection("schema", "an OTTO line needs an integer 'session' and a list 'events'")]
    user = f"s{obj['session']}"
    refused: list[Rejection] = []
    events: list[tuple[int, int, int]] = []
    for raw in obj["events"]:
        parsed = _event(raw)
        if isinstance(parsed, Rejection):
            refused.append(parsed)
        else:
            events.append(parsed)
    events.sort(key=lambda t: t[1])
    rows: list[Row] = []
    visit, last = 0, None
    for kind, ts, aid in events:
        if last is not None and ts - last > VISIT_GAP_MS:
            visit += 1
        last = ts
        rows.append((kind, ts, user, f"a{aid}", f"{user}-{visit}", None, None, None))
    return rows, refused


def otto_chunks(lines: Iterable[bytes], size: int = CHUNK) -> Iterator[Chunk]:
    """Chunks of about ``size`` events; a session's events stay in one chunk (its visits are whole)."""
    chunk = Chunk()
    for line in lines:
        if not line.strip():
            continue
        rows, refused = session_rows(line)
        chunk.rows += rows
        chunk.refused += refused
        if len(chunk.rows) + len(chunk.refused) >= size:
            yield chunk
            chunk = Chunk()
    yield chunk
