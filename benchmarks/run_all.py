"""Run every benchmark in turn and print all their tables: ``python -m benchmarks.run_all`` (``make bench``).

Order: bench_producer, bench_features, bench_model, bench_scoring, bench_latency, bench_retrieval. Each
runs as its own process (``python -m benchmarks.NAME ...``, so no torch thread setting,
GC threshold or memory carries over from one to the next) with the settings below; its
tables go to stdout and its progress to stderr as it runs. One DLRM is trained first on
generated history (about 20 s, :func:`benchmarks.common.train_model`) and passed to the
scoring and latency benchmarks with ``--model``, unless ``--model PATH`` is given.

The default settings take 13 to 20 minutes on the 2-core machine; ``--quick`` about 3
(fewer events, fewer repeats: for checking that everything runs, not for figures to
quote). Every table carries its own load average; the run ends with the wall time of
each benchmark and a non-zero exit code if any of them failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, load_average, train_model

#: Arguments per benchmark: (full run, --quick run).
SETTINGS: dict[str, tuple[list[str], list[str]]] = {
    "bench_producer": (["--events", "1000000", "--runs", "3"],
                       ["--events", "200000", "--runs", "1"]),
    "bench_features": (["--events", "500000", "--repeats", "3", "--users", "10000", "1000000"],
                       ["--events", "200000", "--repeats", "1", "--users", "10000", "--processes", "1"]),
    "bench_model": (["--repeats", "5", "--batch-sizes", "1", "64", "256", "1024", "2048"],
                    ["--repeats", "2", "--seconds", "0.2", "--batch-sizes", "1", "64", "1024"]),
    "bench_scoring": (["--events", "500000", "--runs", "3", "--repeats", "5", "--seconds", "0.5", "--seed-widths"],
                      ["--events", "200000", "--runs", "1", "--repeats", "2", "--seconds", "0.2", "--processes", "1"]),
    "bench_latency": (["--duration", "40", "--warmup", "10", "--runs", "3", "--recovery-runs", "2"],
                      ["--duration", "20", "--warmup", "5", "--runs", "1", "--recovery-runs", "1"]),
    "bench_retrieval": (["--catalogs", "5000", "1000000"], ["--catalogs", "5000", "--repeats", "1", "--seconds", "0.3"]),
}
TAKES_MODEL = ("bench_scoring", "bench_latency")


def run_one(name: str, args: list[str]) -> tuple[int, float]:
    """Run ``python -m benchmarks.NAME ARGS``; return its exit code and wall seconds."""
    cmd = [sys.executable, "-m", f"benchmarks.{name}", *args]
    print(f"\n## {name}\n\n`python -m benchmarks.{name} {' '.join(args)}` (started with {load_average()})\n",
          flush=True)
    started = time.perf_counter()
    code = subprocess.run(cmd, cwd=REPO, check=False).returncode
    return code, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run_all",
                                description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("--quick", action="store_true", help="small settings, about 3 minutes (a smoke run)")
    p.add_argument("--only", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                   help="run only these benchmarks (default: all, in the order listed)")
    p.add_argument("--model", type=Path, default=None,
                   help="DLRM artifact for bench_scoring and bench_latency (default: train one, ~20 s)")
    args = p.parse_args(argv)
    chosen = [name for name in SETTINGS if name in args.only]
    results: list[tuple[str, int, float]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-all-") as tmp:
        model = args.model
        if model is None and any(name in TAKES_MODEL for name in chosen):
            model = train_model(Path(tmp) / "dlrm.pt").path
        for name in chosen:
            extra = list(SETTINGS[name][1 if args.quick else 0])
            if name in TAKES_MODEL:
                extra += ["--model", str(model)]
            code, seconds = run_one(name, extra)
            results.append((name, code, seconds))
    print(f"\n## Summary ({'quick' if args.quick else 'full'} settings), {load_average()}\n")
    print("| benchmark | exit code | wall time |")
    print("| --- | ---: | ---: |")
    for name, code, seconds in results:
        print(f"| {name} | {code} | {seconds / 60:.1f} min |")
    print(f"| all, with model training | | {(time.perf_counter() - started) / 60:.1f} min |")
    return 1 if any(code for _, code, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
