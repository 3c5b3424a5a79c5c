"""Classifier heads the analysis service evaluates on encrypted pooled features.

* ``linear``: scores = x W + b (logistic regression). Depth 1.
* ``poly-mlp``: scores = (x W1 + b1)^2 W2 + b2 (square activation: the cheapest polynomial CKKS
  can evaluate, and trainable with plain SGD). Depth 3.

Feature standardisation is folded into the first layer when a head is trained, so the service
evaluates raw pooled features and the site only pools. The same head computes plaintext scores
(``plain_scores``) and encrypted ones (``encrypted_scores``): the experiment compares the two.

A head file (``head-<kind>.json``) holds the weights and the public card; :meth:`Head.card`
is what a site sees: the hash, the CKKS profile and *known answers* (scores of synthetic inputs,
never training data) that let a site check the service's results (see :mod:`.result_check`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tenseal as ts

from fedcodec.shared.analysis.ckks import (
    CkksProfile,
    load_vectors,
    pack_vectors,
    padded_features,
    profile_named,
    studies_per_ciphertext,
)
from fedcodec.shared.errors import CorruptDataError, FedcodecError, UnknownNameError

LINEAR = "linear"
POLY_MLP = "poly-mlp"
HEAD_KINDS = (LINEAR, POLY_MLP)
PROFILE_OF = {LINEAR: "linear-packed-8192", POLY_MLP: "mlp-8192"}
HEAD_FORMAT = "fedcodec-analysis-head/1"
KNOWN_ANSWERS = 16


@dataclass(frozen=True)
class HeadCard:
    """The public part of a head: everything a site needs, no weights."""

    kind: str
    model_hash: str
    feature_count: int
    class_names: tuple[str, ...]
    profile: CkksProfile
    pooling: str
    latent_codec: str
    latent_model_hash: str
    known_inputs: np.ndarray
    known_scores: np.ndarray


@dataclass
class Head:
    """Weights of one head plus what it was trained on."""

    kind: str
    weights: dict[str, np.ndarray]
    class_names: tuple[str, ...]
    pooling: str
    latent_codec: str
    latent_model_hash: str = ""
    feature_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    feature_std: np.ndarray = field(default_factory=lambda: np.ones(0))
    """Training-set statistics of the raw features: known answers are drawn around them."""

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise UnknownNameError(f"unknown head {self.kind!r}; known: {', '.join(HEAD_KINDS)}")
        self.weights = {k: np.asarray(v, dtype=np.float64) for k, v in self.weights.items()}
        needed = {"W", "b"} if self.kind == LINEAR else {"W1", "b1", "W2", "b2"}
        if set(self.weights) != needed:
            raise CorruptDataError(f"{self.kind} head needs weights {sorted(needed)}")

    @property
    def feature_count(self) -> int:
        return self.weights["W" if self.kind == LINEAR else "W1"].shape[0]

    @property
    def classes(self) -> int:
        return len(self.class_names)

    @property
    def profile(self) -> CkksProfile:
        return profile_named(PROFILE_OF[self.kind])

    def plain_scores(self, features: np.ndarray) -> np.ndarray:
        """(B, F) raw features -> (B, classes) scores, in float64."""
        x = np.asarray(features, dtype=np.float64)
        w = self.weights
        if self.kind == LINEAR:
            return x @ w["W"] + w["b"]
        return ((x @ w["W1"] + w["b1"]) ** 2) @ w["W2"] + w["b2"]

    @property
    def studies_per_ciphertext(self) -> int:
        return studies_per_ciphertext(self.profile, self.feature_count)

    def encrypted_scores(self, vector: ts.CKKSVector) -> list[ts.CKKSVector]:
        """The same computation on one packed ciphertext (S studies, feature-major): one
        ciphertext per class whose S slots are the studies' scores, every other slot masked
        to zero (see :mod:`.ckks`)."""
        per = self.studies_per_ciphertext
        rows = padded_features(self.feature_count)
        if vector.size() != rows * per:
            raise FedcodecError(
                f"a feature ciphertext holds {vector.size()} values, the {self.kind} head takes "
                f"[{self.feature_count}] features ({rows} padded) x {per} studies"
            )
        w = {k: v.copy() for k, v in self.weights.items()}
        first = "W" if self.kind == LINEAR else "W1"
        w[first] = np.vstack([w[first], np.zeros((rows - self.feature_count, w[first].shape[1]))])
        ones = [1.0] * per
        if self.kind == LINEAR:
            out = []
            for c in range(self.classes):
                score = vector.enc_matmul_plain(w["W"][:, c].tolist(), per)
                score.mul_(ones)  # mask: only the S result slots survive
                out.append(score.add_([float(w["b"][c])] * per))
            return out
        hidden = []
        for j in range(w["W1"].shape[1]):
            h = vector.enc_matmul_plain(w["W1"][:, j].tolist(), per)
            h.add_([float(w["b1"][j])] * per)
            hidden.append(h.square_())
        out = []
        for c in range(self.classes):
            # multiplying by a length-S plaintext is the mask (zeros in every other slot)
            total = hidden[0].mul([float(w["W2"][0, c])] * per)
            for j in range(1, len(hidden)):
                total.add_(hidden[j].mul([float(w["W2"][j, c])] * per))
            out.append(total.add_([float(w["b2"][c])] * per))
        return out

    def evaluate_bytes(self, context: ts.Context, features: bytes, batch: int = 0) -> bytes:
        """Server side: packed feature ciphertexts in, packed score ciphertexts out. With
        ``batch`` the ciphertext count must be exactly what that many slots need."""
        vectors = load_vectors(context, features, "feature")
        if batch and len(vectors) != -(-batch // self.studies_per_ciphertext):
            raise FedcodecError(
                f"{len(vectors)} feature ciphertexts for a batch of {batch}; the {self.kind} "
                f"head packs {self.studies_per_ciphertext} studies per ciphertext"
            )
        scores = []
        for vector in vectors:
            scores += [v.serialize() for v in self.encrypted_scores(vector)]
        return pack_vectors(scores)

    def model_hash(self) -> str:
        return hashlib.sha256(_canonical(self._describe())).hexdigest()

    def _describe(self) -> dict[str, Any]:
        return {
            "format": HEAD_FORMAT,
            "kind": self.kind,
            "class_names": list(self.class_names),
            "pooling": self.pooling,
            "latent_codec": self.latent_codec,
            "latent_model_hash": self.latent_model_hash,
            "profile": self.profile.name,
            "weights": {k: _encode_array(v) for k, v in sorted(self.weights.items())},
            "feature_mean": _encode_array(self.feature_mean),
            "feature_std": _encode_array(self.feature_std),
        }

    def card(self) -> HeadCard:
        inputs = self.known_inputs()
        return HeadCard(
            kind=self.kind,
            model_hash=self.model_hash(),
            feature_count=self.feature_count,
            class_names=self.class_names,
            profile=self.profile,
            pooling=self.pooling,
            latent_codec=self.latent_codec,
            latent_model_hash=self.latent_model_hash,
            known_inputs=inputs,
            known_scores=self.plain_scores(inputs),
        )

    def known_inputs(self) -> np.ndarray:
        """Synthetic inputs around the training statistics, seeded by the weights' hash."""
        seed = int(hashlib.sha256(_canonical(self._describe())).hexdigest()[:16], 16)
        rng = np.random.default_rng(seed)
        mean = self.feature_mean if self.feature_mean.size else np.zeros(self.feature_count)
        std = self.feature_std if self.feature_std.size else np.ones(self.feature_count)
        return mean + std * rng.standard_normal((KNOWN_ANSWERS, self.feature_count))

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {**self._describe(), "model_hash": self.model_hash()}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(_canonical(payload))
        os.replace(tmp, path)


