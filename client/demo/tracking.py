"""The demo's own MLflow run (every step's key numbers and the report) in ``OUT/mlflow.db``."""

from __future__ import annotations

import os
from pathlib import Path

from fedcodec.client.demo.context import DemoContext, StepOutcome

EXPERIMENT = "fedcodec-demo"


def log_demo_run(ctx: DemoContext, outcomes: dict[str, StepOutcome]) -> str:
    """Log params, per-step metrics and figures; returns the run id."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    client = mlflow.MlflowClient(ctx.mlflow_uri)
    experiment_id = ensure_experiment(ctx, EXPERIMENT)
    run = client.create_run(experiment_id, run_name="demo-quick" if ctx.quick else "demo")
    run_id = run.info.run_id
    try:
        client.log_param(run_id, "quick", ctx.quick)
        client.log_param(run_id, "steps", ",".join(outcomes))
        if ctx.results.get("federated_run"):
            client.set_tag(run_id, "federated_run_id", ctx.results["federated_run"])
        for name, outcome in outcomes.items():
            client.set_tag(run_id, f"step.{name}", outcome.status)
            client.log_metric(run_id, f"{name}/seconds", outcome.seconds)
            for key, value in outcome.metrics.items():
                client.log_metric(run_id, f"{name}/{_metric_name(key)}", float(value))
            for figure in outcome.figures:
                client.log_artifact(run_id, str(figure), artifact_path="figures")
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return run_id


def ensure_experiment(ctx: DemoContext, name: str) -> str:
    """The experiment's id, created with its artifacts under ``OUT/mlartifacts`` (not ./mlruns)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    client = mlflow.MlflowClient(ctx.mlflow_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_uri(ctx.out / "mlartifacts"))


def _artifact_uri(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve().as_uri()


def _metric_name(key: str) -> str:
    """MLflow allows letters, digits and ``_ - . / space``; map the rest (``:``, ``=``, ``,``)."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "_-./ " else "_" for c in key)
