"""Stage 1, one instance per input partition: refuse bad input, keep the watermark, count users.

The producer keys interactions by ``user_id``, so all of a user's events are in one
partition, in order. Everything user-related therefore happens here, without any data
crossing workers: decode and validate, the time-range check, dedup by ``event_id``, the
late check against this partition's watermark, user and user x category point-in-time
counts, and the user tumbling windows. Each accepted event then goes to the item stage
shard that owns its item, with this partition's watermark.

Watermark of a partition = newest accepted event time - allowed lateness. When the
partition has been idle (no events) for ``idle_timeout_ms`` of wall time it advances with
the wall clock; at the end of a finite input it jumps to +infinity and closes everything.

Every input record leaves as exactly one of: an accepted event, or a dead letter.
"""

from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, ClassVar

import orjson
from mypy_extensions import mypyc_attr

from events.requests import check_request
from events.schema import (
    CATEGORIES,
    EVENT_TYPE_INDEX,
    K_CATEGORY,
    K_COUNTRY,
    K_DEVICE,
    K_EVENT_ID,
    K_EVENT_TYPE,
    K_ITEM_ID,
    K_PRICE,
    K_SESSION_ID,
    K_TS,
    K_USER_ID,
    K_VIEW_ID,
    check,
)
from features.arrival_table import ArrivalTable
from features.config import FeaturesConfig
from features.records import Record, dead_letter, window_record
from features.tiles import GROUP_BITS, unpack_window
from features.user_history import UserHistory
from features.window_table import WindowCountTable

NEG_INF = -(1 << 62)
POS_INF = 1 << 62
#: Version of the state a snapshot holds; a snapshot of another version is refused with a reason.
SNAPSHOT_FORMAT = 2
ITEM_SHARD_CACHE = 1 << 18  # item ids whose shard a partition stage remembers
#: What scoring reads of a view, as a tuple of these fields, taken here while the event is
#: fresh in the CPU caches (read from the dict in the scoring step instead, the same fields
#: cost features + scoring ~6%, 2026-12-04); a tuple, so that a batch becomes columns with one zip.
VIEW_CONTEXT_FIELDS = ("event_id", "user_id", "item_id", "category", "country", "device", "ts", "price")
VIEW_CONTEXT = itemgetter(*VIEW_CONTEXT_FIELDS)


#: A view's user history: (recent items, most recent first; per category of CATEGORIES, the
#: user's (views, clicks, add_carts, purchases) over the longest horizon), both before the view.
History = tuple[tuple[str, ...], tuple[tuple[int, int, int, int], ...]]


class SlateRequest:
    """A request for a slate, with the user's state as of it (to the slate stage, ``slates/``).

    Made in the partition stage, where the user's counts are: at the first event of a session
    (before it is counted), or for a record of the requests topic.
    """

    __slots__ = ("request_id", "user_id", "ts", "k", "device", "country", "source", "user_vec", "cat_vecs",
                 "recent", "purchased", "features_as_of")

    def __init__(self, request_id: str, user_id: str, ts: int, k: int, device: str, country: str, source: str,
                 user_vec: int, cat_vecs: tuple[int, ...], recent: tuple[str, ...], purchased: tuple[str, ...],
                 features_as_of: int):
        self.request_id = request_id  # the session id of a session start, or the caller's id
        self.user_id = user_id
        self.ts = ts  # event time of the request, epoch ms: the user's counts are as of it
        self.k = k  # items wanted
        self.device = device
        self.country = country
        self.source = source  # "session_start" or "request"
        self.user_vec = user_vec  # the user's packed horizon counts (features/tiles.py layout)
        self.cat_vecs = cat_vecs  # per category of CATEGORIES, the user x category packed counts
        self.recent = recent  # recent items, most recent first (features/user_history.py)
        self.purchased = purchased  # items bought in the purchase window before ts: left out of the slate
        # the user's counts are as of this event time: ts at a session start; for a request, the
        # user's newest event read before it (0: none)
        self.features_as_of = features_as_of

    def fields(self) -> tuple[Any, ...]:
        return (self.request_id, self.user_id, self.ts, self.k, self.device, self.country, self.source, self.user_vec,
                self.cat_vecs, self.recent, self.purchased, self.features_as_of)

    def __reduce__(self) -> tuple[type[SlateRequest], tuple[Any, ...]]:
        return SlateRequest, self.fields()

    def __repr__(self) -> str:
        return f"SlateRequest{self.fields()!r}"


