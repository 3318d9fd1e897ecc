"""The interaction event contract shared by the producer, the dataflows and training.

An interaction is one JSON object per Kafka message (key = ``user_id``), UTF-8 encoded.
Field by field:

=============== ========== ==========================================================
field           type       meaning
=============== ========== ==========================================================
schema_version  int        contract version: 1, or 2 for an event of a served session
event_id        str        unique per event, deterministic for a producer run
event_type      str        ``view``, ``click``, ``add_cart`` or ``purchase``
ts              int        event time, epoch milliseconds, UTC
user_id         str        who acted
item_id         str        which item
session_id      str        the session the event belongs to
category        str        the item's category
price           float      the item's price in USD, > 0
country         str        the user's country, ISO 3166 alpha-2
device          str        ``mobile``, ``desktop`` or ``tablet``
view_id         str|null   for click, add_cart and purchase: the ``event_id`` of the view
                           the event follows from (labels join on it); null for views
rating          int|null   1 to 5 on purchases, null otherwise
=============== ========== ==========================================================

**Version 2** is version 1 plus four required fields, on every event of a session in which
the user was served a slate by an A/B experiment (docs/experiments.md); version 1 events
carry none of them (an extra field is ignored, as any unknown field):

=============== ========== ==========================================================
experiment      str        the experiment's name
arm             str        the user's arm in it
slate_id        str        the slate served in the session, unique per producer run
position        int        rank 1..k in the slate of the view (a follow-up: of its view)
=============== ========== ==========================================================

Readers accept both versions (:data:`SCHEMA_VERSIONS`).

``events/interaction.schema.json`` says the same in JSON Schema; a contract test keeps the
two in agreement. :func:`check` is the validator: it returns ``None`` for a valid event and
otherwise a :class:`Rejection` naming the reason and the field, so every dead letter can say
why it was refused.

>>> ok = {"schema_version": 1, "event_id": "e1", "event_type": "view", "ts": 1732233600000,
...       "user_id": "u1", "item_id": "i9", "session_id": "s1", "category": "Books",
...       "price": 12.5, "country": "US", "device": "mobile", "view_id": None, "rating": None}
>>> check(ok) is None
True
>>> check({**ok, "event_type": "like"})
Rejection(reason='unknown_event_type', detail="event_type 'like'; expected one of view, click, add_cart, purchase")
>>> check({**ok, "event_type": "click"}).detail
'view_id must be a non-empty string on a click'
>>> served = {**ok, "schema_version": 2, "experiment": "home", "arm": "control", "slate_id": "s-x1", "position": 1}
>>> check(served) is None, check({**served, "position": 0}).detail
(True, 'position must be an integer 1..1000 on a version 2 event, got 0')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

import orjson
from mypy_extensions import mypyc_attr

SCHEMA_VERSION: Final = 1  # an event outside any experiment
SERVED_SCHEMA_VERSION: Final = 2  # an event of a served session: version 1 + EXPERIMENT_FIELDS
SCHEMA_VERSIONS: Final = (SCHEMA_VERSION, SERVED_SCHEMA_VERSION)

EventType = Literal["view", "click", "add_cart", "purchase"]
EVENT_TYPES: Final[tuple[EventType, ...]] = ("view", "click", "add_cart", "purchase")
#: index of each event type in count vectors (views, clicks, add_carts, purchases)
EVENT_TYPE_INDEX: Final[dict[str, int]] = {t: i for i, t in enumerate(EVENT_TYPES)}

CATEGORIES: Final = ("Electronics", "Clothing", "Home", "Sports", "Books")
COUNTRIES: Final = ("US", "UK", "DE", "FR", "JP")
DEVICES: Final = ("mobile", "desktop", "tablet")

#: Why an event was refused. A closed set, so dead-letter counters have fixed names.
RejectReason = Literal[
    "unparseable",  # not UTF-8 JSON, or not a JSON object
    "schema",  # a field is missing, has the wrong type or an invalid value
    "unknown_event_type",
    "unsupported_schema_version",
    "ts_out_of_range",  # event time far outside the stream's time
    "duplicate",  # an event_id already seen within the dedup horizon
    "late",  # event time behind the watermark (beyond the allowed lateness)
    "kafka_error",  # the consumer reported an error instead of a message
]
REJECT_REASONS: Final[tuple[RejectReason, ...]] = (
    "unparseable",
    "schema",
    "unknown_event_type",
    "unsupported_schema_version",
    "ts_out_of_range",
    "duplicate",
    "late",
    "kafka_error",
)

#: Fields in the order the producer writes them.
FIELDS: Final = (
    "schema_version",
    "event_id",
    "event_type",
    "ts",
    "user_id",
    "item_id",
    "session_id",
    "category",
    "price",
    "country",
    "device",
    "view_id",
    "rating",
)
#: Fields a version 2 event adds, in the order the producer writes them after :data:`FIELDS`.
EXPERIMENT_FIELDS: Final = ("experiment", "arm", "slate_id", "position")
MAX_POSITION: Final = 1000


def parsed_keys(names: tuple[str, ...]) -> dict[str, str]:
    """The key objects that ``orjson.loads`` hands out for ``names``, by name.

    orjson caches the strings it makes for object keys, so every parsed event carries these
    same objects. A dict lookup by the identical object skips comparing the strings: ~25 ns
    less per lookup (2026-12-02), and the hot path makes ~20 per event (check, then the partition
    stage). Looked up by an equal but different string, the dict still answers the same.

    >>> key = parsed_keys(("ts",))["ts"]
    >>> next(iter(orjson.loads(b'{"ts": 1}'))) is key
    True
    """
    return {k: k for k in orjson.loads(orjson.dumps(dict.fromkeys(names, 0)))}


_KEYS: Final = parsed_keys(FIELDS + EXPERIMENT_FIELDS)
#: The field names as orjson's key objects (see :func:`parsed_keys`): what the hot path looks up.
K_SCHEMA_VERSION: Final = _KEYS["schema_version"]
K_EVENT_ID: Final = _KEYS["event_id"]
K_EVENT_TYPE: Final = _KEYS["event_type"]
K_TS: Final = _KEYS["ts"]
K_USER_ID: Final = _KEYS["user_id"]
K_ITEM_ID: Final = _KEYS["item_id"]
K_CATEGORY: Final = _KEYS["category"]
K_PRICE: Final = _KEYS["price"]
K_COUNTRY: Final = _KEYS["country"]
K_DEVICE: Final = _KEYS["device"]
K_VIEW_ID: Final = _KEYS["view_id"]
K_RATING: Final = _KEYS["rating"]
K_SESSION_ID: Final = _KEYS["session_id"]
K_EXPERIMENT: Final = _KEYS["experiment"]
K_ARM: Final = _KEYS["arm"]
K_SLATE_ID: Final = _KEYS["slate_id"]
K_POSITION: Final = _KEYS["position"]
_EXPERIMENT_STR_FIELDS: Final = (K_EXPERIMENT, K_ARM, K_SLATE_ID)
_STR_FIELDS: Final = tuple(_KEYS[f] for f in ("event_id", "user_id", "item_id", "session_id", "category", "country", "device"))
_MAX_ID_LEN: Final = 128
#: 2000-01-01T00:00:00Z in epoch ms; anything earlier is a unit error (seconds, not ms).
TS_MIN_MS: Final = 946_684_800_000


@mypyc_attr(native_class=False)  # a plain Python class when compiled: picklable, rarely touched
@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event was refused: a reason from :data:`REJECT_REASONS` and a readable detail."""

    reason: RejectReason
    detail: str


