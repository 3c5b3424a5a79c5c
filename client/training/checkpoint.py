"""A training run's checkpoint: the trainer's state plus the run's own records, written atomically.

One file, ``RUN_DIR/checkpoint.pt``, replaced whole every ``--checkpoint-every`` steps and at the
end of every network (:mod:`fedcodec.shared.atomic_files`: never half-written). It also keeps the
settings the run started with, so ``--resume`` with other settings is refused instead of silently
mixing two recipes, and the MLflow run id, so a resumed run stays one MLflow run.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from fedcodec.shared.atomic_files import write_atomic
from fedcodec.shared.errors import CorruptDataError

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class RunCheckpoint:
    trainer: dict
    """:meth:`PredictorTrainer.state_dict`."""
    recipe: dict
    """The settings that decide the result (see ``TrainConfig.recipe``)."""
    mlflow_run_id: str = ""
    history: list[tuple[int, str, float]] = field(default_factory=list)
    """(global step, network, train bits/pixel) at every logged step."""
    evals: list[tuple[int, str, float]] = field(default_factory=list)
    """(global step, network, held-out bits/pixel of the float model) at every network's end."""


def save_checkpoint(path: Path, checkpoint: RunCheckpoint) -> None:
    import torch

    buffer = io.BytesIO()
    torch.save({"trainer": checkpoint.trainer, "recipe": checkpoint.recipe,
                "mlflow_run_id": checkpoint.mlflow_run_id,
                "history": [list(h) for h in checkpoint.history],
                "evals": [list(e) for e in checkpoint.evals]}, buffer)
    write_atomic(path, buffer.getvalue())


def load_checkpoint(path: Path) -> RunCheckpoint | None:
    """The checkpoint at ``path``, or None when there is none."""
    import torch

    if not Path(path).exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return RunCheckpoint(state["trainer"], state["recipe"], state["mlflow_run_id"],
                             [tuple(h) for h in state["history"]],
                             [tuple(e) for e in state["evals"]])
    except (OSError, KeyError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError,
            zipfile.BadZipFile) as exc:
        raise CorruptDataError(f"checkpoint {path} is unreadable: {exc}") from None
