"""The shipped learned-lossy model: float transforms, integer hyper-synthesis, count tables.

A weights file is an ``.npz``: the analysis / synthesis / hyper-analysis parameters as float16
(the encoder and decoder both widen the same float16 values, so this rounding is part of the
model, not a mismatch), the per-quality gain vectors as float32 (already exponentiated, so no
``exp`` runs at decode time), the integer hyper-synthesis (int64) and the integer count tables.
Its *model id* is the first 4 bytes of a SHA-256 over the arrays in a canonical order; every
stream carries it so a decoder never silently uses other weights.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from fedcodec.shared.errors import CorruptDataError
from fedcodec.shared.learned_lossy.entropy_tables import (
    SCALE_LEVELS,
    Z_HALF,
    gaussian_counts,
    z_counts,
)
from fedcodec.shared.learned_lossy.integer_hyper import IntegerConv, IntegerHyperSynthesis
from fedcodec.shared.learned_lossy.model import MeanScaleHyperprior, ModelConfig
from fedcodec.shared.learned_lossy.weight_files import (  # noqa: F401 - their old home
    DEFAULT_WEIGHTS,
    HYBRID_WEIGHTS,
    WEIGHTS_DIR,
)

_FLOAT_PREFIXES = ("g_a.", "g_s.", "h_a.")


@dataclass
class LossyWeights:
    """Everything the codec needs besides the bitstream."""

    cfg: ModelConfig
    float_state: dict[str, np.ndarray]
    """g_a / g_s / h_a parameters (float16)."""
    gain: np.ndarray
    """(qualities, m) float32, multiplies y before rounding."""
    inverse_gain: np.ndarray
    """(qualities, m) float32, multiplies y_hat before synthesis."""
    hyper: list[tuple[np.ndarray, np.ndarray]]
    """Integer (weight (C_in*9, C_out), bias) of the four hyper-synthesis convolutions."""
    y_counts: list[np.ndarray]
    z_counts: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.y_counts) != SCALE_LEVELS or self.z_counts.shape != (self.cfg.nz, 2 * Z_HALF + 2):
            raise ValueError("count tables have the wrong shape")
        if min(int(c.min()) for c in self.y_counts) < 1 or int(self.z_counts.min()) < 1:
            raise ValueError("count tables hold a zero count")
        self.model_id = self._model_id()

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {
            f"float.{k}": v.astype(np.float16) for k, v in self.float_state.items()
        }
        arrays["gain"] = self.gain.astype(np.float32)
        arrays["inverse_gain"] = self.inverse_gain.astype(np.float32)
        for i, (w, b) in enumerate(self.hyper):
            arrays[f"hyper.w{i}"] = w.astype(np.int64)
            arrays[f"hyper.b{i}"] = b.astype(np.int64)
        for k, c in enumerate(self.y_counts):
            arrays[f"ycounts.{k:03d}"] = c.astype(np.int64)
        arrays["zcounts"] = self.z_counts.astype(np.int64)
        return arrays

    def _model_id(self) -> bytes:
        digest = hashlib.sha256()
        for name, arr in sorted(self._arrays().items()):
            digest.update(name.encode())
            digest.update(np.asarray(arr.shape, dtype="<i8").tobytes())
            digest.update(np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes())
        return digest.digest()[:4]

    def integer_hyper(self) -> IntegerHyperSynthesis:
        convs = [IntegerConv(w.astype(np.float64), b.astype(np.float64)) for w, b in self.hyper]
        return IntegerHyperSynthesis(convs, self.cfg.m)

    def float_model(self) -> MeanScaleHyperprior:
        """The float model with the shipped (float16-rounded) transforms, in eval mode."""
        model = MeanScaleHyperprior(self.cfg)
        state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in self.float_state.items()}
        missing = {k for k in model.state_dict() if k.startswith(_FLOAT_PREFIXES)} - set(state)
        if missing:
            raise CorruptDataError(f"learned-lossy weights lack {min(missing)}")
        model.load_state_dict(state, strict=False)
        return model.eval()

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename)."""
        path = Path(path)
        tmp = path.with_name(path.stem + ".tmp.npz")
        meta = dict(self.meta, cfg={"n": self.cfg.n, "m": self.cfg.m, "nz": self.cfg.nz,
                                    "lambdas": list(self.cfg.lambdas)})
        np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **self._arrays())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> LossyWeights:
        try:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                c = meta["cfg"]
                cfg = ModelConfig(c["n"], c["m"], c["nz"], tuple(float(x) for x in c["lambdas"]))
                float_state = {k[6:]: z[k] for k in z.files if k.startswith("float.")}
                hyper = [(z[f"hyper.w{i}"], z[f"hyper.b{i}"]) for i in range(4)]
                y_counts = [z[f"ycounts.{k:03d}"] for k in range(SCALE_LEVELS)]
                return cls(cfg, float_state, z["gain"], z["inverse_gain"], hyper, y_counts,
                           z["zcounts"], meta)
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise CorruptDataError(f"cannot read learned-lossy weights {path}: {exc}") from None


@torch.no_grad()
def export_weights(model: MeanScaleHyperprior, meta: dict) -> LossyWeights:
    """Freeze a trained float model into shipped weights (tables, integer h_s, float16)."""
    model = model.eval()
    state = model.state_dict()
    float_state = {k: v.numpy().astype(np.float16) for k, v in state.items()
                   if k.startswith(_FLOAT_PREFIXES)}
    hyper = []
    for conv in model.h_s.layers():
        ic = IntegerConv.from_float(conv.weight.numpy(), conv.bias.numpy())
        hyper.append((ic.weight.astype(np.int64), ic.bias.astype(np.int64)))
    edges = torch.arange(-Z_HALF, Z_HALF + 2, dtype=torch.float64) - 0.5
    prior = model.z_prior.double()
    v = edges[None, None, :].repeat(model.cfg.nz, 1, 1)
    cdf = torch.sigmoid(prior.cdf_logits(v))[:, 0].numpy()
    model.z_prior.float()
    gain = model.gain.table().numpy().astype(np.float32)
    inverse_gain = model.inverse_gain.table().numpy().astype(np.float32)
    return LossyWeights(model.cfg, float_state, gain, inverse_gain, hyper, gaussian_counts(),
                        z_counts(cdf), meta)