@mypyc_attr(native_class=False)  # a plain Python class when compiled: picklable, rarely touched
@dataclass(frozen=True, slots=True)
class Interaction:
    """One interaction event, typed. The dataflow's hot path works on the validated dict."""

    event_id: str
    event_type: EventType
    ts: int  # event time, epoch ms UTC
    user_id: str
    item_id: str
    session_id: str
    category: str
    price: float  # USD
    country: str
    device: str
    view_id: str | None = None  # the view a follow-up event came from
    rating: int | None = None  # 1..5 on purchases
    schema_version: int = SCHEMA_VERSION
    experiment: str | None = None  # version 2: the experiment, arm, slate and position of a served session
    arm: str | None = None
    slate_id: str | None = None
    position: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The event as a dict in :data:`FIELDS` order (then :data:`EXPERIMENT_FIELDS` for version 2)."""
        d = asdict(self)
        names = FIELDS + EXPERIMENT_FIELDS if self.schema_version == SERVED_SCHEMA_VERSION else FIELDS
        return {f: d[f] for f in names}

    def to_json(self) -> bytes:
        """Serialise in :data:`FIELDS` order (the bytes a producer would send)."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Interaction:
        """Build from a dict that :func:`check` accepted; raise ValueError otherwise."""
        rejection = check(obj)
        if rejection is not None:
            msg = f"invalid interaction ({rejection.reason}): {rejection.detail}"
            raise ValueError(msg)
        names = FIELDS + EXPERIMENT_FIELDS if obj.get("schema_version") == SERVED_SCHEMA_VERSION else FIELDS
        values: dict[str, Any] = {f: obj.get(f) for f in names}
        return cls(**values)


