"""The server's checkpoint: the global model after the last finished round, written atomically.

A restarted ServerApp loads it and runs only the rounds that are left, in the same MLflow run.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedcodec.shared.errors import CorruptDataError


@dataclass
class Checkpoint:
    round: int
    parameters: list[np.ndarray]
    mlflow_run_id: str = ""


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` (temp file + fsync + rename: never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"round": checkpoint.round, "mlflow_run_id": checkpoint.mlflow_run_id,
                       "count": len(checkpoint.parameters)})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".checkpoint-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, meta=np.array(meta),
                     **{f"p{i:03d}": a for i, a in enumerate(checkpoint.parameters)})
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint at ``path``, or None when there is none yet."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            params = [z[f"p{i:03d}"] for i in range(int(meta["count"]))]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise CorruptDataError(f"federation checkpoint {path} is unreadable: {exc}") from None
    return Checkpoint(int(meta["round"]), params, str(meta.get("mlflow_run_id", "")))
