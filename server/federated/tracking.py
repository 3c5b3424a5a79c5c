"""MLflow for a federation: one run, the recipe as params, per-round metrics per site, the model.

Default store: an embedded sqlite file beside the checkpoint (``mlflow ui --backend-store-uri
sqlite:///...`` shows it) with the artifacts in ``mlartifacts/`` of the same folder (MLflow's own
default would be ``./mlruns`` of whatever directory the ServerApp process runs in); any tracking
server URI works too. A restarted server reopens the run it recorded in the checkpoint, so a
federation stays one run. The registered model version carries what a site needs to fetch and
check the codec weights (``fedcodec models pull``): tags ``codec_artifact``, ``codec_sha256``,
``codec_model_id`` and ``promoted_round``, and the alias ``promoted``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

SITE_METRICS = ("train_loss", "heldout_bpp", "epsilon", "steps", "budget_exhausted", "update_norm",
                "noise_multiplier", "sample_rate")


class FederationTracker:
    """Thin wrapper over the MLflow client calls a federation makes."""

    def __init__(self, uri: str, experiment: str, run_name: str = "", run_id: str = "",
                 artifact_dir: Path | None = None) -> None:
        import logging

        import mlflow

        self.mlflow = mlflow
        mlflow.set_tracking_uri(uri)
        if artifact_dir is not None and mlflow.get_experiment_by_name(experiment) is None:
            artifact_dir.mkdir(parents=True, exist_ok=True)
            mlflow.create_experiment(experiment, artifact_location=artifact_dir.as_uri())
        found = mlflow.set_experiment(experiment)
        if artifact_dir is not None and found.artifact_location != artifact_dir.as_uri():
            logging.getLogger(__name__).warning(
                "MLflow experiment %r keeps its artifacts at %s (created before), not %s",
                experiment, found.artifact_location, artifact_dir)
        if run_id:
            self.run = mlflow.start_run(run_id=run_id)
        else:
            self.run = mlflow.start_run(run_name=run_name or None)
        self.run_id = self.run.info.run_id
        self.refusal_lines: list[str] = []

    def log_params(self, params: dict[str, Any]) -> None:
        existing = self.mlflow.get_run(self.run_id).data.params
        fresh = {k: str(v) for k, v in params.items() if k not in existing}
        if fresh:
            self.mlflow.log_params(fresh)

    def log_round(self, round_index: int, site_metrics: list[dict[str, Any]],
                  global_metrics: dict[str, float]) -> None:
        """Per-site metrics as ``<site>/<name>`` (ε as ``<site>/epsilon_<unit>``), step = round."""
        values: dict[str, float] = {}
        for metrics in site_metrics:
            site = str(metrics.get("site", "site"))
            unit = str(metrics.get("unit", ""))
            for name in SITE_METRICS:
                if name in metrics:
                    label = f"epsilon_{unit}" if name == "epsilon" and unit else name
                    values[f"{site}/{label}"] = float(metrics[name])
        values.update({k: float(v) for k, v in global_metrics.items()})
        self.mlflow.log_metrics(values, step=round_index)

    def log_refusals(self, round_index: int, reasons: list[str]) -> None:
        """Sites that refused a round: ``<site>/refused`` = 1 at that step, and every reason in
        the run's ``refusals.txt`` artifact (rewritten with the whole list each time)."""
        import re

        values = {"refusals": float(len(reasons))}
        for reason in reasons:
            match = re.search(r"site (\S+) refuses", reason)
            if match:
                values[f"{match.group(1)}/refused"] = 1.0
            self.refusal_lines.append(f"round {round_index}: {reason}")
        self.mlflow.log_metrics(values, step=round_index)
        self.mlflow.log_text("\n".join(self.refusal_lines) + "\n", "refusals.txt")

    def log_failed_attempt(self, round_index: int, attempt: int) -> None:
        """A round attempt that produced no aggregate (``failed_attempts`` at that round)."""
        self.mlflow.log_metric("failed_attempts", float(attempt), step=round_index)

    def log_promotion(self, decision) -> None:
        """One gate decision (``PromotionDecision``) as ``promotion/*`` metrics at its round."""
        values = {"promotion/promoted": float(decision.promoted)}
        if decision.candidate_bpp is not None:
            values["promotion/candidate_bpp"] = float(decision.candidate_bpp)
            values["promotion/promoted_bpp"] = float(decision.promoted_bpp)
        self.mlflow.log_metrics(values, step=decision.round)

    def log_promotion_log(self, path: Path) -> None:
        """The gate's ``promotion.json`` (every decision and its reason) as a run artifact."""
        if Path(path).exists():
            self.mlflow.log_artifact(str(path), artifact_path="promotion")

    def log_final_model(self, model, weights_file: Path | None, register_as: str,
                        tags: dict[str, str] | None = None) -> str:
        """Log the float model (registered as ``register_as``) and the codec's integer weights;
        the new model version is tagged with the weights' artifact path and SHA-256."""
        import mlflow.pytorch

        if weights_file is not None:
            self.mlflow.log_artifact(str(weights_file), artifact_path="codec")
        info = mlflow.pytorch.log_model(model, name="model", registered_model_name=register_as or None,
                                        pip_requirements=["torch==2.13.0"],
                                        serialization_format="pickle")
        version = getattr(info, "registered_model_version", None)
        if register_as and version is not None:
            client = self.mlflow.MlflowClient()
            version_tags = dict(tags or {})
            if weights_file is not None:
                version_tags["codec_artifact"] = f"codec/{Path(weights_file).name}"
                version_tags["codec_sha256"] = hashlib.sha256(Path(weights_file).read_bytes()).hexdigest()
            for key, value in version_tags.items():
                client.set_model_version_tag(register_as, str(version), key, value)
            client.set_registered_model_alias(register_as, "promoted", str(version))
        return info.model_uri

    def end(self, status: str = "FINISHED") -> None:
        self.mlflow.end_run(status=status)


def tmp_tracking_uri() -> str:
    """A throw-away sqlite store (tests)."""
    return f"sqlite:///{Path(tempfile.mkdtemp(prefix='fedcodec-mlflow-')) / 'mlflow.db'}"
