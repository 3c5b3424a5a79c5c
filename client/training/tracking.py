"""MLflow for one training run: params, train loss per logged step, held-out bits, the weights.

Default store: an embedded sqlite file in the run folder (``RUN_DIR/mlflow.db``, artifacts in
``RUN_DIR/mlartifacts``), as the federation and the demo keep theirs; ``--tracking-uri`` points it
at any other store or server. Metrics are buffered and written together with each checkpoint, so
steps redone after a ``--resume`` are not logged twice.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

EXPERIMENT = "fedcodec-train"


def default_tracking_uri(run_dir: Path) -> str:
    return f"sqlite:///{(Path(run_dir) / 'mlflow.db').resolve()}"


class RunTracker:
    """The MLflow calls a training run makes (a no-op when ``uri`` is empty)."""

    def __init__(self, uri: str, experiment: str, run_dir: Path, run_name: str,
                 run_id: str = "") -> None:
        self.enabled = bool(uri)
        self.run_id = run_id
        self._pending: list = []
        if not self.enabled:
            return
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "creating tables"
        import mlflow

        self.client = mlflow.MlflowClient(uri)
        if run_id:
            self.client.update_run(run_id, status="RUNNING")
            return
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            artifacts = Path(run_dir) / "mlartifacts"
            artifacts.mkdir(parents=True, exist_ok=True)
            experiment_id = self.client.create_experiment(
                experiment, artifact_location=artifacts.resolve().as_uri())
        self.run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        if self.enabled:
            from mlflow.entities import Param

            self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def metric(self, name: str, value: float, step: int) -> None:
        """Buffer one metric; :meth:`flush` writes the buffer."""
        if self.enabled:
            from mlflow.entities import Metric

            self._pending.append(Metric(name, float(value), int(time.time() * 1000), int(step)))

    def flush(self) -> None:
        if self.enabled and self._pending:
            for start in range(0, len(self._pending), 1000):  # MLflow's batch limit
                self.client.log_batch(self.run_id, metrics=self._pending[start:start + 1000])
        self._pending = []

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        if self.enabled:
            self.client.log_artifact(self.run_id, str(path), artifact_path=folder)

    def end(self, status: str = "FINISHED") -> None:
        """Close the run; metrics not yet checkpointed are dropped unless it finished (a
        ``--resume`` redoes those steps and logs them then)."""
        if not self.enabled:
            return
        if status == "FINISHED":
            self.flush()
        self._pending = []
        self.client.set_terminated(self.run_id, status)
