"""Bytes of events and truth records, built with precomputed string pieces (about 1M events/s).

An event's bytes are exactly what ``orjson.dumps(Interaction(...).to_dict())`` gives, fields
in :data:`events.schema.FIELDS` order; a contract test holds the two together. Ids:

* ``event_id`` = ``{tag}-{counter}`` and ``session_id`` = ``{tag}-s{session}``, where the run
  tag is a short hash of everything that shapes the stream (seed, start, mode, rate, model), so
  ids are deterministic for a run and differ between runs that produce different events;
* ``user_id`` = ``u{n}``, ``item_id`` = ``i{n}``.

>>> len(run_tag("seed=1|start=0")), run_tag("seed=1|start=0") == run_tag("seed=2|start=0")
(8, False)
"""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Final

import numpy as np
import orjson

from events.schema import CATEGORIES, COUNTRIES, DEVICES, EVENT_TYPES, FIELDS, SCHEMA_VERSION, SERVED_SCHEMA_VERSION
from producers.synthetic.behavior import CHOICES
from producers.synthetic.stream import VIEW, EventBlock
from producers.synthetic.world import World

TRUTH_DECIMALS: Final = 5  # probabilities in truth records are rounded to this many decimals
_TRUTH_SCALE: Final = 10**TRUTH_DECIMALS
#: "0.00000" .. "1.00000": formatting by table lookup is 3x faster than float repr
_PROBABILITY_TEXT: Final = [f"{i / _TRUTH_SCALE:.{TRUTH_DECIMALS}f}" for i in range(_TRUTH_SCALE + 1)]


def run_tag(identity: str) -> str:
    """8 hex characters naming a run; ``identity`` lists what shapes its events."""
    return hashlib.sha256(identity.encode()).hexdigest()[:8]


