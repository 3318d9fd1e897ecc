"""Run every benchmark in turn and print all their tables: ``python -m benchmarks.run_all`` (``make bench``).

Order: the entries of :data:`SETTINGS`. Each runs as its own process (``python -m
benchmarks.NAME ...``, so no torch thread setting, GC threshold or memory carries over
from one to the next) with the settings there; its tables go to stdout and its progress to
stderr as it runs. One DLRM is trained first on generated history (about 20 s,
:func:`benchmarks.common.train_model`) and passed with ``--model`` to the benchmarks in
:data:`TAKES_MODEL`, unless ``--model PATH`` is given. ``bench_peers`` runs only when
``.venv-peers`` exists (``make bench-peers`` creates it) or when ``--only`` names it.

Every table leads with ratios against a baseline measured in the same run and carries
the date, the machine and the load average; the run ends with a table of headline ratios
(the ratios each benchmark offers through :func:`benchmarks.common.headline`), the wall
time of each benchmark and a non-zero exit code if any of them failed. ``--write FILE``
also writes the whole output as markdown into FILE, below its line
:data:`MARKER` (what is above it, the page's explanations, is kept).

The default settings take about 25 minutes on the 2-core machine; ``--quick`` about 6
(fewer events, fewer repeats: for checking that everything runs, not for figures to quote).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_peers import QUIX_PYTHON
from benchmarks.common import HEADLINES_ENV, REPO, conditions, load_average, train_model

#: Arguments per benchmark: (full run, --quick run). One line each: a new benchmark is a one-line entry.
SETTINGS: dict[str, tuple[list[str], list[str]]] = {
    "bench_producer": (["--events", "1000000", "--runs", "3"], ["--events", "200000", "--runs", "1"]),
    "bench_features": (["--events", "500000", "--repeats", "3", "--users", "10000", "1000000"],
                       ["--events", "200000", "--repeats", "1", "--users", "10000", "--processes", "1"]),
    "bench_model": (["--repeats", "5", "--batch-sizes", "1", "64", "256", "1024", "2048"],
                    ["--repeats", "2", "--seconds", "0.2", "--batch-sizes", "1", "64", "1024"]),
    "bench_scoring": (["--events", "500000", "--runs", "3", "--repeats", "5", "--seconds", "0.5", "--seed-widths"],
                      ["--events", "200000", "--runs", "1", "--repeats", "2", "--seconds", "0.2", "--processes", "1"]),
    "bench_latency": (["--duration", "40", "--warmup", "10", "--runs", "3", "--recovery-runs", "2"],
                      ["--duration", "20", "--warmup", "5", "--runs", "1", "--relay-runs", "1", "--recovery-runs", "1"]),
    "bench_retrieval": (["--catalogs", "5000", "1000000"], ["--catalogs", "5000", "--repeats", "1", "--seconds", "0.3"]),
    "bench_slates": (["--events", "60000", "--runs", "2", "--duration", "30", "--warmup", "5", "--latency-runs", "2"],
                     ["--events", "10000", "--runs", "1", "--duration", "8", "--warmup", "2", "--latency-runs", "1",
                      "--history-s", "600"]),
    "bench_peers": (["--events", "300000", "--runs", "2"], ["--events", "60000", "--runs", "1"]),
}
TAKES_MODEL = ("bench_scoring", "bench_latency")
#: needs .venv-peers (Quix Streams); left out of a plain run without it
NEEDS_PEERS_VENV = ("bench_peers",)
#: the line of a --write FILE below which the run's output goes
MARKER = "<!-- Everything below this line is written by `make bench` (python -m benchmarks.run_all --write). -->"


def run_one(name: str, args: list[str], out: list[str]) -> tuple[int, float]:
    """Run ``python -m benchmarks.NAME ARGS``, echoing its stdout and keeping it in ``out``; (exit code, seconds)."""
    cmd = [sys.executable, "-m", f"benchmarks.{name}", *args]
    say(out, f"\n### {name}\n\n`python -m benchmarks.{name} {' '.join(args)}` (started {conditions()})\n")
    started = time.perf_counter()
    with subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            say(out, line.rstrip("\n"))
    return process.returncode, time.perf_counter() - started


def say(out: list[str], text: str) -> None:
    print(text, flush=True)
    out.append(text)


def headline_table(path: Path) -> str:
    """The headline ratios the benchmarks offered, in the order they ran."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    lines = ["| benchmark | what | ratio | against (measured in the same run) |", "| --- | --- | ---: | --- |"]
    lines += [f"| {r['benchmark']} | {r['what']} | {r['ratio']:.2f} | {r['against']} |" for r in rows]
    return "\n".join(lines) if rows else "(no benchmark offered a headline ratio)"


