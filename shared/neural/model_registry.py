"""``models:/`` URIs for the neural codec's weights: a federated model fetched from the MLflow
registry the federation publishes to, verified before any slice is coded with it.

``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` (the federation sets ``promoted``) and
``models:/NAME/latest`` (or ``models:/NAME``) name a registered model version; its tags say which
run artifact holds the codec's integer weights (``codec_artifact``) and their SHA-256
(``codec_sha256``) and model id (``codec_model_id``). The file is downloaded once into a local
cache keyed by that hash, checked against both, and reused; a file whose hash or model id does not
match the registry is refused. The registry is the one the site is configured with:
``--tracking-uri``, else ``FEDCODEC_MODEL_REGISTRY``, else ``MLFLOW_TRACKING_URI``.

The stream still carries the weights' model id, so an alias that moves later makes old streams
fail to decode with a clear error instead of decoding wrongly.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fedcodec.shared.errors import CorruptDataError, FedcodecError

MODELS_SCHEME = "models:/"
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_URI = re.compile(rf"^models:/({_NAME})(?:/(\d+|latest)|@({_NAME}))?/?$")


@dataclass(frozen=True)
class RegisteredWeights:
    """One registered model version and where its codec weights are."""

    name: str
    version: str
    run_id: str
    artifact: str
    sha256: str
    model_id: str

    @property
    def uri(self) -> str:
        return f"{MODELS_SCHEME}{self.name}/{self.version}"


def is_models_uri(value: str) -> bool:
    return str(value).startswith(MODELS_SCHEME)


def parse_models_uri(uri: str) -> tuple[str, str, str]:
    """``(name, version, alias)``; version ``latest`` when neither is given."""
    match = _URI.match(str(uri).strip())
    if not match:
        raise FedcodecError(f"bad model URI {uri!r}: expected models:/NAME/VERSION, "
                            "models:/NAME@ALIAS or models:/NAME/latest")
    name, version, alias = match.groups()
    return name, (version or ("" if alias else "latest")), alias or ""


def registry_uri(explicit: str | None = None) -> str:
    """The MLflow registry this site is configured with."""
    uri = explicit or os.environ.get("FEDCODEC_MODEL_REGISTRY") or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise FedcodecError("no model registry configured: pass --tracking-uri or set "
                            "FEDCODEC_MODEL_REGISTRY (or MLFLOW_TRACKING_URI) to the federation's "
                            "MLflow tracking URI")
    return uri


def _client(tracking_uri: str):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def find_registered(uri: str, tracking_uri: str) -> RegisteredWeights:
    """The model version ``uri`` names in the registry at ``tracking_uri``."""
    from mlflow.exceptions import MlflowException

    name, version, alias = parse_models_uri(uri)
    client = _client(tracking_uri)
    try:
        if alias:
            found = client.get_model_version_by_alias(name, alias)
        elif version == "latest":
            versions = client.search_model_versions(f"name='{name}'")
            if not versions:
                raise FedcodecError(f"{uri}: model {name!r} has no versions in {tracking_uri}")
            found = max(versions, key=lambda v: int(v.version))
        else:
            found = client.get_model_version(name, version)
    except MlflowException as exc:
        message = str(exc.message if hasattr(exc, "message") else exc).splitlines()[0]
        raise FedcodecError(f"{uri}: not found in the registry {tracking_uri}: {message}") from None
    tags = dict(found.tags or {})
    missing = [t for t in ("codec_artifact", "codec_sha256") if t not in tags]
    if missing or not found.run_id:
        raise FedcodecError(f"{uri}: version {found.version} carries no codec weights "
                            f"(tags {', '.join(missing) or 'run id'} missing): not a federated "
                            "codec model")
    return RegisteredWeights(name, str(found.version), found.run_id, tags["codec_artifact"],
                             tags["codec_sha256"], tags.get("codec_model_id", ""))


def _check(path: Path, model: RegisteredWeights) -> None:
    from fedcodec.shared.neural.weights import NeuralWeights

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != model.sha256:
        raise CorruptDataError(f"{model.uri}: downloaded weights have SHA-256 {digest[:16]}..., "
                               f"the registry says {model.sha256[:16]}...: refused")
    model_id = NeuralWeights.load(path).model_id.hex()
    if model.model_id and model_id != model.model_id:
        raise CorruptDataError(f"{model.uri}: weights have model id {model_id}, the registry says "
                               f"{model.model_id}: refused")


def download_weights(model: RegisteredWeights, tracking_uri: str, out: Path) -> Path:
    """Fetch ``model``'s codec weights to ``out`` (verified first; never half-written)."""
    from mlflow.exceptions import MlflowException

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".pull-") as tmp:
        try:
            local = _client(tracking_uri).download_artifacts(model.run_id, model.artifact, tmp)
        except (MlflowException, OSError) as exc:
            raise FedcodecError(f"{model.uri}: cannot download {model.artifact} of run "
                                f"{model.run_id}: {str(exc).splitlines()[0]}") from None
        _check(Path(local), model)
        os.replace(local, out)
    return out


def cache_dir() -> Path:
    return Path(os.environ.get("FEDCODEC_MODEL_CACHE")
                or Path.home() / ".cache" / "fedcodec" / "models")


def resolve_weights(value: str, tracking_uri: str | None = None) -> str:
    """A local weights path for ``value``: itself unless it is a ``models:/`` URI, else the
    verified cached copy of the registered version (downloaded when missing)."""
    if not is_models_uri(value):
        return value
    uri = registry_uri(tracking_uri)
    model = find_registered(value, uri)
    path = cache_dir() / model.name / model.version / f"{model.sha256[:32]}.npz"
    if path.is_file():
        try:
            _check(path, model)
            return str(path)
        except CorruptDataError:
            path.unlink()
    return str(download_weights(model, uri, path))


def copy_weights(value: str, out: Path, tracking_uri: str | None = None) -> RegisteredWeights:
    """``fedcodec models pull``: the registered version's weights at ``out``, verified."""
    uri = registry_uri(tracking_uri)
    if not is_models_uri(value):
        value = MODELS_SCHEME + value
    model = find_registered(value, uri)
    download_weights(model, uri, Path(out))
    return model