class Entry:
    """An accepted event on its way to the item stage (in :class:`ToItems`).

    A compiled class with slots: one is made per accepted event, and attribute reads are
    native in both stages.
    """

    __slots__ = ("event", "user_vec", "cat_vec", "ts", "type_index", "item_id", "context", "history")

    def __init__(self, event: dict[str, Any] | None, user_vec: int, cat_vec: int, ts: int, type_index: int,
                 item_id: str, context: tuple[Any, ...] | None, history: History | None = None):
        self.event = event  # the decoded event, or None when no output needs it (PartitionState.keep_events)
        self.user_vec = user_vec  # the user's packed horizon counts before this event (0 when not needed)
        self.cat_vec = cat_vec  # the same for the user x this event's category
        self.ts = ts  # event time, epoch ms
        self.type_index = type_index  # EVENT_TYPE_INDEX of the event type (0: a view)
        self.item_id = item_id
        self.context = context  # a view's VIEW_CONTEXT when scoring or examples read it, else None
        self.history = history  # a view's user history when an output reads it (PartitionState.history)

    def fields(self) -> tuple[dict[str, Any] | None, int, int, int, int, str, tuple[Any, ...] | None, History | None]:
        """The attributes in declaration order (comparisons in tests, pickling)."""
        return (self.event, self.user_vec, self.cat_vec, self.ts, self.type_index, self.item_id, self.context,
                self.history)

    def __reduce__(self) -> tuple[type[Entry], tuple[Any, ...]]:
        return Entry, self.fields()

    def __repr__(self) -> str:
        return f"Entry{self.fields()!r}"


@mypyc_attr(native_class=False)  # a plain Python class when compiled: picklable, rarely touched
@dataclass
class RawBatch:
    """What a source partition hands over per poll (an empty one is a heartbeat)."""

    source: str  # topic name or file path
    partition: int  # Kafka partition, or virtual partition for files
    offsets: list[int] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    wall_ms: int = 0  # wall clock at read time, for the idle watermark
    errors: list[tuple[int, str]] = field(default_factory=list)  # (offset, message) consumer errors
    eof: bool = False  # the partition is finished (finite input)
    requests_source: str = ""  # the requests topic (slates), when it is read beside the events
    requests: list[tuple[int, bytes | None]] = field(default_factory=list)  # (offset, value) slate requests
    # a heartbeat of a partition whose reader knows of records not read yet (a busy flow, a starved
    # fetch): the partition is behind, not idle, so its watermark must not follow the wall clock
    behind: bool = False


@mypyc_attr(native_class=False)  # a plain Python class when compiled: picklable, rarely touched
@dataclass
class ToItems:
    """Accepted events for one item shard, with the sending partition's watermark."""

    shard: int
    partition: int
    events: list[Entry]
    watermark: int


@mypyc_attr(native_class=False)  # a plain Python class when compiled: picklable, rarely touched
@dataclass
class Records:
    """Output records for the sink: ``(destination, key, value)``."""

    records: list[Record]


@mypyc_attr(native_class=False)  # a plain Python class when compiled: picklable, rarely touched
@dataclass
class SlateRequests:
    """Requests for slates from one batch of one partition, for the slate stage.

    ``floor``: the partition's watermark after the batch; its later requests are all at or
    after it (events behind the watermark are refused), so the slate stage may drop the item
    tiles that no request at or after the floors of all partitions can read.
    """

    partition: int
    floor: int
    requests: list[SlateRequest]


