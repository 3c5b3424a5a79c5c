"""CKKS (TenSEAL 0.3.18) for encrypted inference: parameter profiles, contexts, batched tensors.

Layout: a batch of B studies with F features each is encrypted as one ``CKKSTensor`` of shape
``[F]`` with ``batch=True``: F ciphertexts, ciphertext *j* holding feature *j* of every study in
its slots. A head then needs only plaintext-scalar products and additions across ciphertexts
(``reshape([1, F]).mm(W)``), so the service needs no Galois (rotation) keys at all.

Profiles fix the parameters per head. For 128-bit classical security the coefficient modulus may
total at most 109 bits at N = 4096 and 218 bits at N = 8192 (HomomorphicEncryption.org standard,
ternary secrets; SEAL enforces this table and refuses to build a context above it):

* ``linear-4096``: N = 4096, moduli 40/30/39 (109 bits), scale 2^30, one rescale (W x + b);
  2048 slots. Half the ring of N = 8192 and two data primes: about 2.3x faster and 2.7x fewer
  bytes per ciphertext than 8192 with 60/40/60 for the same head, at ~1e-4 absolute error.
* ``mlp-8192``: N = 8192, moduli 50/35/35/35/50 (205 bits), scale 2^35, three rescales
  (W1 x + b1, square, W2 h + b2); 4096 slots.

The service only ever deserialises a *public* context (no secret key) and checks that its
parameters are the head's profile before using it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import tenseal as ts

from fedcodec.shared.errors import CorruptDataError, FedcodecError

SECURITY_BITS = 128
MAX_COEFF_BITS_128 = {4096: 109, 8192: 218, 16384: 438}
"""HomomorphicEncryption.org standard: largest log2(q) for 128-bit classical security."""


@dataclass(frozen=True)
class CkksProfile:
    """One CKKS parameter set and the multiplicative depth it supports."""

    name: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    scale_bits: int
    depth: int

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree // 2

    @property
    def total_bits(self) -> int:
        return sum(self.coeff_mod_bit_sizes)

    @property
    def security_bits(self) -> int:
        limit = MAX_COEFF_BITS_128.get(self.poly_modulus_degree, 0)
        return SECURITY_BITS if self.total_bits <= limit else 0

    def describe(self) -> str:
        moduli = "/".join(str(b) for b in self.coeff_mod_bit_sizes)
        return (
            f"{self.name}: N={self.poly_modulus_degree}, q={moduli} ({self.total_bits} bits), "
            f"scale 2^{self.scale_bits}, {self.slots} slots, {self.security_bits}-bit security"
        )


PROFILES = {
    p.name: p
    for p in (
        CkksProfile("linear-4096", 4096, (40, 30, 39), 30, 1),
        CkksProfile("mlp-8192", 8192, (50, 35, 35, 35, 50), 35, 3),
    )
}


def profile_named(name: str) -> CkksProfile:
    if name not in PROFILES:
        raise FedcodecError(f"unknown CKKS profile {name!r}; known: {', '.join(PROFILES)}")
    return PROFILES[name]


def new_site_context(profile: CkksProfile, n_threads: int = 2) -> ts.Context:
    """A fresh private context (secret key stays at the site) with relinearisation keys."""
    context = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=profile.poly_modulus_degree,
        coeff_mod_bit_sizes=list(profile.coeff_mod_bit_sizes),
        n_threads=n_threads,
    )
    context.global_scale = 2.0**profile.scale_bits
    return context


def public_context_bytes(context: ts.Context) -> bytes:
    """The context without its secret key: what the service receives."""
    return context.serialize(
        save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=True
    )


def context_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_public_context(data: bytes, profile: CkksProfile, n_threads: int = 2) -> ts.Context:
    """Parse a context a site sent; refuse secret keys and parameters other than ``profile``'s."""
    try:
        context = ts.context_from(data, n_threads=n_threads)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise CorruptDataError(f"not a TenSEAL context ({exc})") from None
    if context.is_private() or context.has_secret_key():
        raise FedcodecError(
            "the context holds a secret key: send only the public context "
            "(serialize(save_secret_key=False)); the service must not be able to decrypt"
        )
    if not context.has_public_key() or not context.has_relin_keys():
        raise FedcodecError("the context lacks its public key or relinearisation keys")
    check_context_parameters(context, profile)
    return context


def context_parameters(context: ts.Context) -> tuple[int, int, int, float]:
    """(poly modulus degree, total modulus bits, data levels, scale) of a CKKS context."""
    try:
        seal = context.seal_context().data
        key_data = seal.key_context_data()
        parms = key_data.parms()
        if getattr(parms.scheme(), "name", "") != "CKKS":
            raise FedcodecError("the context is not a CKKS context")
        levels = seal.first_context_data().chain_index()
        return (
            parms.poly_modulus_degree(),
            key_data.total_coeff_modulus_bit_count(),
            levels,
            context.global_scale,
        )
    except ValueError as exc:  # e.g. "no global scale"
        raise FedcodecError(f"unusable CKKS context ({exc})") from None


def check_context_parameters(context: ts.Context, profile: CkksProfile) -> None:
    degree, bits, levels, scale = context_parameters(context)
    expected = (profile.poly_modulus_degree, profile.total_bits, profile.depth)
    if (degree, bits, levels) != expected or scale != 2.0**profile.scale_bits:
        raise FedcodecError(
            f"wrong CKKS context: N={degree}, {bits} modulus bits, {levels} levels, scale "
            f"2^{np.log2(scale):g}; head needs {profile.describe()}"
        )


def encrypt_batch(context: ts.Context, features: np.ndarray) -> bytes:
    """Encrypt (B, F) features as a batched ``CKKSTensor`` of shape [F]; return its bytes."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise FedcodecError(f"features must be (studies, features), got shape {features.shape}")
    plain = ts.plain_tensor(features.tolist(), list(features.shape))
    return ts.ckks_tensor(context, plain, batch=True).serialize()


def load_tensor(context: ts.Context, data: bytes, what: str) -> ts.CKKSTensor:
    try:
        return ts.ckks_tensor_from(context, data)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise CorruptDataError(f"malformed {what} ciphertext ({exc})") from None


def decrypt_batch(context: ts.Context, data: bytes, batch: int, classes: int) -> np.ndarray:
    """Decrypt a ``[1, classes]`` batched score tensor into (batch, classes)."""
    tensor = load_tensor(context, data, "score")
    if tensor.shape != [1, classes]:
        raise CorruptDataError(f"score tensor has shape {tensor.shape}, expected [1, {classes}]")
    try:
        values = np.asarray(tensor.decrypt().tolist(), dtype=np.float64)
    except (ValueError, RuntimeError) as exc:
        raise CorruptDataError(f"cannot decrypt the scores ({exc})") from None
    return values.reshape(-1, classes)[:batch]