def write_page(path: Path, output: list[str], header: str, headlines: str) -> None:
    """Replace what follows :data:`MARKER` in ``path`` with this run's output (the headline table first)."""
    text = path.read_text() if path.exists() else ""
    keep = text[:text.index(MARKER)] if MARKER in text else text + ("\n" if text else "")
    body = "\n".join([MARKER, "", header, "", "### Headline ratios", "", headlines, *output]).rstrip() + "\n"
    path.write_text(keep + body)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run_all",
                                description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("--quick", action="store_true", help="small settings, about 6 minutes (a smoke run)")
    p.add_argument("--only", nargs="+", choices=list(SETTINGS), default=None,
                   help="run only these benchmarks (default: all, in the order listed)")
    p.add_argument("--model", type=Path, default=None,
                   help="DLRM artifact for " + " and ".join(TAKES_MODEL) + " (default: train one, ~20 s)")
    p.add_argument("--write", type=Path, default=None, metavar="FILE",
                   help="also write the output as markdown into FILE below its marker line "
                   "(make bench: benchmarks/README.md)")
    args = p.parse_args(argv)
    chosen = [name for name in SETTINGS if args.only is None or name in args.only]
    out: list[str] = []
    if args.only is None and not QUIX_PYTHON.exists():
        skipped = [name for name in chosen if name in NEEDS_PEERS_VENV]
        chosen = [name for name in chosen if name not in NEEDS_PEERS_VENV]
        for name in skipped:
            say(out, f"\n{name} left out: {QUIX_PYTHON.relative_to(REPO)} does not exist; `make bench-peers` "
                "creates it (and runs the peer comparison alone).")
    settings = "quick" if args.quick else "full"
    header = f"## Latest run: `make bench`, {settings} settings, started {conditions()}"
    results: list[tuple[str, int, float]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-all-") as tmp:
        headlines = Path(tmp) / "headlines.jsonl"
        os.environ[HEADLINES_ENV] = str(headlines)
        model = args.model
        if model is None and any(name in TAKES_MODEL for name in chosen):
            model = train_model(Path(tmp) / "dlrm.pt").path
        for name in chosen:
            extra = list(SETTINGS[name][1 if args.quick else 0])
            if name in TAKES_MODEL:
                extra += ["--model", str(model)]
            code, seconds = run_one(name, extra, out)
            results.append((name, code, seconds))
        table = headline_table(headlines)
    print(f"\n### Headline ratios ({settings} settings)\n\n{table}", flush=True)  # a --write FILE has it first
    say(out, f"\n### Summary ({settings} settings), ended with {load_average()}\n")
    say(out, "| benchmark | exit code | wall time |")
    say(out, "| --- | ---: | ---: |")
    for name, code, seconds in results:
        say(out, f"| {name} | {code} | {seconds / 60:.1f} min |")
    say(out, f"| all, with model training | | {(time.perf_counter() - started) / 60:.1f} min |")
    if args.write is not None:
        write_page(args.write, out, header, table)
        print(f"\nwrote {args.write}", file=sys.stderr)
    return 1 if any(code for _, code, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
