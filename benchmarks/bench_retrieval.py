"""Benchmark of the retriever's index: queries per second, and HNSW's recall against exact search.

``python -m benchmarks.bench_retrieval`` prints a markdown table. For a catalog of N random
unit vectors (D = the Two-Tower's default output dimension) and random unit queries, it
measures top-100 searches with the exact index (``IndexFlatIP``) and with HNSW
(``IndexHNSWFlat``, M 32, efSearch 128), at batch 1 and 256, one FAISS thread, after a warm-up,
median of ``--repeats``. The table leads with same-run ratios (HNSW against exact: speed-up
and Recall@100 of HNSW's top 100 against the exact top 100), then the absolute figures with
the date, the CPU and the load average. Random vectors are a hard case for HNSW (no clusters);
the trained embeddings, which cluster by category, are easier.
"""

from __future__ import annotations

import argparse
import statistics
import time

import faiss
import numpy as np

from benchmarks.common import conditions, headline
from models.retrieval_index import ItemIndex
from models.two_tower import TwoTowerConfig

K = 100


def unit_vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def queries_per_s(index: ItemIndex, queries: np.ndarray, batch: int, repeats: int, seconds: float) -> float:
    """Median over repeats of queries/s for searches of ``batch`` queries."""
    index.search(queries[:batch], K)
    rates = []
    for r in range(repeats):
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a = (done + r * batch) % (len(queries) - batch)
            index.search(queries[a:a + batch], K)
            done += batch
        rates.append(done / (time.perf_counter() - start))
    return statistics.median(rates)


def recall(approx: ItemIndex, exact: ItemIndex, queries: np.ndarray) -> float:
    """Share of the exact top K that the approximate index also returns."""
    _, a = approx.search(queries, K)
    _, e = exact.search(queries, K)
    return float(np.mean([len(set(x) & set(y)) / K for x, y in zip(a.tolist(), e.tolist(), strict=True)]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_retrieval", description=__doc__.split("\n\n")[0])
    p.add_argument("--catalogs", type=int, nargs="+", default=[5_000, 1_000_000], help="catalog sizes (default: 5000 1000000)")
    p.add_argument("--repeats", type=int, default=3, help="measurements per cell (default: 3)")
    p.add_argument("--seconds", type=float, default=1.0, help="seconds per measurement (default: 1)")
    args = p.parse_args(argv)
    faiss.omp_set_num_threads(1)
    dim = TwoTowerConfig().output_dim
    rng = np.random.default_rng(0)
    queries = unit_vectors(4096, dim, rng)
    rows = []
    for n in args.catalogs:
        items = unit_vectors(n, dim, rng)
        t0 = time.perf_counter()
        exact = ItemIndex(items, [f"i{i}" for i in range(n)])
        hnsw = ItemIndex(items, exact.item_ids, kind="hnsw")
        build_s = time.perf_counter() - t0
        cells = {(kind, b): queries_per_s(index, queries, b, args.repeats, args.seconds)
                 for kind, index in (("exact", exact), ("hnsw", hnsw)) for b in (1, 256)}
        rows.append((n, cells, recall(hnsw, exact, queries[:1000]), build_s))
    print(f"\nRetrieval index, top {K} of N random unit vectors (D {dim}), one thread: HNSW / exact in the same run\n")
    print("| catalog N | HNSW / exact, batch 1 | HNSW / exact, batch 256 | HNSW Recall@100 vs exact |")
    print("| ---: | ---: | ---: | ---: |")
    for n, cells, rec, _ in rows:
        print(f"| {n:,} | {cells['hnsw', 1] / cells['exact', 1]:.2f}x | {cells['hnsw', 256] / cells['exact', 256]:.2f}x "
              f"| {rec:.3f} |")
    n, cells, _, _ = rows[-1]
    headline("bench_retrieval", f"HNSW / exact top-{K} search, queries/s (catalog {n:,}, batch 1)",
             cells["hnsw", 1] / cells["exact", 1], "exact search")
    print(f"\nAbsolute, {conditions()}:\n")
    print("| catalog N | exact, batch 1 | exact, batch 256 | HNSW, batch 1 | HNSW, batch 256 | build both, s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, cells, _, build_s in rows:
        print(f"| {n:,} | {cells['exact', 1]:,.0f} q/s | {cells['exact', 256]:,.0f} q/s | {cells['hnsw', 1]:,.0f} q/s "
              f"| {cells['hnsw', 256]:,.0f} q/s | {build_s:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
