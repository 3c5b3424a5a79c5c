"""What the ServerApp reads from the run config (``[tool.flwr.app.config]`` / ``--run-config``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FederationConfig:
    """The server's side of a run; the sites read the training recipe from the same run config."""

    num_rounds: int = 3
    min_fit_clients: int = 2
    min_available_clients: int = 2
    fraction_fit: float = 1.0
    secagg: bool = True
    secagg_shares: float = 1.0
    """Share of sampled sites each site's key is split among (SecAgg+ neighbourhood)."""
    secagg_threshold: float = 0.5
    """Share of a neighbourhood needed to unmask; lower tolerates more drop-outs."""
    update_clip: float = 4.0
    """L2 bound of a site's update; also the SecAgg+ clipping range (so nothing is cut twice)."""
    quantization_bits: int = 22
    central_dp_noise: float = 0.0
    """Central DP on the server: Gaussian noise std ``central_dp_noise * update_clip / sites``
    added to the mean update (0 = off; the sites' local DP already protects each unit)."""
    round_timeout: float = 600.0
    round_retries: int = 1
    """Extra attempts for a round that produced no aggregate before the run stops (non-zero)."""
    checkpoint_dir: str = ""
    mlflow_uri: str = ""
    mlflow_experiment: str = "fedcodec-federated"
    register_model: str = "fedcodec-neural-federated"
    run_name: str = ""
    log_model: bool = True
    """Log and register the final model in MLflow (a resumed test run may skip it)."""
    initial_weights: str = "shipped"
    """Where round 1 starts: ``shipped`` (the codec's default, ``neural_v2.npz``), a shipped
    model's name (``neural_v1``), ``none`` (a fresh network of ``hidden`` x ``depth``) or a
    weights file; its size overrides ``hidden``/``depth``."""
    codec_counts: str = "shipped"
    """Count tables of the published codec weights and of the sites' held-out bpp: ``shipped``
    (the default shipped model's fitted tables; every site has them), a shipped model's name
    (``neural_v1``) or ``logistic`` (parametric)."""
    promotion_gate: bool = True
    """Publish a round's model only if its size-weighted held-out bpp beats the promoted one."""
    promotion_min_gain: float = 0.0
    """bits/pixel a candidate must gain over the promoted model to be promoted."""
    hidden: int = 32
    depth: int = 2
    seed: int = 0

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> FederationConfig:
        values = {}
        for name, default in asdict(cls()).items():
            key = name.replace("_", "-")
            if key == "num-rounds":
                key = "num-server-rounds"
            if key not in run_config:
                continue
            raw = run_config[key]
            if isinstance(default, bool):
                values[name] = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true")
            else:
                values[name] = type(default)(raw)
        return cls(**values)

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint_dir or ".fedcodec-federation") / "checkpoint.npz"

    def artifact_dir(self) -> Path | None:
        """Where MLflow artifacts go, never the coordinator's working directory (MLflow's default
        ``./mlruns`` for a database store): beside the database for a local ``sqlite:///`` store
        (the embedded one is in the federation folder); a tracking server keeps its own root."""
        if not self.mlflow_uri:
            return (self.checkpoint_path.parent / "mlartifacts").resolve()
        if self.mlflow_uri.startswith("sqlite:///"):
            database = Path(self.mlflow_uri[len("sqlite:///"):])
            return (database.parent / "mlartifacts").resolve()
        return None

    def tracking_uri(self) -> str:
        """MLflow URI: the run config's, else an embedded sqlite beside the checkpoint."""
        if self.mlflow_uri:
            return self.mlflow_uri
        return f"sqlite:///{(self.checkpoint_path.parent / 'mlflow.db').resolve()}"