def load_head(path: Path) -> Head:
    """Read a head file and check its hash."""
    try:
        payload = json.loads(Path(path).read_bytes())
        if payload.get("format") != HEAD_FORMAT:
            raise CorruptDataError(f"{path} is not a fedcodec head file")
        head = Head(
            kind=payload["kind"],
            weights={k: _decode_array(v) for k, v in payload["weights"].items()},
            class_names=tuple(payload["class_names"]),
            pooling=payload["pooling"],
            latent_codec=payload["latent_codec"],
            latent_model_hash=payload.get("latent_model_hash") or "",
            feature_mean=_decode_array(payload["feature_mean"]),
            feature_std=_decode_array(payload["feature_std"]),
        )
    except FileNotFoundError:
        raise UnknownNameError(f"no such head file: {path}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptDataError(f"unreadable head file {path}: {exc}") from None
    if head.model_hash() != payload.get("model_hash"):
        raise CorruptDataError(f"head file {path} was altered (model hash mismatch)")
    return head


def head_path(model_dir: Path, kind: str) -> Path:
    return Path(model_dir) / f"head-{kind}.json"


def _encode_array(a: np.ndarray) -> dict[str, Any]:
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "values": [float(v) for v in a.ravel()]}


def _decode_array(d: dict[str, Any]) -> np.ndarray:
    return np.asarray(d["values"], dtype=np.float64).reshape(d["shape"])


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
