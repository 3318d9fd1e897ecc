"""Ready requests in, slates out: one user-tower forward, one index search, one DLRM forward per batch.

A batch is what the slate stage releases, in chunks of at most :data:`CHUNK` requests.

For each request (notation: B requests, M candidates, D the towers' dimension):

1. the user tower embeds the user as of the request: profile (from the ``users`` table),
   context (device, hour), the recent items and per-category counts the partition stage
   attached                                                                   (B, D)
2. the FAISS index over the catalog's item embeddings returns the top ``candidates + the
   purchases left out`` items; the items the user bought in the purchase window are dropped
   (a business rule: ``FeaturesConfig.purchase_window_ms``, 24 h), the first M kept   (B, M)
3. the DLRM scores every (user, candidate) pair on the point-in-time counts the flow holds:
   the user's, the candidate's closed item windows before the request's cut, and the user x
   the candidate's category                                                   (B x M, 36)
4. the top ``k`` by DLRM score (ties: the better retrieval rank) form the slate.

A user without a profile gets a **cold-start** slate instead: the catalog's most viewed items
in the 24 h before the cut (the same for every context: the flow keeps no per-country
popularity), purchases left out, marked ``cold_start`` and counted.

Each slate is one record for the ``recommendations`` topic, key ``user_id``; the same input
gives the same bytes (batches are padded like the scorer's, so a row's numbers do not depend
on the batch it was in). The Kafka message timestamp is when the flow produced it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import torch

from events.profiles import GENDERS
from events.schema import CATEGORIES, COUNTRIES, DEVICES
from features.item_table import ClosedWindowTable
from features.partition_stage import SlateRequest
from features.records import Record
from features.tiles import GROUP_BITS, unpack
from models.retrieval_artifact import RetrievalArtifact
from models.retrieval_data import hashed
from models.retrieval_index import ItemIndex

PAD_ROWS = 16  # user-tower batches are padded to a multiple of this (batch-invariant embeddings)
# Requests ranked per forward, at most: a backfill releases a minute's requests at once
# (thousands); chunks of 128 bound the memory of a batch (its B x M rows) at the same speed.
CHUNK = 128
VIEWS_24H = 8  # column of an item's counts: 24 h views (3 horizons x 4 types)


@dataclass(frozen=True)
class SlateSettings:
    """How slates are made."""

    candidates: int = 100  # M: retrieved and ranked per request
    n_groups: int = 3  # horizons of the flow's counts
    item_delay_ms: int = 6_000  # the flow's FeaturesConfig.item_delay_ms (a cut's earliest request time)

    def __post_init__(self) -> None:
        if self.candidates < 1:
            msg = f"SlateSettings.candidates must be >= 1, got {self.candidates}"
            raise ValueError(msg)


class SlateRanker:
    """Both models, the index and the user profiles; :meth:`rank` makes a batch of slates."""

    def __init__(self, retriever: RetrievalArtifact, score: Any, ranking_model_version: str,
                 users: dict[str, dict[str, Any]], settings: SlateSettings | None = None):
        self.retriever = retriever
        self.tower = retriever.build_model()
        self.index = ItemIndex(retriever.embeddings, retriever.item_ids)
        self.item_row = {item: n for n, item in enumerate(retriever.item_ids)}
        self.item_buckets = np.array([hashed(i, retriever.config.item_buckets) for i in retriever.item_ids])
        self.item_category: list[int] = retriever.category.tolist()  # per catalog row: an index into CATEGORIES
        self.item_price: list[float] = retriever.price.tolist()  # per catalog row, USD
        self.score, self.ranking_version = score, ranking_model_version
        self.users = users
        self.settings = settings or SlateSettings()
        self.item_delay_ms = self.settings.item_delay_ms
        self.counters: dict[str, int] = {"slates": 0, "cold_start": 0, "no_profile": 0}

    def catalog_size(self) -> int:
        return len(self.retriever.item_ids)

    def _item_vec(self, items: ClosedWindowTable, item_id: str, t: int, cut: int) -> int:
        return items.query(item_id, t, cut) if item_id in items.entities else 0

    def _context(self, r: SlateRequest) -> tuple[str, str]:
        """(country, device) of a request: its own, else the user's profile (a request may leave them out)."""
        profile = self.users.get(r.user_id, {})
        return r.country or profile.get("country", ""), r.device or profile.get("device", "")

    def _embed(self, requests: list[SlateRequest]) -> np.ndarray:
        """(B, D) user embeddings, through a batch padded to a multiple of PAD_ROWS."""
        cfg = self.retriever.config
        b = len(requests)
        padded = -(-b // PAD_ROWS) * PAD_ROWS
        cols = np.zeros((7, padded), dtype=np.int64)
        recent = np.full((padded, 20), -1, dtype=np.int64)
        counts = np.zeros((padded, len(CATEGORIES), 4), dtype=np.float32)
        gender_index = {g: n + 1 for n, g in enumerate(GENDERS)}
        country_index = {c: n for n, c in enumerate(COUNTRIES)}  # another value: the first row
        device_index = {d: n for n, d in enumerate(DEVICES)}
        shift = GROUP_BITS * (self.settings.n_groups - 1)  # the longest horizon's group
        group = (1 << GROUP_BITS) - 1
        for n, r in enumerate(requests):
            profile = self.users[r.user_id]
            country, device = self._context(r)
            cols[:, n] = (hashed(r.user_id, cfg.user_buckets), profile["age"], gender_index[profile["gender"]],
                          country_index.get(country, 0), device_index.get(device, 0), (r.ts // 3_600_000) % 24, 0)
            rows = [self.item_row[i] for i in r.recent if i in self.item_row][:20]
            recent[n, :len(rows)] = self.item_buckets[rows]
            counts[n] = unpack([v >> shift & group for v in r.cat_vecs], 1)
        with torch.inference_mode():
            user_t, age_t, gender_t, country_t, device_t, hour_t = (torch.from_numpy(c) for c in cols[:6])  # (B,) each
            out = self.tower.users(user_t, age_t, gender_t, country_t, device_t, hour_t, torch.from_numpy(recent),
                                   torch.from_numpy(counts))
        return out.numpy()[:b]

    def rank(self, ready: list[tuple[SlateRequest, int]], items: ClosedWindowTable) -> list[Record]:
        """Slates of ready ``(request, cut)`` pairs, as records for the recommendations topic."""
        warm = [(r, cut) for r, cut in ready if r.user_id in self.users]
        cold = [(r, cut) for r, cut in ready if r.user_id not in self.users]
        records = [rec for a in range(0, len(warm), CHUNK) for rec in self._warm(warm[a:a + CHUNK], items)]
        popularity: dict[int, list[str]] = {}
        for r, cut in cold:
            if cut not in popularity:  # as of the cut alone, so every request with this cut gets the same list
                at = cut + self.item_delay_ms
                views = unpack([self._item_vec(items, i, at, cut) for i in self.retriever.item_ids],
                               self.settings.n_groups)[:, VIEWS_24H]  # (I,) one call for the catalog
                order = np.argsort(-views, kind="stable")  # ties: catalog order
                popularity[cut] = [self.retriever.item_ids[i] for i in order]
            bought = set(r.purchased)
            slate = [(item, None, None) for item in popularity[cut] if item not in bought][:r.k]
            records.append(self._record(r, cut, slate, cold_start=True))
            self.counters["no_profile"] += 1
            self.counters["cold_start"] += 1
        self.counters["slates"] += len(ready)
        return records

    def _warm(self, ready: list[tuple[SlateRequest, int]], items: ClosedWindowTable) -> list[Record]:
        m = self.settings.candidates
        catalog, category, price = self.retriever.item_ids, self.item_category, self.item_price
        requests = [r for r, _ in ready]
        users = self._embed(requests)  # (B, D)
        extra = max(len(r.purchased) for r in requests)
        scores, rows = self.index.search(users, m + extra)  # (B, M + extra)
        # per request, its candidates' catalog rows and retrieval scores, best first
        cand_rows: list[list[int]] = []
        cand_scores: list[list[float]] = []
        for r, found, found_scores in zip(requests, rows.tolist(), scores.tolist(), strict=True):
            kept, kept_scores = found, found_scores
            if r.purchased or found[m - 1] < 0:  # leave out the purchases (and FAISS's -1 fill of a small catalog)
                bought = set(r.purchased)
                keep = [n for n, i in enumerate(found) if i >= 0 and catalog[i] not in bought][:m]
                kept, kept_scores = [found[n] for n in keep], [found_scores[n] for n in keep]
            cand_rows.append(kept[:m])
            cand_scores.append(kept_scores[:m])
        # (sum M, 36) point-in-time counts: user | candidate item | user x the candidate's category,
        # and the DLRM's context columns; one Python loop over the candidates, the rest per request
        vecs: list[int] = []
        user_ids: list[str] = []
        item_ids: list[str] = []
        countries: list[str] = []
        devices: list[str] = []
        ts: list[int] = []
        known, query = items.entities, items.query
        for (r, cut), cands in zip(ready, cand_rows, strict=True):
            t, user_vec, cat_vecs = r.ts, r.user_vec, r.cat_vecs
            ids = [catalog[i] for i in cands]
            for i, item_id in zip(cands, ids):
                vecs += (user_vec, query(item_id, t, cut) if item_id in known else 0, cat_vecs[category[i]])
            country, device = self._context(r)
            n = len(cands)
            user_ids += [r.user_id] * n
            item_ids += ids
            countries += [country] * n
            devices += [device] * n
            ts += [t] * n
        flat = [i for cands in cand_rows for i in cands]
        g = self.settings.n_groups
        counts = unpack(vecs, g).reshape(len(flat), 3 * 4 * g)
        p = self.score(counts, user_ids, item_ids, [CATEGORIES[category[i]] for i in flat], countries, devices,
                       np.array(ts, dtype=np.int64), np.array([price[i] for i in flat], dtype=np.float64))
        records, a = [], 0
        for (r, cut), cands, sc in zip(ready, cand_rows, cand_scores, strict=True):
            mine = p[a:a + len(cands)]
            a += len(cands)
            top = np.argsort(-mine, kind="stable")[:r.k].tolist()  # ties: the better retrieval rank
            top_p = mine[top].tolist()
            records.append(self._record(r, cut, [(catalog[cands[n]], sc[n], top_p[j]) for j, n in enumerate(top)],
                                        cold_start=False))
        return records

    def _record(self, r: SlateRequest, cut: int, slate: Sequence[tuple[str, float | None, float | None]],
                cold_start: bool) -> Record:
        value = {
            "request_id": r.request_id, "user_id": r.user_id, "ts": r.ts, "source": r.source, "k": r.k,
            "cold_start": cold_start,
            "slate": [{"item_id": item, "rank": n + 1, "retrieval_score": rs, "score": s}
                      for n, (item, rs, s) in enumerate(slate)],
            "retrieval_model": self.retriever.version, "ranking_model": self.ranking_version,
            "features_as_of": r.features_as_of, "item_features_as_of": cut,
        }
        return ("recommendations", r.user_id.encode(), orjson.dumps(value))
