"""Where an exploration reads interactions: a JSONL or CSV file, stdin, a Kafka topic, or OTTO's JSONL.

Every source yields :class:`Chunk` s of at most :data:`CHUNK` records. A chunk holds the valid
events as :data:`Row` tuples (one shape for every source, so the statistics never look at the
input's format) and the records it refused, each with a reason; nothing is dropped silently.

=========== ===================================================================================
input       what is read
=========== ===================================================================================
``x.jsonl`` the producer's ``--sink jsonl`` output: one event (``events/schema.py``) per line
``x.csv``   the producer's ``--sink csv`` output: a header of :data:`events.schema.FIELDS`
``-``       JSONL events on stdin (``python -m producers.synthetic --sink stdout ... | ...``)
``kafka``   the interactions topic (``TOPIC_INTERACTIONS``, default ``interactions``), read
            with ``assign()`` from the beginning to the end each partition has when reading starts
``topic:N`` the topic ``N``, the same way
OTTO        OTTO's ``train.jsonl`` (one session per line): :mod:`reporting.otto`
=========== ===================================================================================

Events of our contract are validated by :func:`events.schema.decode`; its reason names a
refused record (``unparseable``, ``schema``, ...). ``run_tag`` keeps only the events of one
producer run (event ids ``{run_tag}-{n}``; the producer's ``--report`` names the tag): the
others are counted as skipped, not refused.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from events.schema import EVENT_TYPE_INDEX, FIELDS, Rejection, check, decode

Format = Literal["auto", "jsonl", "csv", "otto"]
FORMATS: Final[tuple[Format, ...]] = ("auto", "jsonl", "csv", "otto")
CHUNK: Final = 8_192  # records per chunk

#: One valid event: (event type index into EVENT_TYPES, ts epoch ms, user id, item id,
#: session id or None, category or None, price in USD or None, country or None)
Row = tuple[int, int, str, str, "str | None", "str | None", "float | None", "str | None"]


class SourceError(ValueError):
    """The input cannot be read at all (missing file, wrong header); the message names it."""


@dataclass
class Chunk:
    """Up to :data:`CHUNK` records of the input: valid rows, refusals, records skipped by ``run_tag``."""

    rows: list[Row] = field(default_factory=list)
    refused: list[Rejection] = field(default_factory=list)
    skipped: int = 0  # valid events of other runs (run_tag)


@dataclass(frozen=True)
class Input:
    """A resolved input: what it is and the name its exploration folder gets."""

    kind: Literal["file", "stdin", "topic"]
    format: Literal["jsonl", "csv", "otto"]
    location: str  # the path, "-" or the topic name
    name: str  # default folder name under reports/explore/


def resolve_input(spec: str, fmt: Format = "auto", environ: dict[str, str] | None = None) -> Input:
    """What ``--input`` and ``--format`` mean; SourceError if a file is missing.

    >>> resolve_input("topic:clicks").name, resolve_input("-").format
    ('clicks', 'jsonl')
    """
    if spec == "kafka" or spec.startswith("topic:"):
        from broker.config import Topics

        topic = Topics.from_env(environ).interactions if spec == "kafka" else spec.removeprefix("topic:")
        if not topic:
            raise SourceError(f"--input {spec!r} names no topic")
        if fmt not in ("auto", "jsonl"):
            raise SourceError(f"--format {fmt} does not apply to a topic (it holds JSON events)")
        return Input("topic", "jsonl", topic, topic)
    if spec == "-":
        return Input("stdin", "jsonl" if fmt == "auto" else fmt, "-", "stdin")
    path = Path(spec)
    if not path.is_file():
        raise SourceError(f"--input {spec!r}: no such file (or 'kafka', 'topic:NAME', '-')")
    if fmt == "auto":
        fmt = "csv" if path.suffix.lower() == ".csv" else ("otto" if _looks_like_otto(path) else "jsonl")
    name = "otto" if fmt == "otto" else path.name.split(".")[0] or "input"
    return Input("file", fmt, spec, name)


def _looks_like_otto(path: Path) -> bool:
    """True if the first non-empty line is an OTTO session (``session`` and ``events`` keys)."""
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    return False
                return isinstance(obj, dict) and "session" in obj and "events" in obj
    return False


def event_row(event: dict[str, Any]) -> Row:
    """The row of a validated event of our contract."""
    return (EVENT_TYPE_INDEX[event["event_type"]], event["ts"], event["user_id"], event["item_id"],
            event["session_id"], event["category"], event["price"], event["country"])


class _Chunker:
    """Builds chunks from decoded events, applying the run-tag filter."""

    def __init__(self, run_tag: str | None):
        self.prefix = None if run_tag is None else run_tag + "-"
        self.chunk = Chunk()
        self.records = 0

    def add(self, event: dict[str, Any] | None, rejection: Rejection | None) -> Chunk | None:
        """Add one decoded record; return the chunk when it is full."""
        if rejection is not None:
            self.chunk.refused.append(rejection)
        elif self.prefix is not None and not str(event["event_id"]).startswith(self.prefix):  # type: ignore[index]
            self.chunk.skipped += 1
        else:
            self.chunk.rows.append(event_row(event))  # type: ignore[arg-type]
        self.records += 1
        if self.records % CHUNK == 0:
            return self.take()
        return None

    def take(self) -> Chunk:
        chunk, self.chunk = self.chunk, Chunk()
        return chunk


def _decoded(values: Iterable[bytes], run_tag: str | None, lines: bool = True) -> Iterator[Chunk]:
    """Chunks of JSON events; with ``lines`` (a file) blank lines are no records (an empty message is one)."""
    chunker = _Chunker(run_tag)
    for raw in values:
        if lines and not raw.strip():
            continue
        full = chunker.add(*decode(raw))
        if full is not None:
            yield full
    yield chunker.take()


def csv_event(cells: list[str], where: str) -> tuple[dict[str, Any] | None, Rejection | None]:
    """A CSV row of the producer's ``--sink csv`` (columns :data:`FIELDS`, empty cell = null) as an event.

    >>> row = ["1", "e1", "view", "1735689600000", "u1", "i2", "s1", "Books", "9.5", "US", "mobile", "", ""]
    >>> csv_event(row, "line 2")[0]["price"]
    9.5
    >>> csv_event(['{"broken', *[""] * 12], "line 3")[1].reason
    'unparseable'
    """
    if len(cells) != len(FIELDS):
        return None, Rejection("unparseable", f"{where}: {len(cells)} cells, expected {len(FIELDS)}")
    obj: dict[str, Any] = {}
    for name, cell in zip(FIELDS, cells, strict=True):
        if cell == "":
            obj[name] = None
            continue
        try:
            obj[name] = int(cell) if name in ("schema_version", "ts", "rating") else float(cell) if name == "price" else cell
        except ValueError:
            return None, Rejection("unparseable", f"{where}: {name} {cell[:40]!r} is not a number")
    rejection = check(obj)
    return (None, rejection) if rejection is not None else (obj, None)


def _csv_chunks(f: Iterable[str], where: str, run_tag: str | None) -> Iterator[Chunk]:
    chunker = _Chunker(run_tag)
    reader = csv.reader(f)
    header = next(reader, None)
    if header is None or tuple(header) != FIELDS:
        raise SourceError(f"{where}: the header is not the producer's CSV header ({','.join(FIELDS)})")
    for n, cells in enumerate(reader, start=2):
        if cells:
            full = chunker.add(*csv_event(cells, f"line {n}"))
            if full is not None:
                yield full
    yield chunker.take()


def _topic_values(topic: str) -> Iterator[bytes]:
    from broker.console import iter_topic
    from broker.embedded import resolve_bootstrap

    bootstrap = resolve_bootstrap(autostart=False)
    for record in iter_topic(bootstrap, topic, from_beginning=True, to_end=True):
        yield record.value or b""


def chunks(source: Input, run_tag: str | None = None) -> Iterator[Chunk]:
    """The chunks of an input, in its order (a topic's partitions interleave as they are fetched).

    ``run_tag`` applies to events of our contract; OTTO has no run.
    """
    if source.kind == "topic":
        return _decoded(_topic_values(source.location), run_tag, lines=False)
    if source.kind == "file":
        return _file_chunks(source, run_tag)
    if source.format == "otto":
        from reporting.otto import otto_chunks

        return otto_chunks(sys.stdin.buffer)
    if source.format == "csv":
        return _csv_chunks(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline=""),
                           "stdin", run_tag)
    return _decoded(sys.stdin.buffer, run_tag)


def _file_chunks(source: Input, run_tag: str | None) -> Iterator[Chunk]:
    """A file's chunks; the file is closed when they are done (or abandoned)."""
    path = Path(source.location)
    if source.format == "otto":
        from reporting.otto import otto_chunks

        with path.open("rb") as f:
            yield from otto_chunks(f)
    elif source.format == "csv":
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            yield from _csv_chunks(f, str(path), run_tag)
    else:
        with path.open("rb") as f:
            yield from _decoded(f, run_tag)
