"""Where the shipped learned-lossy weights live: the paths alone, without torch (which
:mod:`.weights` needs to build the model), so registering the codecs stays light."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "learned_lossy_v1.npz"
HYBRID_WEIGHTS = WEIGHTS_DIR / "hybrid_residual_v1.npz"