@mypyc_attr(native_class=False)  # a plain Python class when compiled: picklable, rarely touched
@dataclass
class FollowUps:
    """Accepted click/add_cart/purchase events as ``(view_id, type index, ts)`` (for labels)."""

    items: list[tuple[str, int, int]]


@mypyc_attr(native_class=False)  # an exception: a plain Python class when compiled
class SnapshotFormatError(RuntimeError):
    """A recovery snapshot of a stage was written by another version of the state."""


def require_format(found: object, stage: str) -> None:
    """Refuse a snapshot whose state format is not :data:`SNAPSHOT_FORMAT`, naming both."""
    if found != SNAPSHOT_FORMAT:
        msg = (f"the recovery snapshot of a {stage} stage has state format {found or 1}, this version reads "
               f"{SNAPSHOT_FORMAT}: start with a fresh recovery directory (python -m bytewax.recovery DIR 1)")
        raise SnapshotFormatError(msg)


def item_shard(item_id: str, shards: int) -> int:
    """Shard of the item stage that owns an item (crc32: stable across processes).

    >>> item_shard("i42", 8)
    2
    """
    return zlib.crc32(item_id.encode()) % shards


class PartitionState:
    """State and logic of one input partition; pickled for Bytewax recovery."""

    def __init__(self, config: FeaturesConfig, partition: int, want_follow_ups: bool = False,
                 views_only: bool = False, keep_events: bool = True, want_contexts: bool = True,
                 vectors: bool = True, follow_wall_clock: bool = True, want_history: bool = False,
                 slate_k: int = 0, slate_max_k: int = 0, session_slates: bool = True):
        self.config = config
        self.partition = partition
        self.want_follow_ups = want_follow_ups
        # The item stage completes vectors for views only (scoring, examples): a follow-up's
        # entry then carries 0 for its user vectors, which no one reads (saves two big-int
        # operations per follow-up event).
        self.views_only = views_only
        # Whether an entry carries the decoded event on (the event-features topic and the
        # training examples write its fields; scoring reads the view's context tuple). Without,
        # each event dict is freed here, while it is in the CPU caches: freed at the end of the
        # flow instead, the dicts cost the features flow about 15% (2026-12-02).
        self.keep_events = keep_events
        # Whether a view's entry carries its context tuple (VIEW_CONTEXT: what scoring reads, and
        # how the outputs tell views apart); without a model and without examples, none is read.
        self.want_contexts = want_contexts
        # Whether an idle partition's watermark follows the wall clock (live). A backfill ends
        # with EOF, which closes everything; following the wall clock there would make its
        # outputs depend on its speed (a partition starved of fetches for the idle timeout
        # would turn its later events late).
        self.follow_wall_clock = follow_wall_clock
        # When any output reads a point-in-time vector (scoring, examples, the event-features
        # topic), users are counted in tiles by arrival, with their counts broken down by
        # category (user x category) in the same entity. Otherwise only their open windows are
        # counted (no horizon totals, no tiles) and every entry carries 0 for its vectors.
        # Fixed for the life of the state: only runs with recovery snapshot, and they always
        # need vectors.
        self.users: ArrivalTable | None = None
        self.user_windows: WindowCountTable | None = None
        if vectors:
            self.users = ArrivalTable(config.window_ms, config.horizons, config.allowed_lateness_ms, config.retention_ms)
        else:
            self.user_windows = WindowCountTable(config.window_ms)
        # A view's user history (recent items, category counts) when an output reads it
        # (examples); it needs the vectors (the category counts are slots of the user's).
        self.history: UserHistory | None = None
        if want_history:
            if not vectors:
                msg = "a user history needs the vectors (want_history with vectors=False)"
                raise ValueError(msg)
            self.history = UserHistory(config.recent_items, config.allowed_lateness_ms, config.purchase_window_ms)
        # Slates at session starts (slate_k > 0 items each); they need the history too.
        self.slate_k = slate_k
        self.sent_slate_floor = NEG_INF  # the floor last sent to the slate stage
        self.slate_max_k = slate_max_k  # the largest k a request may ask for (the catalog's size)
        self.session_slates = session_slates  # a slate at every session start (else only for explicit requests)
        if slate_k and self.history is None:
            msg = "slates need the user history (slate_k > 0 with want_history=False)"
            raise ValueError(msg)
        self.category_slots: dict[str, int] = {}
        self.item_shards: dict[str, int] = {}  # item_id -> item shard, a cache (not needed in snapshots)
        self.max_ts = NEG_INF
        self.watermark = NEG_INF
        self.seen: dict[str, int] = {}
        self.seen_order: deque[tuple[int, str]] = deque()
        self.next_boundary = NEG_INF  # next window end the watermark must reach to close windows
        self.next_forget = NEG_INF  # watermark at which the oldest remembered event id expires
        self.sent_watermark = [NEG_INF] * config.item_shards
        self.counters: dict[str, int] = {"in": 0, "accepted": 0, "windows": 0}
        self.last_event_wall: int | None = None  # not persisted: wall time restarts after recovery

    #: What a snapshot keeps besides the constructor's arguments (the item-shard cache and the
    #: wall clock of the last event start empty).
    SNAPSHOT_FIELDS: ClassVar[tuple[str, ...]] = (
        "users", "user_windows", "history", "sent_slate_floor", "category_slots", "max_ts", "watermark", "seen", "seen_order", "next_boundary", "next_forget",
        "sent_watermark", "counters",
    )

    def __reduce__(self) -> tuple[type[PartitionState],
                                  tuple[FeaturesConfig, int, bool, bool, bool, bool, bool, bool, bool, int, int, bool],
                                  dict[str, Any]]:
        # Explicit: compiled (events/native.py), the class has no __dict__ and is built through __init__.
        args = (self.config, self.partition, self.want_follow_ups, self.views_only, self.keep_events, self.want_contexts,
                self.users is not None, self.follow_wall_clock, self.history is not None, self.slate_k,
                self.slate_max_k, self.session_slates)
        return PartitionState, args, {
            "format": SNAPSHOT_FORMAT, **{name: getattr(self, name) for name in self.SNAPSHOT_FIELDS}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        require_format(state.get("format"), "partition")
        for name in self.SNAPSHOT_FIELDS:
            setattr(self, name, state[name])

    def __len__(self) -> int:
        """Users held in state."""
        table = self.users if self.users is not None else self.user_windows
        return len(table) if table is not None else 0

    @property
    def vectors(self) -> bool:
        """Whether this state computes point-in-time vectors (else it counts windows only)."""
        return self.users is not None

    def _dead(self, out: list[Record], reason: str, stage: str, detail: str, source: str, offset: int,
              payload: bytes | None, event: dict[str, Any] | None = None) -> None:
        key, value = dead_letter(reason, stage, detail, source, self.partition, offset, payload, event)  # type: ignore[arg-type]
        out.append(("dead_letters", key, value))
        self.counters[f"dead.{reason}"] = self.counters.get(f"dead.{reason}", 0) + 1

    def process(self, batch: RawBatch) -> list[ToItems | Records | FollowUps | SlateRequests]:
        """Handle one source batch; return what goes to the item stage and to the sink."""
        cfg = self.config
        lateness = cfg.allowed_lateness_ms
        shards = cfg.item_shards
        records: list[Record] = []
        chunks: list[list[Entry]] = [[] for _ in range(shards)]
        shard_of = self.item_shards
        follow_ups: list[tuple[str, int, int]] = []
        users = self.users
        user_windows = self.user_windows
        slots = self.category_slots
        mask, slot_bits = (users.mask, users.slot_bits) if users is not None else (0, 0)
        seen = self.seen
        remember = self.seen_order.append  # a bound method: compiled, calling it by name costs a lookup each time
        views_only, keep_events, want_contexts = self.views_only, self.keep_events, self.want_contexts
        history = self.history
        slate_k = self.slate_k
        session_slates = slate_k > 0 and self.session_slates
        slate_requests: list[SlateRequest] = []
        source, wall = batch.source, batch.wall_ms
        future_limit = wall + cfg.max_future_ms
        loads, type_index = orjson.loads, EVENT_TYPE_INDEX
        counters = self.counters
        counters["in"] += len(batch.values) + len(batch.errors)

        for offset, message in batch.errors:
            self._dead(records, "kafka_error", "source", message, source, offset, None)

        accepted = 0
        for offset, raw in zip(batch.offsets, batch.values):
            try:
                parsed = loads(raw)  # type: ignore[arg-type]  # None raises TypeError, handled below
            except (orjson.JSONDecodeError, TypeError) as e:
                detail = "empty message value" if not raw else f"invalid JSON: {e}"
                self._dead(records, "unparseable", "decode", detail, source, offset, raw)
                continue
            rejection = check(parsed)
            if rejection is not None:
                stage = "time_check" if rejection.reason == "ts_out_of_range" else "decode"
                self._dead(records, rejection.reason, stage, rejection.detail, source, offset, raw,
                           parsed if type(parsed) is dict else None)
                continue
            # Typed from here on (check() vouches for the types): compiled, these are native reads.
            event: dict[str, Any] = parsed
            t: int = event[K_TS]
            if t > future_limit:
                # The detail names no wall-clock reading: a replay must write the same bytes.
                self._dead(records, "ts_out_of_range", "time_check",
                           f"ts {t} is more than {cfg.max_future_ms} ms ahead of the wall clock",
                           source, offset, raw, event)
                continue
            event_id: str = event[K_EVENT_ID]
            if event_id in seen:
                self._dead(records, "duplicate", "dedup", f"event_id {event_id!r} already seen at ts {seen[event_id]}",
                           source, offset, raw, event)
                continue
            if t < self.watermark:
                self._dead(records, "late", "watermark",
                           f"ts {t} is {self.watermark - t} ms behind the watermark {self.watermark}",
                           source, offset, raw, event)
                continue
            seen[event_id] = t
            remember((t, event_id))
            if t > self.max_ts:
                self.max_ts = t
                if t - lateness > self.watermark:
                    wm = self.watermark = t - lateness
                    if wm >= self.next_boundary or wm > self.next_forget:
                        self._on_watermark(records)
            k = type_index[event[K_EVENT_TYPE]]
            user_id: str = event[K_USER_ID]
            item_id: str = event[K_ITEM_ID]
            shard = shard_of.get(item_id)
            if shard is None:
                shard = self._item_shard(item_id)
            if k and self.want_follow_ups:
                follow_ups.append((event[K_VIEW_ID], k, t))
            if user_windows is not None:  # windows only: nothing reads a vector, the item stage only counts
                user_windows.count(user_id, t, k)
                chunks[shard].append(Entry(None, 0, 0, t, k, item_id, None))
                accepted += 1
                continue
            category: str = event[K_CATEGORY]
            slot = slots.get(category) or self._new_category(category)
            assert users is not None  # one of the two tables exists
            vec = users.observe(user_id, t, k, slot)
            kept = event if keep_events else None
            seen_before: History | None = None
            if history is not None:
                if session_slates and history.new_session(user_id, event[K_SESSION_ID], t):
                    slate_requests.append(self._session_slate(event, vec, history))
                if k <= 1:  # views and clicks make the history; views read it
                    if not k:
                        seen_before = (history.recent(user_id, t), self._category_counts(vec))
                    history.record(user_id, t, item_id)
                elif k == 3:  # purchases: left out of the user's slates for a while
                    history.record_purchase(user_id, t, item_id)
            if k:
                if views_only:
                    chunks[shard].append(Entry(None, 0, 0, t, k, item_id, None))
                else:
                    chunks[shard].append(Entry(kept, vec & mask, (vec >> slot * slot_bits) & mask, t, k, item_id, None))
            else:
                # A view's context is VIEW_CONTEXT(event), built from what is already at hand.
                context = (event_id, user_id, item_id, category, event[K_COUNTRY], event[K_DEVICE], t,
                           event[K_PRICE]) if want_contexts else None
                chunks[shard].append(Entry(kept, vec & mask, (vec >> slot * slot_bits) & mask, t, k, item_id, context,
                                           seen_before))
            accepted += 1

        counters["accepted"] += accepted
        if accepted or batch.behind or self.last_event_wall is None:
            self.last_event_wall = wall
        self._advance_idle(wall, batch.eof)
        self._expire(records)
        if batch.requests and slate_k:  # after the batch's events: a request sees the user's state as read so far
            self._explicit_requests(batch, records, slate_requests)
        out: list[ToItems | Records | FollowUps | SlateRequests] = []
        for shard, events in enumerate(chunks):
            if events or self.sent_watermark[shard] != self.watermark:
                out.append(ToItems(shard, self.partition, events, self.watermark))
                self.sent_watermark[shard] = self.watermark
        if records:
            out.append(Records(records))
        if follow_ups:
            out.append(FollowUps(follow_ups))
        if slate_requests or (slate_k and self.sent_slate_floor != self.watermark):
            out.append(SlateRequests(self.partition, self.watermark, slate_requests))
            self.sent_slate_floor = self.watermark
        return out

    def _item_shard(self, item_id: str) -> int:
        """:func:`item_shard`, remembered (bounded: emptied at ITEM_SHARD_CACHE ids)."""
        if len(self.item_shards) >= ITEM_SHARD_CACHE:
            self.item_shards.clear()
        shard = self.item_shards[item_id] = item_shard(item_id, self.config.item_shards)
        return shard

    def _new_category(self, category: str) -> int:
        """Give a category its slot in the user tiles (slots are per partition, in arrival order)."""
        slot = len(self.category_slots) + 1
        if slot > ArrivalTable.MAX_SLOT:
            msg = (
                f"more than {ArrivalTable.MAX_SLOT} distinct categories in partition {self.partition} "
                f"(category {category!r}); user x category counts support at most that many"
            )
            raise ValueError(msg)
        assert self.users is not None  # categories get slots only where vectors are computed
        self.users.add_slots(slot)
        self.category_slots[category] = slot
        return slot

    def _explicit_requests(self, batch: RawBatch, records: list[Record], out: list[SlateRequest]) -> None:
        """Requests read from the requests topic: refused with a reason, or answered with the user's state now.

        The user's counts are those of its events read so far, as of its newest event (the
        request's ``features_as_of``); a user with no events here gets empty counts.
        """
        users, history = self.users, self.history
        assert users is not None and history is not None  # slates need both
        source = batch.requests_source
        for offset, raw in batch.requests:
            try:
                request = orjson.loads(raw)  # type: ignore[arg-type]  # None raises TypeError, handled below
            except (orjson.JSONDecodeError, TypeError) as e:
                self._dead(records, "unparseable", "slate_request", "empty message value" if not raw else
                           f"invalid JSON: {e}", source, offset, raw)
                continue
            rejection = check_request(request)
            if rejection is not None:
                self._dead(records, rejection.reason, "slate_request", rejection.detail, source, offset, raw)
                continue
            k: int = request.get("k", self.slate_k)
            if not 1 <= k <= self.slate_max_k:
                self._dead(records, "k_out_of_range", "slate_request",
                           f"k {k} is not between 1 and the catalog's {self.slate_max_k} items", source, offset, raw)
                continue
            user_id: str = request["user_id"]
            context: dict[str, Any] = request.get("context") or {}
            vec, as_of = users.peek(user_id)
            t: int = request["ts"]
            out.append(SlateRequest(request["request_id"], user_id, t, k, context.get("device", ""),
                                    context.get("country", ""), "request", vec & users.mask, self._category_vecs(vec),
                                    history.recent(user_id, as_of), history.purchased(user_id, t), as_of))

    def _session_slate(self, event: dict[str, Any], vec: int, history: UserHistory) -> SlateRequest:
        """The slate request of a session's first event, with the user's state before it is counted."""
        users = self.users
        assert users is not None
        t: int = event[K_TS]
        user_id: str = event[K_USER_ID]
        return SlateRequest(event[K_SESSION_ID], user_id, t, self.slate_k, event[K_DEVICE], event[K_COUNTRY],
                            "session_start", vec & users.mask, self._category_vecs(vec), history.recent(user_id, t),
                            history.purchased(user_id, t), t)

    def _category_vecs(self, vec: int) -> tuple[int, ...]:
        """Per category of CATEGORIES, the user x category packed counts in the user's vector ``vec`` (0: none)."""
        users = self.users
        assert users is not None
        slots = self.category_slots
        return tuple(users.slot_vector(vec, slots[c]) if c in slots else 0 for c in CATEGORIES)

    def _category_counts(self, vec: int) -> tuple[tuple[int, int, int, int], ...]:
        """Per category of CATEGORIES, the counts of the longest horizon in the user's vector ``vec``."""
        users = self.users
        assert users is not None
        shift = GROUP_BITS * (len(self.config.horizons) - 1)
        group = (1 << GROUP_BITS) - 1
        slots = self.category_slots
        out = []
        for category in CATEGORIES:
            slot = slots.get(category, 0)
            out.append(unpack_window(users.slot_vector(vec, slot) >> shift & group) if slot else (0, 0, 0, 0))
        return tuple(out)

    def _advance_idle(self, wall: int, eof: bool) -> None:
        if eof:
            self.watermark = POS_INF
            return
        if not self.follow_wall_clock:
            return
        idle = wall - (self.last_event_wall if self.last_event_wall is not None else wall)
        over = idle - self.config.idle_timeout_ms
        if over <= 0:
            return
        lateness = self.config.allowed_lateness_ms
        base = self.max_ts - lateness if self.max_ts > NEG_INF else wall - self.config.idle_timeout_ms - lateness
        candidate = base + over if self.max_ts > NEG_INF else base
        self.watermark = max(self.watermark, candidate)

    def _on_watermark(self, records: list[Record]) -> None:
        """Close the windows the watermark passed; forget event ids older than the dedup horizon.

        Runs whenever the watermark moves, event by event, so what is closed or forgotten
        depends only on the partition's order, never on how it was cut into batches.
        Ids are forgotten in arrival order (a FIFO), as soon as the oldest is out of horizon.
        """
        wm = self.watermark
        if wm >= self.next_boundary:
            self._close_user_windows(records)
        dedup = self.config.dedup_horizon_ms
        horizon = wm - dedup
        order = self.seen_order
        if order and order[0][0] < horizon:
            seen, oldest = self.seen, order.popleft  # bound: compiled, a call by name looks the method up
            while order and order[0][0] < horizon:
                del seen[oldest()[1]]  # every id in the order is in seen (both change only here and in process)
        # An id leaves once the watermark passes its time + horizon; new ids are >= wm.
        self.next_forget = order[0][0] + dedup if order else min(wm + dedup, POS_INF)

    def _expire(self, records: list[Record]) -> None:
        """End of a batch: apply an idle/EOF watermark move, evict idle entities."""
        self._on_watermark(records)
        wm = self.watermark
        if self.users is not None:
            evicted = self.users.evict(wm)
            if self.history is not None and evicted:
                self.history.forget(evicted)

    def _close_user_windows(self, records: list[Record]) -> None:
        cfg = self.config
        n = 0
        own = (1 << 128) - 1  # the user's own counts: slot 0 of the window
        table = self.users if self.users is not None else self.user_windows
        assert table is not None
        for user_id, ws, counts in table.close_windows(self.watermark):
            key, value = window_record("user", user_id, ws, cfg.window_ms, counts & own, cfg.priors)
            records.append(("user_features", key, value))
            n += 1
        self.counters["windows"] += n
        wm = self.watermark
        self.next_boundary = POS_INF if wm >= POS_INF else wm - wm % cfg.window_ms + cfg.window_ms

    def flush(self) -> list[ToItems | Records | FollowUps | SlateRequests]:
        """End of a finite input: close everything (same as an EOF batch)."""
        return self.process(RawBatch(source="", partition=self.partition, eof=True))
