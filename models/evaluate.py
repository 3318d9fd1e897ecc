"""Evaluate a trained DLRM against baselines and the generator's oracle: ``python -m models.evaluate``.

Examples::

    python -m models.evaluate --truth data/truth.jsonl
    python -m models.evaluate --examples data/examples.jsonl --model artifacts/dlrm.pt \\
        --truth-topic interactions-truth --out reports/ --k 5 10

The evaluation range is the artifact's test range: the examples with ``test_start_ms <=
ts <= end_ms`` as recorded at training time (:class:`models.data.TimeSplit`, by default the
last 10% of the time range). Training never read it, and neither early stopping nor the
choice of the kept weights looked at it, so the DLRM's figures carry no selection optimism.
The baselines follow the same protocol: item popularity counts views of the training part;
the logistic regression trains on the training part and early-stops on the validation part.
The report and the table name the range (ms bounds and counts) they used.

Every scorer gets AUC, log-loss, normalised entropy, calibration (equal-width buckets)
and per-user precision@k / recall@k / NDCG@k (:func:`models.metrics.ranking_at_k`: rank
each user's views in the range by score, relevance = click, macro-average over users with
a click, ties broken at random in expectation). With the truth file (or topic), the
oracle scores the same events with the generator's true ``p_click``, and each model's lift
is ``(AUC - 0.5) / (oracle AUC - 0.5)`` on the events the truth covers.

Outputs in ``--out``: ``evaluation.json``, ``roc.png``, ``calibration.png``,
``training_curve.png``; a table on stdout. :func:`evaluate` does the same from Python.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from broker.admin import BrokerUnreachable
from common.config_cli import config_parser, option, require_field, run_cli
from models import plots
from models.artifact import ArtifactError, load_artifact
from models.baselines import fit_logistic_regression, item_popularity
from models.data import PARTS, Examples, ExamplesError, TimeSplit, load_examples
from models.metrics import (
    calibration_bins,
    expected_auc,
    expected_calibration_error,
    log_loss,
    normalized_entropy,
    ranking_at_k,
    roc_auc,
    roc_curve,
)
from models.scorer import Scorer
from models.train import Log, TrainConfig, predict_logits, prepare, require_both_labels

SCORE_CHUNK = 8_192  # events per Scorer.score_features call


@dataclass(frozen=True)
class EvaluateConfig:
    """An evaluation run; CLI flags map 1:1 to fields (``--truth-topic``)."""

    examples: str = option("data/examples.jsonl", "backfill examples JSONL")
    model: str = option("artifacts/dlrm.pt", "model artifact")
    truth: str | None = option(None, "generator truth JSONL (p_click per view)")
    truth_topic: str | None = option(None, "read the truth from this Kafka topic instead")
    out: str = option("reports", "folder for evaluation.json and the PNG plots")
    k: tuple[int, ...] = option((5, 10), "cut-offs of the ranking metrics")
    calibration_bins: int = option(10, "equal-width probability buckets")
    max_examples: int | None = option(None, "read only the first N (earliest) examples; unset reads all")

    def __post_init__(self) -> None:
        c = "EvaluateConfig"
        object.__setattr__(self, "k", tuple(self.k))
        require_field(bool(self.k) and min(self.k) >= 1, c, "k", "positive cut-offs", list(self.k))
        require_field(self.calibration_bins >= 1, c, "calibration_bins", ">= 1", self.calibration_bins)
        require_field(self.max_examples is None or self.max_examples >= 1, c, "max_examples", ">= 1", self.max_examples)
        both = self.truth is not None and self.truth_topic is not None
        require_field(not both, c, "truth", "unset when --truth-topic is given (not both)", self.truth)


def parse_truth(lines: list[bytes], where: str) -> dict[str, float]:
    """``{event_id: p_click}`` from truth records; lines whose ``kind`` is not ``view`` are skipped."""
    truth: dict[str, float] = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
            if rec.get("kind") == "view":
                truth[rec["event_id"]] = float(rec["p_click"])
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as e:
            msg = f"truth {where} record {n}: not a truth record ({type(e).__name__}: {e})"
            raise ExamplesError(msg) from None
    return truth


def load_truth(path: str | Path) -> dict[str, float]:
    """Read the producer's truth JSONL file."""
    path = Path(path)
    if not path.is_file():
        msg = f"truth file {path} not found; the producer writes it next to the events"
        raise ExamplesError(msg)
    return parse_truth(path.read_bytes().splitlines(), f"file {path}")


def truth_from_topic(topic: str) -> dict[str, float]:
    """Read the truth topic from the broker (``KAFKA_BOOTSTRAP_SERVERS`` or the embedded one)."""
    from broker.console import read_topic
    from broker.embedded import resolve_bootstrap

    bootstrap = resolve_bootstrap(autostart=False)
    return parse_truth([r.value or b"" for r in read_topic(bootstrap, topic)], f"topic {topic}")


