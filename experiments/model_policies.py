"""The ``two-tower`` policy: the trained Two-Tower retriever's top k of the whole catalog.

For a session of user u at time t on device d, the user tower (``models/two_tower.py``) reads
what the flow would give it (``slates/ranker.py`` builds the same inputs from the flow's
state): u's profile (age, gender), the context (country, device, UTC hour of t), u's recent
items (the distinct items of u's views and clicks before t, newest first, at most 20) and u's
views, clicks, add-to-carts and purchases per category in the 24 h before t. Here they come
from the events the policy observed (the warm-up history, and in the producer the unserved
sessions): the counts of whole hours in hourly bins (25 kept per user), the current hour's and
the recent items from a user's last :data:`KEEP_RECENT` events (a user with more events than
that in the current hour is undercounted there), so memory stays bounded; the slate is the k items with
the highest inner product with the artifact's catalog embeddings (exact FAISS search, as the flow).

The artifact must have been trained on this world (same seed and model): its catalog's
categories and prices are checked against the world's items, and a mismatch is refused.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import torch

from events.schema import CATEGORIES, EVENT_TYPE_INDEX
from experiments.policies import Context, Observed
from models.retrieval_artifact import RetrievalArtifact, load_retrieval_artifact
from models.retrieval_data import N_RECENT, hashed
from models.retrieval_index import ItemIndex
from producers.synthetic.world import World

KEEP_RECENT = 64  # per user: the most recent observed events kept raw (recent items, the current hour's counts)
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
VIEW, CLICK = EVENT_TYPE_INDEX["view"], EVENT_TYPE_INDEX["click"]


class TwoTowerPolicy:
    """Top k of the catalog by the Two-Tower score, with the user's history as of the session start."""

    name = "two-tower"

    def __init__(self, artifact: RetrievalArtifact, world: World, where: str = "the artifact") -> None:
        n_items = len(world.items.price)
        numbers = np.array([int(i[1:]) if i[1:].isdigit() else -1 for i in artifact.item_ids], dtype=np.int64)
        fits = (len(numbers) == n_items and bool((np.sort(numbers) == np.arange(n_items)).all())
                and np.array_equal(world.items.category[numbers], artifact.category)
                and np.allclose(world.items.price[numbers], artifact.price))
        if not fits:
            msg = (f"{where} was trained on another catalog than this world's {n_items} items (another --seed or "
                   "model?); train it on this world's events (python -m models.train_retrieval)")
            raise ValueError(msg)
        self.world, self.artifact = world, artifact
        self.tower = artifact.build_model()
        self.item_of_row = numbers  # catalog row -> item number
        self.index = ItemIndex(artifact.embeddings, artifact.item_ids)  # exact inner product over (I, D)
        cfg = artifact.config
        self.item_bucket = np.array([hashed(f"i{n}", cfg.item_buckets) for n in range(n_items)], dtype=np.int64)
        self.user_bucket: dict[int, int] = {}
        self.raw: dict[int, deque[tuple[int, int, int]]] = {}  # user -> last (ts, item, etype), in time order
        self.hours: dict[int, dict[int, np.ndarray]] = {}  # user -> hour index -> (C, 4) counts

    @classmethod
    def load(cls, path: str | Path, world: World) -> TwoTowerPolicy:
        return cls(load_retrieval_artifact(path), world, str(path))

    def observe(self, events: Observed) -> None:
        order = np.argsort(events.ts_ms, kind="stable")
        category = self.world.items.category
        for u, i, e, t in zip(events.user[order].tolist(), events.item[order].tolist(), events.etype[order].tolist(),
                              events.ts_ms[order].tolist(), strict=True):
            self.raw.setdefault(u, deque(maxlen=KEEP_RECENT)).append((t, i, e))
            bins = self.hours.setdefault(u, {})
            hour = t // HOUR_MS
            if hour not in bins:
                bins[hour] = np.zeros((len(CATEGORIES), 4), dtype=np.float32)
                for old in [h for h in bins if h < hour - 25]:
                    del bins[old]
            bins[hour][category[i], e] += 1

    def _history(self, user: int, t: int) -> tuple[list[int], np.ndarray]:
        """(recent item numbers, newest first; (C, 4) counts of the 24 h before t) from events before t."""
        counts = np.zeros((len(CATEGORIES), 4), dtype=np.float32)
        now = t // HOUR_MS
        for hour, c in self.hours.get(user, {}).items():
            if now - 24 <= hour < now:  # whole hours; the flow's 24 h horizon starts on an hour
                counts += c
        recent: list[int] = []
        seen: set[int] = set()
        category = self.world.items.category
        for ts, item, etype in reversed(self.raw.get(user, ())):
            if ts >= t:
                continue
            if ts >= now * HOUR_MS:  # the current hour, up to t
                counts[category[item], etype] += 1
            if etype in (VIEW, CLICK) and item not in seen and len(recent) < N_RECENT:
                seen.add(item)
                recent.append(item)
        return recent, counts

    def slates(self, users: np.ndarray, context: Context, k: int, rng: np.random.Generator | None) -> np.ndarray:
        cfg, w = self.artifact.config, self.world.users
        b = len(users)
        recent = np.full((b, N_RECENT), -1, dtype=np.int64)
        counts = np.zeros((b, len(CATEGORIES), 4), dtype=np.float32)
        for n, (u, t) in enumerate(zip(users.tolist(), context.ts_ms.tolist(), strict=True)):
            items, counts[n] = self._history(u, t)
            recent[n, : len(items)] = self.item_bucket[items]
        user_bucket = np.array([self.user_bucket.setdefault(u, hashed(f"u{u}", cfg.user_buckets)) for u in users.tolist()])
        cols = [user_bucket, w.age[users], w.gender[users] + 1, np.asarray(context.country), np.asarray(context.device),
                (context.ts_ms // 3_600_000) % 24]
        with torch.inference_mode():
            bucket, age, gender, country, device, hour = (torch.from_numpy(np.asarray(c, dtype=np.int64)) for c in cols)
            emb = self.tower.users(bucket, age, gender, country, device, hour, torch.from_numpy(recent),
                                   torch.from_numpy(counts)).numpy()  # (B, D)
        _, rows = self.index.search(emb, k)  # (B, k) catalog rows, best first
        return self.item_of_row[rows]
