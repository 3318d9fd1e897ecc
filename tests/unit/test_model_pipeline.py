"""Train and evaluate end to end on examples with a planted click rule.

The rule: a user clicks items of their favourite category far more often (visible to the
model through the user-category counts, as the features flow would show it) and some
items are simply better (visible only through the item id, so the embeddings must learn
it). The oracle's true probabilities go to a truth file, as the producer writes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math

import numpy as np
import orjson
import pytest

from features.spec import FeatureSpec
from models import evaluate as evaluate_cli
from models import train as train_cli
from models.artifact import load_artifact, save_artifact
from models.data import TimeSplit, load_examples
from models.metrics import roc_auc
from models.scorer import Scorer
from models.train import TrainConfig, train

T0 = 1_732_233_600_000
N_VIEWS = 6_000


def write_planted(examples_path, truth_path, seed=0):
    rng = np.random.default_rng(seed)
    spec = FeatureSpec()
    n_users, n_items = 200, 80
    favourite = rng.integers(0, 5, n_users)
    item_category = rng.integers(0, 5, n_items)
    quality = rng.normal(0.0, 1.0, n_items)
    categories = ["Electronics", "Clothing", "Home", "Sports", "Books"]
    view_i = spec.count_index("user_cat", "24h", "view")
    click_i = spec.count_index("user_cat", "24h", "click")
    examples, truth = [], []
    for n in range(N_VIEWS):
        u, i = int(rng.integers(n_users)), int(rng.integers(n_items))
        match = favourite[u] == item_category[i]
        p = 1.0 / (1.0 + math.exp(-(-0.8 + 2.0 * match + 1.0 * quality[i])))
        counts = rng.integers(0, 4, 36)  # noise everywhere
        views = int(rng.integers(3, 30))
        counts[view_i] = views
        counts[click_i] = rng.binomial(views, 0.75 if match else 0.25)
        event_id = f"e{n}"
        examples.append(
            {
                "event_id": event_id,
                "ts": T0 + n * 20_000,
                "user_id": f"u{u}",
                "item_id": f"i{i}",
                "category": categories[item_category[i]],
                "price": 20.0,
                "country": "US",
                "device": "mobile",
                "session_id": f"s{u}",
                "counts": counts.tolist(),
                "item_as_of": T0 + n * 20_000,
                "labels": {"click": int(rng.random() < p), "add_cart": 0, "purchase": 0},
            }
        )
        truth.append({"event_id": event_id, "kind": "view", "p_click": p, "p_cart": 0.1, "p_purchase": 0.01, "choice": "x"})
        if n % 500 == 0:
            truth.append({"kind": "fault", "fault": "duplicate", "event_id": event_id})
    examples_path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in examples))
    truth_path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in truth))


# The planted labels are complete by construction (no follow-up can fall after the end), so no label wait.
FLAGS = ["--epochs", "12", "--batch-size", "128", "--lr", "0.003", "--evals-per-epoch", "1", "--patience", "4",
         "--val-fraction", "0.2", "--test-fraction", "0.2", "--label-wait-s", "0"]


def run_cli(main, argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse's own errors
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    examples, truth, model = root / "examples.jsonl", root / "truth.jsonl", root / "artifacts" / "dlrm.pt"
    write_planted(examples, truth)
    rc, stdout, stderr = run_cli(train_cli.main, ["--examples", str(examples), "--out", str(model), "--seed", "3", *FLAGS])
    assert rc == 0, stderr
    return {"root": root, "examples": examples, "truth": truth, "model": model, "train_stdout": stdout}


def test_training_learns_the_planted_signal(planted):
    artifact = load_artifact(planted["model"], FeatureSpec())
    m = artifact.metrics
    assert m["n_train"] + m["n_val"] + m["n_test"] == N_VIEWS
    assert m["n_test"] == pytest.approx(0.2 * N_VIEWS, abs=2)  # views are evenly spaced in time
    assert m["val_auc"] > 0.7
    assert m["val_auc"] > m["initial_val_auc"] + 0.15  # far above the untrained (random) model
    assert artifact.history[0]["examples_seen"] == 0 and len(artifact.history) >= 3


def test_progress_lines_report_loss_auc_and_speed(planted):
    lines = planted["train_stdout"].splitlines()
    assert lines[0].startswith("loaded 6,000 examples")
    progress = [line for line in lines if line.startswith("dlrm epoch")]
    assert progress and all("val_auc" in line and "ex/s" in line and "train_loss" in line for line in progress)
    assert lines[-1].startswith(f"wrote {planted['model']} version ")


def test_same_seed_gives_the_same_artifact_version(planted, tmp_path):
    examples = load_examples(planted["examples"])
    args = dict(zip([f[2:].replace("-", "_") for f in FLAGS[::2]], FLAGS[1::2], strict=True))
    typed = {k: type(getattr(TrainConfig(), k))(v) for k, v in args.items()}
    quiet = lambda _: None  # noqa: E731
    first = train(TrainConfig(out=str(tmp_path / "a.pt"), seed=3, **typed), examples, log=quiet)
    other_seed = train(TrainConfig(out=str(tmp_path / "b.pt"), seed=4, **typed), examples, log=quiet)
    assert first.version == load_artifact(planted["model"]).version
    assert other_seed.version != first.version


def test_evaluate_writes_report_table_and_plots(planted):
    out = planted["root"] / "reports"
    argv = ["--examples", str(planted["examples"]), "--model", str(planted["model"]), "--truth", str(planted["truth"])]
    rc, stdout, stderr = run_cli(evaluate_cli.main, [*argv, "--out", str(out), "--k", "3", "10"])
    assert rc == 0, stderr
    report = json.loads((out / "evaluation.json").read_text())
    results = report["results"]
    assert set(results) == {"dlrm", "logistic_regression", "item_popularity", "oracle"}
    assert report["oracle"]["coverage"] == 1.0 and report["data"]["n_eval"] == load_artifact(planted["model"]).metrics["n_test"]
    dlrm = results["dlrm"]
    for key in ("auc", "log_loss", "normalized_entropy", "ece", "calibration", "precision@3", "recall@10", "ndcg@10", "lift"):
        assert key in dlrm, key
    assert dlrm["auc"] > results["item_popularity"]["auc"] + 0.1
    assert 0.6 < dlrm["lift"] < 1.1
    assert results["oracle"]["auc"] > 0.75 and 0.7 < results["oracle"]["expected_auc"] < 0.95
    assert "log_loss" not in results["item_popularity"]
    for name in ("dlrm", "logistic_regression", "item_popularity", "oracle"):
        assert any(line.startswith(name) for line in stdout.splitlines()), name
    assert "NDCG@10" in stdout
    for png in ("roc.png", "calibration.png", "training_curve.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


def test_evaluation_reports_on_the_artifacts_test_range_only(planted, tmp_path):
    """Fails if evaluate silently scores the validation range (or any other rows) instead of the held-out test range."""
    artifact = load_artifact(planted["model"])
    split = TimeSplit.from_dict(artifact.split)
    examples = load_examples(planted["examples"])
    train, val, test = split.masks(examples.ts)
    assert examples.ts[train].max() < split.val_start_ms <= examples.ts[val].min()
    assert examples.ts[val].max() < split.test_start_ms <= examples.ts[test].min()
    assert not (test & (train | val)).any()  # no test example is in training or validation

    argv = ["--examples", str(planted["examples"]), "--model", str(planted["model"]), "--truth", str(planted["truth"])]
    rc, stdout, stderr = run_cli(evaluate_cli.main, [*argv, "--out", str(tmp_path)])
    assert rc == 0, stderr
    report = json.loads((tmp_path / "evaluation.json").read_text())
    data = report["data"]
    assert data["eval_range"] == "test"
    assert (data["eval_start_ms"], data["eval_end_ms"]) == split.bounds("test") == (split.test_start_ms, split.end_ms)
    assert data["split"] == artifact.split
    assert data["n_eval"] == int(test.sum()) and data["parts"]["test"]["views"] == int(test.sum())
    assert (data["parts"]["train"]["views"], data["parts"]["validation"]["views"]) == (int(train.sum()), int(val.sum()))
    assert any(line.startswith(f"evaluation range: test [{split.test_start_ms}, {split.end_ms}] ms") for line in stdout.splitlines())

    # The reported figures are those of the test rows, computed here independently ...
    scorer = Scorer(artifact)

    def dlrm_auc(mask):
        part = examples.select(mask)
        p = scorer.score(part.counts, part.user_id, part.item_id, part.category, part.country, part.device, part.ts, part.price)
        return roc_auc(part.click, p)

    assert report["results"]["dlrm"]["auc"] == pytest.approx(dlrm_auc(test), abs=1e-12)
    truth = evaluate_cli.load_truth(planted["truth"])
    test_ids = [e for e, m in zip(examples.event_id, test, strict=True) if m]
    oracle_auc = roc_auc(examples.click[test], [truth[e] for e in test_ids])
    assert report["results"]["oracle"]["auc"] == pytest.approx(oracle_auc, abs=1e-12)
    # ... and differ from the validation range's, so this test can tell the two apart.
    assert abs(dlrm_auc(val) - dlrm_auc(test)) > 1e-6


def test_evaluate_refuses_an_artifact_without_a_test_range(planted, tmp_path):
    artifact = load_artifact(planted["model"])
    old = dataclasses.replace(artifact, split={"split_ts_ms": artifact.split["val_start_ms"], "val_fraction": 0.2})
    save_artifact(old, tmp_path / "old.pt")
    argv = ["--examples", str(planted["examples"]), "--model", str(tmp_path / "old.pt"), "--out", str(tmp_path)]
    rc, stdout, stderr = run_cli(evaluate_cli.main, argv)
    assert rc == 2 and stdout == "" and stderr.count("\n") == 1
    assert stderr.startswith("models.evaluate: error: model artifact ") and "records no train/validation/test split" in stderr


def test_evaluate_fails_in_one_line_when_the_examples_miss_the_test_range(planted, tmp_path):
    argv = ["--examples", str(planted["examples"]), "--model", str(planted["model"]), "--out", str(tmp_path), "--max-examples", "1000"]
    rc, stdout, stderr = run_cli(evaluate_cli.main, argv)
    assert rc == 2 and stdout == "" and stderr.count("\n") == 1
    assert "test [" in stderr and "ms: 0" in stderr


def test_evaluate_without_truth_has_no_oracle(planted, tmp_path):
    argv = ["--examples", str(planted["examples"]), "--model", str(planted["model"]), "--out", str(tmp_path)]
    rc, _, stderr = run_cli(evaluate_cli.main, argv)
    assert rc == 0, stderr
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["oracle"] == {"available": False} and "oracle" not in report["results"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--epochs", "0"], "TrainConfig.epochs (--epochs) must be >= 1, got 0"),
        (["--val-fraction", "1.5"], "val_fraction (--val-fraction) must be in (0, 1), got 1.5"),
        (["--test-fraction", "0"], "test_fraction (--test-fraction) must be in (0, 1), got 0.0"),
        (["--val-fraction", "0.6", "--test-fraction", "0.4"], "test_fraction (--test-fraction) must be < 1 - val_fraction = 0.4"),
        (["--lr", "abc"], "argument --lr: invalid float value: 'abc'"),
        (["--bottom-mlp", "64", "32"], "bottom_mlp must end at the embedding dimension 16"),
        (["--optimizer", "sgd"], "argument --optimizer: invalid choice: 'sgd'"),
        (["--examples", "/nonexistent/examples.jsonl"], "examples file /nonexistent/examples.jsonl not found"),
    ],
)
def test_train_cli_rejects_bad_input_in_one_line(argv, needle, tmp_path):
    rc, stdout, stderr = run_cli(train_cli.main, [*argv, "--out", str(tmp_path / "m.pt")])
    assert rc == 2
    assert needle in stderr and stderr.startswith("models.train: error: ")
    assert stderr.count("\n") == 1 and stdout == ""


def test_evaluate_cli_errors(planted, tmp_path):
    rc, _, stderr = run_cli(evaluate_cli.main, ["--model", str(tmp_path / "none.pt"), "--examples", str(planted["examples"])])
    assert rc == 2 and "none.pt not found" in stderr
    both = ["--truth", "t.jsonl", "--truth-topic", "interactions-truth"]
    rc, _, stderr = run_cli(evaluate_cli.main, both)
    assert rc == 2 and "not both" in stderr
    rc, _, stderr = run_cli(evaluate_cli.main, ["--k", "0"])
    assert rc == 2 and "--k" in stderr


def test_partial_truth_compares_on_the_covered_events(planted, tmp_path):
    truth = evaluate_cli.load_truth(planted["truth"])
    half = {e: p for n, (e, p) in enumerate(sorted(truth.items())) if n % 2 == 0}
    cfg = evaluate_cli.EvaluateConfig(examples=str(planted["examples"]), model=str(planted["model"]), out=str(tmp_path))
    report = evaluate_cli.evaluate(cfg, truth=half, log=lambda _: None)
    assert 0.3 < report["oracle"]["coverage"] < 0.7
    assert report["results"]["oracle"]["lift"] == 1.0
    assert report["results"]["dlrm"]["lift"] != pytest.approx(
        (report["results"]["dlrm"]["auc"] - 0.5) / (report["results"]["oracle"]["auc"] - 0.5), abs=1e-9
    )  # the lift uses the model's AUC on the covered half, not on all events


def test_truth_file_errors(tmp_path):
    bad = tmp_path / "truth.jsonl"
    bad.write_bytes(b'{"kind": "fault"}\n{"kind": "view", "event_id": "e1"}\n')
    with pytest.raises(evaluate_cli.ExamplesError, match=r"truth file .*truth.jsonl record 2: not a truth record \(KeyError"):
        evaluate_cli.load_truth(bad)
    with pytest.raises(evaluate_cli.ExamplesError, match="not found"):
        evaluate_cli.load_truth(tmp_path / "none.jsonl")
