"""Small retrieval data sets with a planted answer: each user clicks only its own few items.

Written in the files the pipeline writes (examples JSONL with ``history``, users and items
JSONL), so tests go through the real loaders.
"""

from __future__ import annotations

import random
from pathlib import Path

import orjson

from events.schema import CATEGORIES, COUNTRIES, DEVICES

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def liked(user: int, items: int, per_user: int = 4) -> list[int]:
    """The items a user clicks: a block of ``per_user`` items that depends on the user."""
    return [(user * 7 + j) % items for j in range(per_user)]


def write_planted(folder: Path, users: int = 120, items: int = 80, views: int = 16_000, seed: int = 1) -> dict[str, Path]:
    """Views spread over 3 hours: half of a user's views go to its liked items and are clicked."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"users": folder / "users.jsonl", "items": folder / "items.jsonl", "examples": folder / "examples.jsonl"}
    paths["users"].write_bytes(b"".join(orjson.dumps(
        {"schema_version": 1, "user_id": f"u{u}", "age": 18 + u % 50, "gender": "MFO"[u % 3],
         "country": COUNTRIES[u % 5], "device": DEVICES[u % 3], "updated_ms": T0}) + b"\n" for u in range(users)))
    paths["items"].write_bytes(b"".join(orjson.dumps(
        {"schema_version": 1, "item_id": f"i{i}", "category": CATEGORIES[i % 5], "price": 5.0 + i,
         "updated_ms": T0}) + b"\n" for i in range(items)))
    history: dict[int, list[str]] = {}
    lines = []
    for n in range(views):
        u = rng.randrange(users)
        clicked = rng.random() < 0.5
        item = rng.choice(liked(u, items)) if clicked else rng.randrange(items)
        ts = T0 + n * 10_800_000 // views
        recent = history.get(u, [])
        lines.append(orjson.dumps({
            "event_id": f"e{n}", "event_type": "view", "ts": ts, "user_id": f"u{u}", "item_id": f"i{item}",
            "category": CATEGORIES[item % 5], "price": 5.0 + item, "country": COUNTRIES[u % 5],
            "device": DEVICES[u % 3], "session_id": "s", "counts": [0] * 36, "item_as_of": ts - ts % 60_000,
            "history": {"recent_items": recent[:20], "category_counts": [[0, 0, 0, 0]] * 5},
            "labels": {"click": int(clicked), "add_cart": 0, "purchase": 0}}))
        if clicked:
            history[u] = [f"i{item}"] + [i for i in recent if i != f"i{item}"]
    paths["examples"].write_bytes(b"\n".join(lines) + b"\n")
    return paths