def check(obj: Any) -> Rejection | None:
    """Validate a decoded event; return None if valid, else the reason it is refused.

    Unknown extra fields are allowed (forward compatibility); every field in
    :data:`FIELDS` except ``view_id`` and ``rating`` is required, and on version 2 every field
    of :data:`EXPERIMENT_FIELDS`.
    """
    if type(obj) is not dict:
        return Rejection("unparseable", f"expected a JSON object, got {type(obj).__name__}")
    event: dict[str, Any] = obj  # typed: compiled (events/native.py), its reads are native dict reads
    version = event.get(K_SCHEMA_VERSION)
    if type(version) is not int or version not in (SCHEMA_VERSION, SERVED_SCHEMA_VERSION):  # True == 1, but is not a version
        if version is None:
            return Rejection("schema", "missing field 'schema_version'")
        return Rejection(
            "unsupported_schema_version",
            f"schema_version {version!r}; this reader knows {SCHEMA_VERSION} and {SERVED_SCHEMA_VERSION}",
        )
    rejection = _check_ids(event, _STR_FIELDS, "")
    if rejection is not None:
        return rejection
    event_type = event.get(K_EVENT_TYPE)
    if type(event_type) is not str or event_type not in EVENT_TYPE_INDEX:
        if "event_type" not in event:
            return Rejection("schema", "missing field 'event_type'")
        if type(event_type) is not str:
            return Rejection("schema", f"event_type must be a string, got {event_type!r}")
        return Rejection(
            "unknown_event_type", f"event_type {event_type!r}; expected one of {', '.join(EVENT_TYPES)}"
        )
    ts = event.get(K_TS)
    if type(ts) is not int:  # bool is a subclass of int and is not a valid time
        if "ts" not in event:
            return Rejection("schema", "missing field 'ts'")
        return Rejection("schema", f"ts must be an integer (epoch ms), got {ts!r}")
    if ts < TS_MIN_MS:
        return Rejection("ts_out_of_range", f"ts {ts} is before 2000-01-01 (seconds instead of milliseconds?)")
    price = event.get(K_PRICE)
    if not (type(price) is float or type(price) is int) or not 0 < price <= 1e9:  # NaN fails the comparison
        if "price" not in event:
            return Rejection("schema", "missing field 'price'")
        return Rejection("schema", f"price must be a positive number, got {price!r}")
    view_id = event.get(K_VIEW_ID)
    if event_type == "view":
        if view_id is not None:
            return Rejection("schema", f"view_id must be null on a view, got {view_id!r}")
    elif type(view_id) is not str or not view_id:
        return Rejection("schema", f"view_id must be a non-empty string on a {event_type}")
    rating = event.get(K_RATING)
    if event_type == "purchase":
        if type(rating) is not int or not 1 <= rating <= 5:
            return Rejection("schema", f"rating must be an integer 1..5 on a purchase, got {rating!r}")
    elif rating is not None:
        return Rejection("schema", f"rating must be null on a {event_type}, got {rating!r}")
    if version == SERVED_SCHEMA_VERSION:
        return _check_served(event)
    return None


def _check_ids(event: dict[str, Any], names: tuple[str, ...], required_note: str) -> Rejection | None:
    """The first of ``names`` that is missing or not a non-empty string of at most _MAX_ID_LEN characters."""
    for f in names:
        v = event.get(f)
        if type(v) is not str or not v or len(v) > _MAX_ID_LEN:
            if f not in event:
                return Rejection("schema", f"missing field {f!r}{required_note}")
            return Rejection("schema", f"{f} must be a non-empty string of at most {_MAX_ID_LEN} characters, got {v!r}")
    return None


def _check_served(event: dict[str, Any]) -> Rejection | None:
    """The fields a version 2 event adds."""
    rejection = _check_ids(event, _EXPERIMENT_STR_FIELDS, " (required on version 2)")
    if rejection is not None:
        return rejection
    position = event.get(K_POSITION)
    if type(position) is not int or not 1 <= position <= MAX_POSITION:
        if "position" not in event:
            return Rejection("schema", "missing field 'position' (required on version 2)")
        return Rejection("schema", f"position must be an integer 1..{MAX_POSITION} on a version 2 event, got {position!r}")
    return None


def decode(raw: bytes | None) -> tuple[dict[str, Any] | None, Rejection | None]:
    """Parse and validate one message value: ``(event, None)`` or ``(None, rejection)``.

    >>> decode(b"{not json")[1].reason
    'unparseable'
    >>> decode(None)[1].detail
    'empty message value'
    """
    if not raw:
        return None, Rejection("unparseable", "empty message value")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return None, Rejection("unparseable", f"invalid JSON: {e}")
    rejection = check(obj)
    if rejection is not None:
        return None, rejection
    return obj, None
