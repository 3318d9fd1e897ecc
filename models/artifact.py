"""The model artifact: one ``torch.save`` file holding everything the scorer needs.

Contents (a plain dict, so ``torch.load(weights_only=True)`` reads it without running code):

* ``format`` / ``format_version``: what the file is;
* ``version``: first 12 hex digits of a sha256 over the weights (names, dtypes, shapes,
  bytes), so the same training run gives the same id and any change of weights a new one;
* ``created_at``: UTC ISO-8601;
* ``config``: :class:`~models.dlrm.DLRMConfig`; ``state_dict``: the weights;
* ``feature_spec``: :meth:`FeatureSpec.to_dict`, including the hashing (crc32 modulo the
  bucket counts) and the smoothing priors; a flow with another spec refuses the artifact;
* ``normalisation``: :class:`~models.data.Normaliser` fitted on the training range;
* ``split``: how training split the examples by time, :meth:`models.data.TimeSplit.to_dict`
  (``start_ms``, ``val_start_ms``, ``test_start_ms``, ``end_ms`` and the two fractions);
  evaluation reads it back and reports on the test part only;
* ``metrics``, ``history``, ``train_config``: for the report and the training-curve plot.

Writes are atomic: a temporary file in the target folder, fsync, then ``os.replace``, so a
reader (the dataflow at start) sees the old artifact or the new one, never half a file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from features.spec import FeatureSpec
from models.data import Normaliser
from models.dlrm import DLRM, DLRMConfig

FORMAT = "recstream-dlrm"
FORMAT_VERSION = 1


class ArtifactError(Exception):
    """The artifact is missing, unreadable, malformed, or does not fit the flow's features."""


def weights_version(state_dict: dict[str, torch.Tensor]) -> str:
    """Deterministic id of a set of weights: 12 hex digits of sha256 over names, dtypes, shapes, bytes.

    >>> weights_version({"w": torch.zeros(2)})
    '1b4484e4be5f'
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class ModelArtifact:
    """A trained DLRM with its feature contract, normalisation and training record."""

    config: DLRMConfig
    spec: FeatureSpec
    state_dict: dict[str, torch.Tensor]
    normaliser: Normaliser
    split: dict[str, Any]  # TimeSplit.to_dict(): train / validation / test bounds (ms) and fractions
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    train_config: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""  # UTC ISO-8601; set by save_artifact when empty

    @cached_property
    def version(self) -> str:
        """The weights' content hash (computed once: it reads every weight)."""
        return weights_version(self.state_dict)

    def build_model(self) -> DLRM:
        """The DLRM with these weights, in eval mode."""
        model = DLRM(self.config)
        model.load_state_dict(self.state_dict)
        return model.eval()


def save_artifact(artifact: ModelArtifact, path: str | Path) -> str:
    """Write the artifact atomically; returns its version id."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = artifact.created_at or datetime.now(UTC).isoformat(timespec="seconds")
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": artifact.version,
        "created_at": created,
        "config": artifact.config.to_dict(),
        "feature_spec": artifact.spec.to_dict(),
        "normalisation": artifact.normaliser.to_dict(),
        "split": dict(artifact.split),
        "metrics": dict(artifact.metrics),
        "history": list(artifact.history),
        "train_config": dict(artifact.train_config),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in artifact.state_dict.items()},
    }
    write_payload(payload, path)
    return payload["version"]


def write_payload(payload: dict[str, Any], path: Path) -> None:
    """``torch.save`` a dict atomically: a temporary file in the target folder, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_payload(path: Path, kind: str = FORMAT, version: int = FORMAT_VERSION,
                 train_with: str = "python -m models.train") -> dict[str, Any]:
    """A dict written by :func:`write_payload`, checked to be a ``kind`` artifact of ``version``."""
    if not path.is_file():
        msg = f"model artifact {path} not found; train one with: {train_with} --out {path}"
        raise ArtifactError(msg)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (torch raises many types for a corrupt or foreign file)
        msg = f"model artifact {path} is not readable ({type(e).__name__}: {str(e)[:200]})"
        raise ArtifactError(msg) from None
    if not isinstance(payload, dict) or payload.get("format") != kind:
        msg = f"model artifact {path} is not a {kind} artifact"
        raise ArtifactError(msg)
    if payload.get("format_version") != version:
        msg = f"model artifact {path} has format_version {payload.get('format_version')!r}; this code reads {version}"
        raise ArtifactError(msg)
    return payload


def load_artifact(path: str | Path, expected_spec: FeatureSpec | None = None) -> ModelArtifact:
    """Read and check an artifact.

    Args:
        path: the file written by :func:`save_artifact`.
        expected_spec: the flow's feature spec; when given, a different artifact spec is
            refused with the differing fields named. None skips the check.

    Raises:
        ArtifactError: missing, corrupt or malformed file, spec mismatch, or weights that do
            not fit the config or the recorded version.
    """
    path = Path(path)
    payload = read_payload(path)
    try:
        spec = FeatureSpec.from_dict(payload["feature_spec"])
        config = DLRMConfig.from_dict(payload["config"])
        normaliser = Normaliser.from_dict(payload["normalisation"])
        artifact = ModelArtifact(
            config=config,
            spec=spec,
            state_dict=payload["state_dict"],
            normaliser=normaliser,
            split=payload["split"],
            metrics=payload["metrics"],
            history=payload["history"],
            train_config=payload["train_config"],
            created_at=payload["created_at"],
        )
    except (KeyError, TypeError, ValueError) as e:
        msg = f"model artifact {path} is malformed ({type(e).__name__}: {e})"
        raise ArtifactError(msg) from None
    if expected_spec is not None:
        differences = spec.diff(expected_spec)
        if differences:
            msg = f"model artifact {path} does not fit this flow: {'; '.join(differences)}"
            raise ArtifactError(msg)
    if artifact.version != payload["version"]:
        msg = f"model artifact {path} is corrupt: weights hash to {artifact.version}, recorded {payload['version']}"
        raise ArtifactError(msg)
    inputs = (config.num_dense, config.sparse_cardinalities, len(normaliser.mean))
    expected = (len(spec.dense_names), tuple(spec.sparse_cardinalities), len(spec.dense_names))
    if inputs != expected:
        msg = (
            f"model artifact {path} is inconsistent: (dense inputs, table sizes, normalised features) "
            f"{inputs} != {expected} from its feature spec"
        )
        raise ArtifactError(msg)
    try:
        artifact.build_model()
    except RuntimeError as e:
        msg = f"model artifact {path}: weights do not fit the config ({str(e)[:300]})"
        raise ArtifactError(msg) from None
    return artifact
