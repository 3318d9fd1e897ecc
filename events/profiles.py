"""The catalog and the user profiles: keyed records, the latest per key is the truth.

Topics ``items`` (key ``item_id``) and ``users`` (key ``user_id``), or JSONL/CSV files next to
a file sink's output. They hold only what a real shop knows about its users and items; the
generator's latent parameters (segments, preferences, biases, tastes, quality, popularity
weights) are never published. ``updated_ms`` is the event time from which the record holds.

======== =============== ======== =================================================
record   field           type     meaning
======== =============== ======== =================================================
user     schema_version  int      1
user     user_id         str      the key
user     age             int      years, 18..70 (the models bucket it)
user     gender          str      ``M``, ``F`` or ``O``
user     country         str      ISO 3166 alpha-2, one of :data:`events.schema.COUNTRIES`
user     device          str      the user's primary device (:data:`events.schema.DEVICES`)
user     updated_ms      int      epoch ms UTC from which the record holds
item     schema_version  int      1
item     item_id         str      the key
item     category        str      one of :data:`events.schema.CATEGORIES`
item     price           float    USD, > 0
item     updated_ms      int      epoch ms UTC from which the record holds
======== =============== ======== =================================================

>>> check_user({"schema_version": 1, "user_id": "u1", "age": 30, "gender": "F", "country": "US",
...             "device": "mobile", "updated_ms": 1732233600000}) is None
True
>>> check_item({"schema_version": 1, "item_id": "i1", "category": "Toys", "price": 5, "updated_ms": 1732233600000}).detail
"category must be one of Electronics, Clothing, Home, Sports, Books, got 'Toys'"

The JSON Schema files ``events/user.schema.json`` and ``events/item.schema.json`` are written
from the tables below by ``python -m events.contract`` (a contract test checks they match).
"""

from __future__ import annotations

from typing import Any, Final

from events.contract import Field, validate
from events.schema import CATEGORIES, COUNTRIES, DEVICES, TS_MIN_MS, Rejection

PROFILE_VERSION: Final = 1
GENDERS: Final = ("M", "F", "O")
AGE_MIN, AGE_MAX = 18, 70

_UPDATED = Field("updated_ms", "int", minimum=TS_MIN_MS, description="epoch ms UTC from which the record holds")
USER_FIELDS: Final = (
    Field("schema_version", "int", const=PROFILE_VERSION, description="contract version"),
    Field("user_id", "str", description="the key"),
    Field("age", "int", minimum=AGE_MIN, maximum=AGE_MAX, description="years"),
    Field("gender", "enum", choices=GENDERS),
    Field("country", "enum", choices=COUNTRIES, description="ISO 3166 alpha-2"),
    Field("device", "enum", choices=DEVICES, description="the user's primary device"),
    _UPDATED,
)
ITEM_FIELDS: Final = (
    Field("schema_version", "int", const=PROFILE_VERSION, description="contract version"),
    Field("item_id", "str", description="the key"),
    Field("category", "enum", choices=CATEGORIES),
    Field("price", "float", exclusive_minimum=0, maximum=1e9, description="USD"),
    _UPDATED,
)
SCHEMAS: Final = {  # file name in events/ -> (title, description, fields)
    "user.schema.json": ("UserProfile", ("A user's observable profile. Kafka topic users, key = user_id. "
                          "Generated from events/profiles.py."), USER_FIELDS),
    "item.schema.json": ("Item", ("An item of the catalog. Kafka topic items, key = item_id. "
                          "Generated from events/profiles.py."), ITEM_FIELDS),
}


def check_user(obj: Any) -> Rejection | None:
    """None for a valid user profile, else why it is refused."""
    return validate(obj, USER_FIELDS)


def check_item(obj: Any) -> Rejection | None:
    """None for a valid catalog record, else why it is refused."""
    return validate(obj, ITEM_FIELDS)