class Serializer:
    """Turns :class:`EventBlock` rows into message keys, values and truth records."""

    def __init__(self, world: World, tag: str) -> None:
        self.tag = tag
        users, items = world.users, world.items
        self.user_ids = [f"u{n}" for n in range(len(users.age))]
        self.user_keys = [u.encode() for u in self.user_ids]
        # the pieces between fixed fields; ctx is indexed by country * len(DEVICES) + device
        self._head = [f'","event_type":"{t}","ts":' for t in EVENT_TYPES]
        self._item = [f'i{n}","session_id":"{tag}-s' for n in range(len(items.price))]
        self._item_tail = [
            f'","category":"{CATEGORIES[c]}","price":{orjson.dumps(float(p)).decode()}'
            for c, p in zip(items.category.tolist(), items.price.tolist(), strict=True)
        ]
        self._ctx = [f',"country":"{c}","device":"{d}","view_id":' for c in COUNTRIES for d in DEVICES]
        self._user_country = users.country.astype(np.int64) * len(DEVICES)
        self._rating = ["null", "1", "2", "3", "4", "5"]
        self._prefix = f'{{"schema_version":{SCHEMA_VERSION},"event_id":"{tag}-'
        self.experiment: tuple[str, tuple[str, ...]] | None = None  # (name, arm names) in experiment mode
        self.slate_truth: dict[int, np.ndarray] = {}  # slate -> expected clicks per arm, until its first view's truth
        self.slate_origin: dict[int, str] = {}  # slate -> request_id of the flow's slate it showed, likewise
        self.served_sessions = np.zeros(0, dtype=np.int64)  # per arm: served sessions written (their rank-1 views)

    def for_experiment(self, name: str, arms: tuple[str, ...], slate_truth: dict[int, np.ndarray],
                       slate_origin: dict[int, str] | None = None) -> None:
        """Write served sessions' events as version 2 and their truth with the slates' potential outcomes.

        ``slate_truth`` (and ``slate_origin``: the flow's ``request_id`` of a slate the ``pipeline``
        policy showed) are filled by the serving code (:class:`producers.synthetic.serving.Serving`)
        and emptied here: each slate's entry goes with the truth record of its first view.
        Names are plain (``experiments.design``), so they need no JSON escaping.
        """
        self.experiment, self.slate_truth = (name, arms), slate_truth
        self.slate_origin = {} if slate_origin is None else slate_origin
        self.served_sessions = np.zeros(len(arms), dtype=np.int64)

    def _served_suffix(self, arm: int, slate: int, position: int) -> str:
        assert self.experiment is not None
        name, arms = self.experiment
        return f',"experiment":"{name}","arm":"{arms[arm]}","slate_id":"{self.tag}-x{slate}","position":{position}}}'

    def event_ids(self, counters: np.ndarray) -> list[str]:
        """``event_id`` strings of event counters."""
        tag = self.tag
        return [f"{tag}-{c}" for c in counters.tolist()]

    def keys(self, block: EventBlock) -> list[bytes]:
        """Message keys (``user_id``)."""
        uk = self.user_keys
        return [uk[u] for u in block.user.tolist()]

    def values(self, block: EventBlock, ts_ms: np.ndarray) -> list[bytes]:
        """Event bytes of every row, with event times ``ts_ms`` (int64, (n,))."""
        tag, rating = self.tag, self._rating
        tails = [
            'null,"rating":null}' if v < 0 else f'"{tag}-{v}","rating":{rating[r]}}}'
            for v, r in zip(block.view.tolist(), block.rating.tolist(), strict=True)
        ]
        head, user, item, item_tail, ctx, prefix = (
            self._head, self.user_ids, self._item, self._item_tail, self._ctx, self._prefix
        )  # fmt: skip
        ctx_index = (self._user_country[block.user] + block.device).tolist()
        values = [
            f'{prefix}{c}{head[e]}{t},"user_id":"{user[u]}","item_id":"{item[i]}{s}{item_tail[i]}{ctx[x]}{tail}'.encode()
            for c, e, t, u, i, s, x, tail in zip(
                block.counter.tolist(), block.etype.tolist(), ts_ms.tolist(), block.user.tolist(),
                block.item.tolist(), block.session.tolist(), ctx_index, tails, strict=True,
            )
        ]  # fmt: skip
        if self.experiment is not None:
            served = np.flatnonzero(block.arm >= 0)
            if len(served):
                self._serve(values, block, served)
                first = (block.etype[served] == VIEW) & (block.position[served] == 1)  # rank 1 is always viewed
                self.served_sessions += np.bincount(block.arm[served][first], minlength=len(self.served_sessions))
        return values

    def _serve(self, values: list[bytes], block: EventBlock, rows: np.ndarray) -> None:
        """Turn the records at ``rows`` of served events into version 2 (fields appended, version bumped)."""
        old, new = f'{{"schema_version":{SCHEMA_VERSION},'.encode(), f'{{"schema_version":{SERVED_SCHEMA_VERSION},'.encode()
        for r, a, sl, pos in zip(rows.tolist(), block.arm[rows].tolist(), block.slate[rows].tolist(),
                                 block.position[rows].tolist(), strict=True):
            values[r] = new + values[r][len(old) : -1] + self._served_suffix(a, sl, pos).encode()

    def truth(self, block: EventBlock) -> tuple[list[bytes], list[bytes]]:
        """Truth records of the block's views: ``(keys, values)``, key = event_id."""
        views = np.flatnonzero(block.etype == VIEW)
        ids = self.event_ids(block.counter[views])
        scaled = [np.rint(p[views] * _TRUTH_SCALE).astype(np.int64).tolist() for p in (block.p_click, block.p_cart, block.p_purchase)]
        text, choice = _PROBABILITY_TEXT, CHOICES
        values = [
            f'{{"event_id":"{e}","kind":"view","p_click":{text[a]},"p_cart":{text[b]},"p_purchase":{text[c]},"choice":"{choice[ch]}"}}'.encode()
            for e, a, b, c, ch in zip(ids, *scaled, block.choice[views].tolist(), strict=True)
        ]
        if self.experiment is not None:
            served = np.flatnonzero(block.arm[views] >= 0)
            if len(served):
                served_views = block.take(views)
                for r, a, sl, pos in zip(served.tolist(), served_views.arm[served].tolist(),
                                         served_views.slate[served].tolist(), served_views.position[served].tolist(),
                                         strict=True):
                    values[r] = values[r][:-1] + self._served_suffix(a, sl, pos).encode()
                self._slate_outcomes(values, served_views, served)
        return [e.encode() for e in ids], values

    def _slate_outcomes(self, values: list[bytes], views: EventBlock, rows: np.ndarray) -> None:
        """Add the slate's potential outcomes to the truth record of its first view (the first one written)."""
        assert self.experiment is not None
        arms = self.experiment[1]
        for r, sl in zip(rows.tolist(), views.slate[rows].tolist(), strict=True):
            entry = self.slate_truth.pop(sl, None)
            if entry is None:
                continue
            expected_views, clicks = float(entry[0]), entry[1:].tolist()
            slate: dict[str, object] = {
                "expected_views": round(expected_views, 6),
                "expected_clicks": {a: round(float(c), 6) for a, c in zip(arms, clicks, strict=True)}}
            origin = self.slate_origin.pop(sl, None)
            if origin is not None:
                slate["pipeline_request_id"] = origin
            values[r] = values[r][:-1] + b',"slate":' + orjson.dumps(slate) + b"}"


def fault_record(event_id: str, fault: str, detail: str) -> bytes:
    """A truth record naming an injected fault.

    >>> fault_record("ab-1", "late", "ts 5 is 2 ms behind")
    b'{"event_id":"ab-1","kind":"fault","fault":"late","detail":"ts 5 is 2 ms behind"}'
    """
    return orjson.dumps({"event_id": event_id, "kind": "fault", "fault": fault, "detail": detail})


def csv_header() -> bytes:
    """The CSV header line: :data:`FIELDS`."""
    return (",".join(FIELDS) + "\r\n").encode()


def csv_rows(values: list[bytes]) -> bytes:
    """CSV lines of event bytes, columns :data:`FIELDS`; null is an empty cell.

    A value that is not a JSON object (a ``malformed`` fault) becomes a row whose first cell
    holds its raw text, so the file still has one line per message.

    >>> csv_rows([b'{"schema_version":1,"event_id":"e1","rating":null}', b'{"sch'])
    b'1,e1,,,,,,,,,,,\\r\\n"{""sch",,,,,,,,,,,,\\r\\n'
    """
    buf = io.StringIO()
    writer = csv.writer(buf)
    for value in values:
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            writer.writerow(["" if obj.get(f) is None else obj[f] for f in FIELDS])
        else:
            writer.writerow([value.decode("utf-8", errors="replace")] + [""] * (len(FIELDS) - 1))
    return buf.getvalue().encode()
