"""The federated model reaches a site: MLflow artifacts in the federation folder, ``models:/``
URIs (version, alias, latest) for ``--codec neural:weights=...``, ``fedcodec models pull`` with its
hash check, and one-line errors for a missing registry, model or tampered file."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_shared_data

from fedcodec.server.federated.federation_config import FederationConfig
from fedcodec.server.federated.tracking import FederationTracker
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.neural.model import from_integer, to_integer
from fedcodec.shared.neural.model_registry import parse_models_uri, resolve_weights
from fedcodec.shared.neural.weights import DEFAULT_WEIGHTS, NeuralWeights

NAME = "fedcodec-test-registry"


def _publish(fed_dir: Path, versions: int = 2) -> tuple[str, list[str]]:
    """Register ``versions`` model versions the way ``run_federation`` does; returns the tracking
    URI and each version's codec-weights SHA-256."""
    config = FederationConfig(checkpoint_dir=str(fed_dir))
    digests = []
    shipped = NeuralWeights.load(DEFAULT_WEIGHTS)
    for v in range(versions):
        tracker = FederationTracker(config.tracking_uri(), "fedcodec-federated",
                                    artifact_dir=config.artifact_dir())
        model = from_integer(shipped)
        weights = to_integer(model, shipped.counts, {"name": "federated", "v": v})
        path = fed_dir / "neural_federated.npz"
        weights.save(path)
        digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
        tracker.log_final_model(model, path, NAME, {"codec_model_id": weights.model_id.hex(),
                                                    "promoted_round": str(v + 1)})
        tracker.end()
    return config.tracking_uri(), digests


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Path, str, list[str]]:
    """Two registered versions, published from a working directory that must stay empty."""
    import os

    root = tmp_path_factory.mktemp("registry")
    cwd = root / "coordinator-cwd"
    cwd.mkdir()
    before = Path.cwd()
    os.chdir(cwd)
    try:
        uri, digests = _publish(root / "fed" / "server")
    finally:
        os.chdir(before)
    return root, uri, digests


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedcodec.client.cli", *args], text=True,
                          capture_output=True, env=env, timeout=300)


def test_models_uris_parse():
    assert parse_models_uri("models:/fed/3") == ("fed", "3", "")
    assert parse_models_uri("models:/fed@promoted") == ("fed", "", "promoted")
    assert parse_models_uri("models:/fed/latest") == ("fed", "latest", "")
    assert parse_models_uri("models:/fed") == ("fed", "latest", "")
    for bad in ("models:/", "models:/fed/x", "models:/../etc", "models:/fed/1/2"):
        with pytest.raises(FedcodecError, match="bad model URI"):
            parse_models_uri(bad)


