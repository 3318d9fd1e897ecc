"""Recommendation requests: someone asks the flow for a slate for a user.

Topic ``recommendation-requests`` (``TOPIC_REQUESTS``), key ``user_id``, one JSON object per
message. Create it with as many partitions as ``interactions`` (the flow does): a request is
answered where the user's events are counted, in the partition its key hashes to.

================ ========== ==================================================================
field            type       meaning
================ ========== ==================================================================
schema_version   int        1
request_id       str        the caller's id, echoed in the slate (the slate's identity)
user_id          str        who the slate is for
ts               int        when it was asked, epoch ms UTC
k                int        items wanted (optional; default: the flow's ``--slate-k``, 10)
context          object     optional: ``device`` (mobile, desktop, tablet), ``country``
================ ========== ==================================================================

A record that is not such an object goes to the dead letters with its reason (``unparseable``,
``schema``, ``unsupported_schema_version``); so does one asking for ``k <= 0`` or for more
items than the catalog holds (``k_out_of_range``).

>>> check_request({"schema_version": 1, "request_id": "r1", "user_id": "u1", "ts": 1732233600000}) is None
True
>>> check_request({"schema_version": 1, "request_id": "r1", "user_id": "u1", "ts": 1732233600000,
...                "context": {"device": "phone"}}).detail
"context.device must be one of mobile, desktop, tablet, got 'phone'"
"""

from __future__ import annotations

from typing import Any, Final

from events.contract import Field, validate
from events.schema import COUNTRIES, DEVICES, TS_MIN_MS, Rejection

REQUEST_VERSION: Final = 1
CONTEXT_FIELDS: Final = (
    Field("device", "enum", required=False, choices=DEVICES),
    Field("country", "enum", required=False, choices=COUNTRIES, description="ISO 3166 alpha-2"),
)
REQUEST_FIELDS: Final = (
    Field("schema_version", "int", const=REQUEST_VERSION, description="contract version"),
    Field("request_id", "str", description="echoed in the slate"),
    Field("user_id", "str", description="the key"),
    Field("ts", "int", minimum=TS_MIN_MS, description="when it was asked, epoch ms UTC"),
    Field("k", "int", required=False, description="items wanted; the flow refuses k <= 0 and k > the catalog"),
    Field("context", "object", required=False, fields=CONTEXT_FIELDS),
)


def check_request(obj: Any) -> Rejection | None:
    """None for a valid request, else why it is refused."""
    return validate(obj, REQUEST_FIELDS)
SCHEMAS: Final = {  # file name in events/ -> (title, description, fields)
    "request.schema.json": ("RecommendationRequest", ("A request for a slate. Kafka topic recommendation-requests, "
                             "key = user_id. Generated from events/requests.py."), REQUEST_FIELDS),
}