def scorer_metrics(y: np.ndarray, scores: np.ndarray, users: list[str], ks: tuple[int, ...], n_bins: int | None) -> dict[str, Any]:
    """AUC, ranking metrics, and (when ``n_bins`` is given: scores are probabilities) log-loss, NE, calibration."""
    out: dict[str, Any] = {"auc": roc_auc(y, scores)}
    if n_bins is not None:
        bins = calibration_bins(y, scores, n_bins)
        out |= {
            "log_loss": log_loss(y, scores),
            "normalized_entropy": normalized_entropy(y, scores),
            "mean_predicted": float(np.mean(scores)),
            "ece": expected_calibration_error(bins),
            "calibration": bins,
        }
    return out | ranking_at_k(users, scores, y, ks)


def _score_dlrm(scorer: Scorer, dense: np.ndarray, sparse: np.ndarray) -> np.ndarray:
    """P(click) through the serving path, in chunks."""
    out = np.empty(len(dense), dtype=np.float32)
    for a in range(0, len(dense), SCORE_CHUNK):
        out[a : a + SCORE_CHUNK] = scorer.score_features(dense[a : a + SCORE_CHUNK], sparse[a : a + SCORE_CHUNK])
    return out


def add_oracle(
    results: dict[str, Any],
    curves: dict[str, Any],
    scores: dict[str, np.ndarray],
    y: np.ndarray,
    users: list[str],
    p_true: np.ndarray,
    cfg: EvaluateConfig,
) -> dict[str, Any]:
    """Add the oracle's row and every scorer's lift, on the events the truth covers (p_true not NaN).

    Lift = (AUC - 0.5) / (oracle AUC - 0.5), both over the same covered events.
    """
    covered = ~np.isnan(p_true)
    info = {"events": int(covered.sum()), "coverage": float(covered.mean()) if len(covered) else 0.0}
    if not covered.any():
        return info
    yc, pc = y[covered], p_true[covered]
    oracle = scorer_metrics(yc, pc, [u for u, c in zip(users, covered, strict=True) if c], cfg.k, cfg.calibration_bins)
    results["oracle"] = oracle | {"expected_auc": expected_auc(pc), "lift": 1.0}
    curves["oracle"] = (*roc_curve(yc, pc), oracle["auc"])
    span = oracle["auc"] - 0.5
    for name, s in scores.items():
        results[name]["lift"] = (roc_auc(yc, s[covered]) - 0.5) / span if span > 0 else float("nan")
    return info


def artifact_split(split: dict[str, Any], model_path: str) -> TimeSplit:
    """The artifact's train / validation / test bounds; ArtifactError if it records none (an older artifact)."""
    try:
        return TimeSplit.from_dict(split)
    except (KeyError, TypeError, ValueError) as e:
        msg = (
            f"model artifact {model_path} records no train/validation/test split ({type(e).__name__}: {e}); "
            "retrain it with python -m models.train"
        )
        raise ArtifactError(msg) from None


