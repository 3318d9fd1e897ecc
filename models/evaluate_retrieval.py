"""Evaluate the Two-Tower retriever against baselines and the oracle: ``python -m models.evaluate_retrieval``.

Examples::

    python -m models.evaluate_retrieval --generator-seed 7
    python -m models.evaluate_retrieval --examples data/examples.jsonl --model artifacts/two_tower.pt \\
        --users topic:users --items topic:items --generator-seed 7 --out reports/

The queries are the clicked views of the artifact's test range (the last part of the time
range, which neither training nor early stopping read). For each, every retriever ranks the
whole catalog as of the test range's start (item popularity from the flow's counts before it)
and the clicked item's rank gives Recall@K, NDCG@K and MRR (``models/retrieval_metrics.py``):

* ``two-tower``: the artifact's user tower against its item tower;
* ``popularity``: every item by its views in the 24 h before the test start, the same for all;
* ``category popularity``: the items of the user's most viewed categories (its 24 h history
  as of the view) first, by popularity within them;
* ``random``: a random order (Recall@K about K / items);
* ``oracle``: the generator's truth, ``P(choose) x P(click)`` (``models/retrieval_oracle.py``),
  with ``--generator-seed`` (the producer's ``--seed``); skipped without it.

It also draws t-SNE maps of the item embeddings (coloured by category) and of user
embeddings (coloured by the generator's latent segment, taken from the world for the picture
only), with the k-nearest-neighbour purity of each against chance.

Outputs in ``--out``: ``retrieval.json``, ``retrieval_recall.png``, ``retrieval_tsne_items.png``,
``retrieval_tsne_users.png``; a table on stdout.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from common.config_cli import config_parser, option, require_field, run_cli
from events.schema import CATEGORIES
from models import plots
from models.artifact import ArtifactError
from models.data import ExamplesError, TimeSplit
from models.retrieval_artifact import load_retrieval_artifact, require_catalog
from models.retrieval_data import Catalog, load_profiles, load_queries
from models.retrieval_metrics import KS, ranking_metrics, ranks_in_chunks
from models.retrieval_oracle import check_world, oracle_scores, user_numbers
from models.train_retrieval import Encoder, catalog_ranks

Log = Callable[[str], None]
CURVE_KS = (1, 2, 5, 10, 20, 50, 100, 200, 500)
POPULARITY_VIEWS_24H = 8  # column of the item counts: 24 h views (3 horizons x 4 types, features/spec.py)


@dataclass(frozen=True)
class EvaluateRetrievalConfig:
    """A retrieval evaluation; CLI flags map 1:1 to fields."""

    examples: str = option("data/examples.jsonl", "backfill examples JSONL (rows with 'history')")
    users: str = option("data/history.users.jsonl", "user profiles JSONL, or topic:NAME")
    items: str = option("data/history.items.jsonl", "the catalog JSONL, or topic:NAME")
    model: str = option("artifacts/two_tower.pt", "Two-Tower artifact")
    generator_seed: int | None = option(None, "the producer's --seed: enables the oracle and the segment map")
    out: str = option("reports", "folder for retrieval.json and the PNGs")
    pictures: bool = option(True, "draw the t-SNE maps and compute the neighbour purities (about a minute)")
    map_points: int = option(3000, "users (and at most this many items) on each t-SNE map")
    seed: int = option(0, "seed of the random baseline and the t-SNE")
    max_examples: int | None = option(None, "read only the first N (earliest) examples")

    def __post_init__(self) -> None:
        c = "EvaluateRetrievalConfig"
        require_field(self.map_points >= 50, c, "map_points", ">= 50", self.map_points)
        require_field(self.max_examples is None or self.max_examples >= 1, c, "max_examples", ">= 1", self.max_examples)


def knn_purity(points: np.ndarray, labels: np.ndarray, k: int = 10) -> tuple[float, float]:
    """(share of each point's k nearest neighbours (cosine) with its label, that share by chance).

    >>> pts = np.array([[1, 0], [0.99, 0.1], [0, 1], [0.1, 0.99]], dtype=np.float32)
    >>> knn_purity(pts, np.array([0, 0, 1, 1]), k=1)
    (1.0, 0.5)
    """
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(points)
    _, idx = nn.kneighbors(points)
    same = labels[idx[:, 1:]] == labels[:, None]
    shares = np.bincount(labels) / len(labels)
    return float(same.mean()), float((shares**2).sum())


def tsne(points: np.ndarray, seed: int) -> np.ndarray:
    """2-D t-SNE (scikit-learn, cosine) of the points."""
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, metric="cosine", init="pca", random_state=seed, perplexity=30).fit_transform(points)


def evaluate_retrieval(cfg: EvaluateRetrievalConfig, log: Log = print) -> dict[str, Any]:
    """Run the evaluation, write the report and plots, return the report."""
    t0 = time.monotonic()
    artifact = load_retrieval_artifact(cfg.model)
    model = artifact.build_model()
    profiles = load_profiles(cfg.users, cfg.items)
    catalog = Catalog.from_profiles(profiles)
    require_catalog(artifact, catalog.item_ids, cfg.items)
    queries = load_queries(cfg.examples, catalog, profiles, max_examples=cfg.max_examples)
    split = TimeSplit(**artifact.split)
    _, _, test_mask = split.masks(queries.ts)
    rows = np.flatnonzero(test_mask & queries.positive)
    if not len(rows):
        msg = f"no clicked view in the artifact's test range of {cfg.examples}"
        raise ExamplesError(msg)
    targets = queries.item_index[rows]
    encoder = Encoder(artifact.config, queries, catalog, profiles)
    popularity = catalog.popularity_at(queries, split.test_start_ms)[:, POPULARITY_VIEWS_24H].astype(np.float64)
    log(f"evaluate_retrieval: {len(rows):,} test clicks, {len(catalog):,} items; ranking the catalog for each ...")

    ranks: dict[str, np.ndarray] = {"two-tower": catalog_ranks(encoder, model, rows, split.test_start_ms)}
    ranks["popularity"] = ranks_in_chunks(lambda r: np.broadcast_to(popularity, (len(r), len(catalog))), targets)
    user_views = queries.category_counts[rows, :, 0].astype(np.float64)  # (n, C) views per category, 24 h
    weight = popularity.max() + 1.0  # a category's views dominate; popularity orders within equal ones
    ranks["category popularity"] = ranks_in_chunks(
        lambda r: user_views[r][:, catalog.category] * weight + popularity[None, :], targets)
    rng = np.random.default_rng(cfg.seed)
    ranks["random"] = ranks_in_chunks(lambda r: rng.random((len(r), len(catalog))), targets)
    world = None
    if cfg.generator_seed is not None:
        from producers.synthetic.config import ModelParams
        from producers.synthetic.prepare import world_and_funnel

        params = ModelParams()
        world, funnel = world_and_funnel(cfg.generator_seed, params)
        check_world(world, profiles, catalog, cfg.generator_seed)
        users = user_numbers([queries.user_id[i] for i in rows])
        devices = queries.device[rows]
        ranks["oracle"] = ranks_in_chunks(lambda r: oracle_scores(world, params, funnel, users[r], devices[r]),
                                          targets, chunk=256)
    results = {name: ranking_metrics(r, KS) for name, r in ranks.items()}
    curves = {name: {k: float((r <= k).mean()) for k in CURVE_KS} for name, r in ranks.items()}
    oracle_recall = results.get("oracle", {}).get("recall@100")
    if oracle_recall:
        for r in results.values():
            r["share_of_oracle_recall@100"] = r["recall@100"] / oracle_recall
    out = Path(cfg.out)
    report: dict[str, Any] = {
        "model": cfg.model, "model_version": artifact.version, "examples": cfg.examples,
        "test_range": {"start_ms": split.test_start_ms, "end_ms": split.end_ms, "clicks": len(rows)},
        "catalog_items": len(catalog), "catalog_as_of_ms": split.test_start_ms, "results": results,
        "recall_curves": curves, "config": asdict(cfg),
        "note": "items the user clicked before may be retrieved again and count like any other",
        "plots": {"recall": str(plots.plot_recall_at_k(curves, out / "retrieval_recall.png"))},
    }
    if cfg.pictures:
        report["embeddings"] = embedding_pictures(cfg, encoder, model, catalog, queries, rows, world, out, log)
        report["plots"] |= report["embeddings"].pop("plots")
    (out / "retrieval.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS))
    log(table(results))
    log(f"evaluate_retrieval: wrote {out / 'retrieval.json'} and the plots in {time.monotonic() - t0:.0f} s")
    return report


def embedding_pictures(cfg: EvaluateRetrievalConfig, encoder: Encoder, model: Any, catalog: Catalog, queries: Any,
                       rows: np.ndarray, world: Any, out: Path, log: Log) -> dict[str, Any]:
    """t-SNE maps and kNN purities of item embeddings (by category) and user embeddings (by latent segment)."""
    from producers.synthetic.world import SEGMENTS

    rng = np.random.default_rng(cfg.seed)
    result: dict[str, Any] = {"plots": {}}
    items = encoder.catalog_embeddings(model, int(queries.ts[rows].min()))
    pick = np.sort(rng.choice(len(catalog), min(cfg.map_points, len(catalog)), replace=False))
    purity, chance = knn_purity(items, catalog.category)
    result["item_category_purity@10"] = {"purity": purity, "chance": chance}
    log(f"evaluate_retrieval: item embeddings: 10-NN category purity {purity:.3f} (chance {chance:.3f}); t-SNE ...")
    result["plots"]["tsne_items"] = str(plots.plot_embedding_map(
        tsne(items[pick], cfg.seed), [CATEGORIES[c] for c in catalog.category[pick]],
        "Item embeddings (t-SNE), by category", out / "retrieval_tsne_items.png"))
    if world is None:
        return result
    # one query per user: the user's last test view, embedded as of it
    last: dict[str, int] = {}
    for r in rows.tolist():
        last[queries.user_id[r]] = r
    users = np.array(sorted(last.values()))
    users = np.sort(rng.choice(users, min(cfg.map_points, len(users)), replace=False))
    emb = encoder.user_embeddings(model, users)
    segment = world.users.segment[user_numbers([queries.user_id[r] for r in users])]
    purity, chance = knn_purity(emb, segment)
    result["user_segment_purity@10"] = {"purity": purity, "chance": chance, "users": len(users)}
    log(f"evaluate_retrieval: user embeddings: 10-NN segment purity {purity:.3f} (chance {chance:.3f}); t-SNE ...")
    result["plots"]["tsne_users"] = str(plots.plot_embedding_map(
        tsne(emb, cfg.seed), [SEGMENTS[s] for s in segment],
        "User embeddings (t-SNE), by the generator's latent segment", out / "retrieval_tsne_users.png"))
    return result


def table(results: dict[str, dict[str, float]]) -> str:
    """The results as an aligned text table."""
    cols = ["recall@10", "recall@50", "recall@100", "ndcg@10", "mrr"]
    has_share = any("share_of_oracle_recall@100" in r for r in results.values())
    head = f"{'retriever':<22}" + "".join(f"{c:>12}" for c in cols) + (f"{'of oracle':>12}" if has_share else "")
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        share = f"{100 * r['share_of_oracle_recall@100']:>11.0f}%" if has_share else ""
        lines.append(f"{name:<22}" + "".join(f"{r[c]:>12.4f}" for c in cols) + share)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(EvaluateRetrievalConfig, "models.evaluate_retrieval",
                           "Evaluate the Two-Tower retriever against popularity baselines, random and the oracle.")
    return run_cli(parser, argv, EvaluateRetrievalConfig,
                   lambda cfg: evaluate_retrieval(cfg, log=lambda line: print(line, flush=True)),
                   (ExamplesError, ArtifactError, OSError))


if __name__ == "__main__":
    sys.exit(main())