@pytest.mark.shared_data
def test_pull_then_compress_with_a_models_uri(published, tmp_path, monkeypatch, capsys):
    import os

    from fedcodec.client.cli import main

    data = require_shared_data("dicom") / "siemens" / "siemens_c" / "In" / "20180918Si" / "mr_0003"
    _, uri, digests = published
    env = {**os.environ, "FEDCODEC_MODEL_CACHE": str(tmp_path / "cache"),
           "MLFLOW_TRACKING_URI": ""}
    env.pop("FEDCODEC_MODEL_REGISTRY", None)

    out = tmp_path / "site" / "neural_federated.npz"
    pulled = _cli("models", "pull", NAME, "--tracking-uri", uri, "-o", str(out), env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digests[1]  # NAME alone: the latest
    assert f"models:/{NAME}/2 -> {out}" in pulled.stdout

    capsys.readouterr()
    assert main(["models", "pull", f"{NAME}/7", "--tracking-uri", uri, "-o",
                 str(tmp_path / "x.npz")]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not found in the registry" in err
    assert not (tmp_path / "x.npz").exists()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("FEDCODEC_MODEL_REGISTRY", raising=False)
    assert main(["models", "pull", NAME, "-o", str(tmp_path / "y.npz")]) != 0
    assert "no model registry configured" in capsys.readouterr().err

    fcz = tmp_path / "study.fcz"
    env["FEDCODEC_MODEL_REGISTRY"] = uri
    done = _cli("compress", str(data), "-o", str(fcz), "--codec",
                f"neural:weights=models:/{NAME}@promoted", "--quiet", env=env)
    assert done.returncode == 0, done.stderr
    # decompress rebuilds the codec from the spec in the container: the same URI, via the cache
    monkeypatch.setenv("FEDCODEC_MODEL_REGISTRY", uri)
    monkeypatch.setenv("FEDCODEC_MODEL_CACHE", str(tmp_path / "cache"))
    assert main(["decompress", str(fcz), "-o", str(tmp_path / "back")]) == 0, \
        capsys.readouterr().err


def test_artifacts_stay_in_the_federation_folder_and_uris_resolve(published, tmp_path, monkeypatch):
    """(Runs last: it tampers with the stored artifacts.)"""
    root, uri, digests = published
    fed = root / "fed" / "server"
    assert list((root / "coordinator-cwd").iterdir()) == []  # no mlruns/ or mlartifacts/ where the coordinator runs
    stored = sorted(p.name for p in (fed / "mlartifacts").rglob("neural_federated.npz"))
    assert len(stored) == 2

    monkeypatch.setenv("FEDCODEC_MODEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("FEDCODEC_MODEL_REGISTRY", raising=False)
    with pytest.raises(FedcodecError, match="no model registry configured"):
        resolve_weights(f"models:/{NAME}/1")
    monkeypatch.setenv("FEDCODEC_MODEL_REGISTRY", uri)
    for spec, digest in ((f"models:/{NAME}/1", digests[0]), (f"models:/{NAME}/2", digests[1]),
                         (f"models:/{NAME}@promoted", digests[1]),
                         (f"models:/{NAME}/latest", digests[1])):
        path = Path(resolve_weights(spec))
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, spec
    with pytest.raises(FedcodecError, match="not found in the registry"):
        resolve_weights(f"models:/{NAME}/9")
    with pytest.raises(FedcodecError, match="not found in the registry"):
        resolve_weights("models:/no-such-model@promoted")

    # a tampered cached copy is detected and fetched again; a tampered store is refused
    cached = Path(resolve_weights(f"models:/{NAME}/1"))
    cached.write_bytes(b"not weights")
    assert hashlib.sha256(Path(resolve_weights(f"models:/{NAME}/1")).read_bytes()).hexdigest() \
        == digests[0]
    shutil.rmtree(tmp_path / "cache")
    for stored_file in (fed / "mlartifacts").rglob("neural_federated.npz"):
        stored_file.write_bytes(stored_file.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(FedcodecError, match="SHA-256 .* the registry says"):
        resolve_weights(f"models:/{NAME}/1")
    assert not any((tmp_path / "cache").rglob("*.npz"))


def test_artifacts_never_land_in_the_coordinators_working_directory(tmp_path, monkeypatch):
    """An explicit local database keeps its artifacts beside it; MLflow's default is ./mlruns."""
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "tracking" / "mlflow.db"
    database.parent.mkdir()
    config = FederationConfig(checkpoint_dir=str(tmp_path / "fed"),
                              mlflow_uri=f"sqlite:///{database}")
    assert config.artifact_dir() == tmp_path / "tracking" / "mlartifacts"
    tracker = FederationTracker(config.tracking_uri(), "fedcodec-artifacts-test",
                                artifact_dir=config.artifact_dir())
    note = tmp_path / "note.txt"
    note.write_text("x")
    import mlflow

    mlflow.log_artifact(str(note))
    tracker.end()
    assert list((tmp_path / "tracking" / "mlartifacts").rglob("note.txt"))
    assert not (tmp_path / "mlruns").exists()
    server = FederationConfig(checkpoint_dir=str(tmp_path / "fed"),
                              mlflow_uri="http://127.0.0.1:5000")
    assert server.artifact_dir() is None  # a tracking server keeps its own artifact root