def parts_summary(split: TimeSplit, *masks: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per part: first and last ms (inclusive), views, and the part's role, for the report."""
    roles = {
        "train": "fits the weights, the normaliser and the baselines",
        "validation": "early stopping and the kept weights only (DLRM and logistic regression)",
        "test": "the evaluation range: everything in this report",
    }
    out = {}
    for part, mask in zip(PARTS, masks, strict=True):
        lo, hi = split.bounds(part)
        out[part] = {"start_ms": lo, "end_ms": hi, "views": int(mask.sum()), "role": roles[part]}
    return out


def evaluate(
    cfg: EvaluateConfig, examples: Examples | None = None, truth: dict[str, float] | None = None, log: Log = print
) -> dict[str, Any]:
    """Score the evaluation range with the model, the baselines and the oracle; write the report.

    Args:
        cfg: paths and settings.
        examples: already-loaded examples; None reads ``cfg.examples``.
        truth: ``{event_id: p_click}``; None reads ``cfg.truth`` / ``cfg.truth_topic`` if set.
        log: where progress lines and the table go.

    Returns:
        The report also written to ``<out>/evaluation.json``.
    """
    t0 = time.monotonic()
    artifact = load_artifact(cfg.model)
    split = artifact_split(artifact.split, cfg.model)
    scorer = Scorer(artifact)
    spec = artifact.spec
    if examples is None:
        examples = load_examples(cfg.examples, cfg.max_examples, spec)
    if truth is None and cfg.truth is not None:
        truth = load_truth(cfg.truth)
    elif truth is None and cfg.truth_topic is not None:
        truth = truth_from_topic(cfg.truth_topic)
    data = prepare(examples, spec, split)
    test = data.test_mask
    y = data.y[test].astype(np.float64)
    require_both_labels("test", y)
    users = [u for u, m in zip(examples.user_id, test, strict=True) if m]
    first, last = split.bounds("test")
    log(
        f"evaluating {artifact.version} on the test range [{first}, {last}] ms: {len(y):,} views "
        f"({len(data.train):,} earlier views train the baselines, {len(data.val):,} validate them)"
    )

    known = {f.name for f in fields(TrainConfig)}
    train_cfg = TrainConfig(**{k: v for k, v in artifact.train_config.items() if k in known})
    log("training the logistic-regression baseline on the training part, early-stopped on the validation part")
    logreg = fit_logistic_regression(data, train_cfg, log=lambda _: None)
    items = examples.item_id
    scores = {
        "dlrm": _score_dlrm(scorer, data.dense[test], data.sparse[test]).astype(np.float64),
        "logistic_regression": 1.0 / (1.0 + np.exp(-predict_logits(logreg, data.rows(test)).astype(np.float64))),
        "item_popularity": item_popularity(
            [i for i, m in zip(items, data.train_mask, strict=True) if m], [i for i, m in zip(items, test, strict=True) if m]
        ),
    }
    n_bins = cfg.calibration_bins
    results = {name: scorer_metrics(y, s, users, cfg.k, None if name == "item_popularity" else n_bins) for name, s in scores.items()}
    curves = {name: (*roc_curve(y, s), results[name]["auc"]) for name, s in scores.items()}

    oracle_info: dict[str, Any] = {"available": truth is not None}
    if truth is not None:
        eval_ids = [e for e, m in zip(examples.event_id, test, strict=True) if m]
        p_true = np.array([truth.get(e, np.nan) for e in eval_ids], dtype=np.float64)
        oracle_info |= add_oracle(results, curves, scores, y, users, p_true, cfg)
        if not oracle_info["events"]:
            log("warning: the truth covers none of the evaluated events; no oracle figures")

    out = Path(cfg.out)
    report = {
        "model": {"path": str(cfg.model), "version": artifact.version, "created_at": artifact.created_at, "config": artifact.config.to_dict()},
        "training": artifact.metrics,
        "data": {
            "examples": str(cfg.examples),
            "n_examples": len(examples),
            "eval_range": "test",
            "eval_start_ms": first,
            "eval_end_ms": last,
            "n_eval": len(y),
            "eval_click_rate": float(y.mean()),
            "parts": parts_summary(split, data.train_mask, data.val_mask, test),
            "n_outside": int(len(examples) - data.train_mask.sum() - data.val_mask.sum() - test.sum()),
            "split": split.to_dict(),
        },
        "ks": list(cfg.k),
        "ranking_convention": (
            "per user: rank the user's views in the evaluation range by score, relevance = click; "
            "precision@k = hits/k, recall@k = hits/clicks, NDCG@k with gain 1/log2(rank+1); "
            "users without a click skipped; macro average; ties broken uniformly at random (expectation)"
        ),
        "oracle": oracle_info,
        "results": results,
        "seconds": round(time.monotonic() - t0, 3),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    plots.plot_roc(curves, out / "roc.png")
    plots.plot_calibration({n: r["calibration"] for n, r in results.items() if "calibration" in r}, out / "calibration.png")
    plots.plot_training_curve(artifact.history, out / "training_curve.png")
    log(format_table(report))
    log(f"wrote {out / 'evaluation.json'}, roc.png, calibration.png, training_curve.png in {report['seconds']:.1f}s")
    return report


def format_table(report: dict[str, Any]) -> str:
    """The report's results as an aligned text table (one row per scorer), headed by the range it covers."""
    ks = report["ks"]
    cols = ["auc", "lift", "log_loss", "normalized_entropy", "ece"] + [f"{m}@{k}" for k in ks for m in ("precision", "recall", "ndcg")]
    heads = ["AUC", "lift", "logloss", "NE", "ECE"] + [f"{m}@{k}" for k in ks for m in ("P", "R", "NDCG")]
    rows = [["scorer", *heads]]
    for name, r in report["results"].items():
        rows.append([name] + [f"{r[c]:.4f}" if isinstance(r.get(c), float) else "-" for c in cols])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))) for row in rows]
    d = report["data"]
    parts = d["parts"]
    skipped = [f"{p} [{parts[p]['start_ms']}, {parts[p]['end_ms']}] ms, {parts[p]['views']:,} views" for p in PARTS[:2]]
    title = (
        f"evaluation range: {d['eval_range']} [{d['eval_start_ms']}, {d['eval_end_ms']}] ms ({_iso(d['eval_start_ms'])} to "
        f"{_iso(d['eval_end_ms'])}): {d['n_eval']:,} views, click rate {d['eval_click_rate']:.3f}, "
        f"users with a click: {report['results']['dlrm']['n_users']:,}"
    )
    return "\n".join([title, *lines, "not evaluated: " + "; ".join(skipped)])


def _iso(ms: int) -> str:
    """Epoch ms as ISO-8601 UTC to the second, for the table."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(EvaluateConfig, "models.evaluate", "Evaluate the DLRM against baselines and the oracle.")
    errors = (ExamplesError, ArtifactError, BrokerUnreachable, TimeoutError)
    return run_cli(parser, argv, EvaluateConfig, lambda cfg: evaluate(cfg, log=lambda line: print(line, flush=True)), errors)


if __name__ == "__main__":
    sys.exit(main())
