"""The catalog and the user profiles of a world, as the records of ``events/profiles.py``.

Only observable attributes leave the generator: for users age, gender, country and primary
device; for items category and price. Records are in id order (``u0``, ``u1``, ...), keyed by
id, and carry ``updated_ms``, the event time from which they hold (the run's start). The
world does not change during a run, so a run publishes them once, before its first event.

>>> import numpy as np
>>> from producers.synthetic.config import ModelParams
>>> from producers.synthetic.world import build_world
>>> world = build_world(ModelParams(users=20, items=10, calibration_views=1000), np.random.default_rng(1))
>>> users, items = profile_records(world, 1_735_689_600_000)
>>> len(users.keys), len(items.keys), items.keys[0]
(20, 10, b'i0')
>>> sorted(orjson.loads(users.values[0]))
['age', 'country', 'device', 'gender', 'schema_version', 'updated_ms', 'user_id']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from events.profiles import ITEM_FIELDS, PROFILE_VERSION, USER_FIELDS
from events.schema import CATEGORIES, COUNTRIES, DEVICES
from producers.synthetic.world import GENDERS, World


@dataclass(frozen=True)
class Records:
    """Keyed records of one kind, in id order."""

    keys: list[bytes]
    values: list[bytes]


def profile_records(world: World, updated_ms: int) -> tuple[Records, Records]:
    """``(users, items)``: every user profile and every catalog item of ``world``."""
    u, it = world.users, world.items
    user_rows = zip(u.age.tolist(), u.gender.tolist(), u.country.tolist(), u.device.tolist(), strict=True)
    users: list[dict[str, Any]]
    items: list[dict[str, Any]]
    users = [{"schema_version": PROFILE_VERSION, "user_id": f"u{n}", "age": age, "gender": GENDERS[g],
              "country": COUNTRIES[c], "device": DEVICES[d], "updated_ms": updated_ms}
             for n, (age, g, c, d) in enumerate(user_rows)]
    items = [{"schema_version": PROFILE_VERSION, "item_id": f"i{n}", "category": CATEGORIES[c], "price": float(p),
              "updated_ms": updated_ms}
             for n, (c, p) in enumerate(zip(it.category.tolist(), it.price.tolist(), strict=True))]
    assert [list(r) for r in (users[0], items[0])] == [[f.name for f in USER_FIELDS], [f.name for f in ITEM_FIELDS]]
    return (Records([r["user_id"].encode() for r in users], [orjson.dumps(r) for r in users]),
            Records([r["item_id"].encode() for r in items], [orjson.dumps(r) for r in items]))


def csv_lines(values: list[bytes], fields: tuple[str, ...]) -> bytes:
    """CSV with a header of ``fields``, one row per record (the file sinks' CSV form).

    >>> csv_lines([b'{"a":1,"b":"x"}'], ("a", "b"))
    b'a,b\\r\\n1,x\\r\\n'
    """
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(fields)
    for value in values:
        record = orjson.loads(value)
        writer.writerow([record[f] for f in fields])
    return buf.getvalue().encode()
