"""Artifact round trip, refusal of mismatched or corrupt files, atomic writes, and the batch scorer."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from features.spec import FeatureSpec, featurize
from models.artifact import ArtifactError, ModelArtifact, load_artifact, save_artifact
from models.data import Normaliser, TimeSplit
from models.dlrm import DLRM, DLRMConfig
from models.scorer import Scorer, ScorerConfig, random_views


def make_artifact(spec: FeatureSpec | None = None, seed: int = 0) -> ModelArtifact:
    spec = spec or FeatureSpec()
    torch.manual_seed(seed)
    model = DLRM(DLRMConfig.for_spec(spec))
    rng = np.random.default_rng(seed)
    dense = rng.normal(2.0, 3.0, (200, len(spec.dense_names))).astype(np.float32)
    return ModelArtifact(
        config=model.config,
        spec=spec,
        state_dict=model.state_dict(),
        normaliser=Normaliser.fit(dense),
        split=TimeSplit(start_ms=0, val_start_ms=800, test_start_ms=900, end_ms=1_000, val_fraction=0.1, test_fraction=0.1).to_dict(),
        metrics={"val_auc": 0.5},
        history=[{"epoch": 0, "step": 0, "examples_seen": 0, "train_loss": None, "val_loss": 0.7, "val_auc": 0.5}],
    )


def batch(n: int, seed: int = 1) -> dict:
    return random_views(n, np.random.default_rng(seed))


def rows(b: dict, idx) -> dict:
    return {k: (v[idx] if isinstance(v, np.ndarray) else [v[i] for i in idx]) for k, v in b.items()}


@pytest.fixture()
def saved(tmp_path):
    artifact = make_artifact()
    path = tmp_path / "dlrm.pt"
    version = save_artifact(artifact, path)
    return artifact, path, version


def test_round_trip_keeps_everything(saved):
    artifact, path, version = saved
    loaded = load_artifact(path, FeatureSpec())
    assert loaded.version == version == artifact.version and len(version) == 12
    assert loaded.config == artifact.config and loaded.spec == artifact.spec
    assert loaded.split == artifact.split and loaded.metrics == artifact.metrics and loaded.history == artifact.history
    assert TimeSplit.from_dict(loaded.split).bounds("test") == (900, 1_000)
    assert loaded.created_at.endswith("+00:00")
    assert np.array_equal(loaded.normaliser.mean, artifact.normaliser.mean)
    for k, v in artifact.state_dict.items():
        assert torch.equal(loaded.state_dict[k], v)


def test_scores_are_identical_after_load(saved):
    artifact, path, _ = saved
    b = batch(100)
    assert Scorer(artifact).score(**b).tobytes() == Scorer.load(path, FeatureSpec()).score(**b).tobytes()


def test_version_changes_with_the_weights():
    assert make_artifact(seed=0).version == make_artifact(seed=0).version
    assert make_artifact(seed=0).version != make_artifact(seed=1).version


def test_mismatched_spec_names_the_difference(tmp_path):
    path = tmp_path / "dlrm.pt"
    save_artifact(make_artifact(FeatureSpec(window_ms=30_000)), path)
    with pytest.raises(ArtifactError) as info:
        Scorer.load(path, FeatureSpec())
    assert str(info.value) == f"model artifact {path} does not fit this flow: window_ms: 30000 != 60000"


def test_mismatched_bucket_count_is_named(tmp_path):
    path = tmp_path / "dlrm.pt"
    save_artifact(make_artifact(FeatureSpec(item_buckets=4096)), path)
    with pytest.raises(ArtifactError, match="item_buckets: 4096 != 8192"):
        load_artifact(path, FeatureSpec())


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda p: p.write_bytes(b"not a torch file at all"), "not readable"),
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "not readable"),
        (lambda p: torch.save({"weights": torch.zeros(3)}, p), "is not a recstream-dlrm artifact"),
        (lambda p: p.unlink(), "not found; train one with: python -m models.train"),
    ],
    ids=["garbage", "truncated", "foreign", "missing"],
)
def test_damaged_files_fail_clearly(saved, damage, needle):
    _, path, _ = saved
    damage(path)
    with pytest.raises(ArtifactError, match=needle) as info:
        load_artifact(path)
    assert str(path) in str(info.value)


def test_tampered_weights_are_detected(saved):
    _, path, _ = saved
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["top.0.bias"][0] += 1.0
    torch.save(payload, path)
    with pytest.raises(ArtifactError, match="corrupt: weights hash to"):
        load_artifact(path)


def test_missing_key_is_malformed(saved):
    _, path, _ = saved
    payload = torch.load(path, weights_only=True)
    del payload["normalisation"]
    torch.save(payload, path)
    with pytest.raises(ArtifactError, match=r"malformed.*normalisation"):
        load_artifact(path)


def test_write_is_atomic_and_leaves_no_temp_files(saved, monkeypatch):
    _, path, _ = saved
    assert os.listdir(path.parent) == ["dlrm.pt"]
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(OSError, match="disk full"):
        save_artifact(make_artifact(seed=5), path)
    assert os.listdir(path.parent) == ["dlrm.pt"]
    assert path.read_bytes() == before


def test_scorer_output_is_sigmoid_of_the_model_on_normalised_features(saved):
    artifact, path, _ = saved
    scorer = Scorer.load(path, FeatureSpec())
    b = batch(50)
    p = scorer.score(**b)
    assert p.dtype == np.float32 and p.shape == (50,)
    assert ((p > 0) & (p < 1)).all()
    dense, sparse = featurize(FeatureSpec(), *b.values())
    norm = artifact.normaliser
    expected_dense = (dense - norm.mean) * norm.inv_std
    with torch.no_grad():
        logits = artifact.build_model()(torch.from_numpy(expected_dense), torch.from_numpy(sparse))
    assert p == pytest.approx(torch.sigmoid(logits).numpy(), abs=1e-6)
    assert scorer.version == artifact.version and scorer.spec == FeatureSpec()
    assert torch.get_num_threads() == 1


def test_same_inputs_give_the_same_bytes_whatever_the_batch(saved):
    _, path, _ = saved
    scorer = Scorer.load(path, FeatureSpec())
    b = batch(600, seed=3)
    whole = scorer.score(**b)
    assert scorer.score(**b).tobytes() == whole.tobytes()
    rng = np.random.default_rng(0)
    for size in [*range(1, 40), 63, 100, 255, 257, 599]:
        idx = rng.permutation(600)[:size]
        assert scorer.score(**rows(b, idx)).tobytes() == whole[idx].tobytes(), size


def test_empty_batch_and_bad_config():
    scorer = Scorer(make_artifact())
    assert scorer.score(**batch(0)).shape == (0,)
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        ScorerConfig(threads=0)
