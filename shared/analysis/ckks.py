"""CKKS (TenSEAL 0.3.18) for encrypted inference: parameter profiles, contexts, packed batches.

Layout (packed, issue 15): a ciphertext holds ``S = slots // F`` studies of F features each,
feature-major: slot ``k*S + b`` is feature *k* of study *b*. A request of B studies is
``ceil(B / S)`` ciphertexts (one for up to 32 studies of 128 features at N = 8192), instead of the
F ciphertexts of the earlier one-feature-per-ciphertext layout (11 MB whatever the batch). A head
computes each class score with ``enc_matmul_plain`` (multiply by the weights repeated over the S
studies, then rotate-and-add with steps S, 2S, 4S, ...: needs Galois keys), and then multiplies by
a 0/1 mask that keeps only the S result slots. The mask matters: without it the other slots hold
partial sums of ``W[k, c] * x[k, b]`` from which the site could read the weights.

Profiles fix the parameters per head. For 128-bit classical security the coefficient modulus may
total at most 109 bits at N = 4096 and 218 bits at N = 8192 (HomomorphicEncryption.org standard,
ternary secrets; SEAL enforces this table and refuses to build a context above it):

* ``linear-packed-8192``: N = 8192, moduli 60/40/40/60 (200 bits), scale 2^40, two rescales
  (weights, mask); 4096 slots. At N = 4096 two levels leave 24-bit primes, and the rotations'
  key-switching noise then swamps the scores (measured error ~250), so the ring is 8192.
* ``mlp-8192``: N = 8192, moduli 50/35/35/35/50 (205 bits), scale 2^35, three rescales
  (W1 x + b1, square, W2 h masked); 4096 slots.
* ``linear-4096`` (earlier one-feature-per-ciphertext layout, kept for comparison runs).

The public context carries the public key, relinearisation keys and Galois keys for exactly the
rotation steps the layout uses (S, 2S, ..., slots/2: 7 keys for 128 features, instead of the 24
of TenSEAL's ``generate_galois_keys()``, which covers every power-of-two step both ways), saved
seeded (half the bytes), with seeded relinearisation keys: 6.0 MB instead of 35.3 MB at
N = 8192, 60/40/40/60 (8.5 instead of 50.3 MB for the MLP profile). TenSEAL 0.3.18's
Python API cannot generate keys for chosen steps, so SEAL's ``KeyGenerator``
(``tenseal.sealapi``) makes them with the site's secret key and they are added to TenSEAL's
serialised context (a protobuf) as its key fields. A site sends it once per session, the
service caches it by SHA-256, and a site that keeps its context (``analyze remote
--keep-context``) only names it by hash in later sessions. The service only ever deserialises
a *public* context (no secret key) and checks that its parameters are the head's profile and
that it has a Galois key for every rotation of the head before using it.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi

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
        CkksProfile("linear-packed-8192", 8192, (60, 40, 40, 60), 40, 2),
        CkksProfile("mlp-8192", 8192, (50, 35, 35, 35, 50), 35, 3),
    )
}


def profile_named(name: str) -> CkksProfile:
    if name not in PROFILES:
        raise FedcodecError(f"unknown CKKS profile {name!r}; known: {', '.join(PROFILES)}")
    return PROFILES[name]


def new_site_context(profile: CkksProfile, n_threads: int = 2) -> ts.Context:
    """A fresh private context (secret key stays at the site) with relinearisation keys. It has
    no Galois keys: the site never rotates; :func:`public_context_bytes` makes the ones the
    service needs."""
    context = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=profile.poly_modulus_degree,
        coeff_mod_bit_sizes=list(profile.coeff_mod_bit_sizes),
        n_threads=n_threads,
    )
    context.global_scale = 2.0**profile.scale_bits
    return context


def slot_count(context: ts.Context) -> int:
    return context.seal_context().data.first_context_data().parms().poly_modulus_degree() // 2


def rotation_steps(slots: int, features: int) -> list[int]:
    """The rotations a packed head performs: ``enc_matmul_plain`` over F' = padded features
    and S = slots / F' studies rotates by S, 2S, 4S, ..., slots / 2 (log2 F' steps)."""
    rows = padded_features(features)
    return [(slots // rows) << k for k in range(rows.bit_length() - 1)]


def _galois_elements(context: ts.Context, steps: list[int]) -> list[int]:
    tool = context.seal_context().data.key_context_data().galois_tool()
    return list(tool.get_elts_from_steps(steps))


def _saved(keys) -> bytes:
    """SEAL's serialisation of a ``Serializable`` key set (sealapi saves to files only)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "keys"
        keys.save(str(path))
        return path.read_bytes()


def evaluation_keys(context: ts.Context, steps: list[int]) -> tuple[bytes, bytes]:
    """(relinearisation keys, Galois keys for exactly ``steps``), made with the site's secret
    key and serialised *seeded*: SEAL stores the seed of each key's uniformly random half
    instead of the polynomial, so the bytes are about half of an expanded key set."""
    keygen = sealapi.KeyGenerator(context.seal_context().data, context.secret_key().data)
    relin = _saved(keygen.create_relin_keys())
    galois = _saved(keygen.create_galois_keys(_galois_elements(context, steps)))
    return relin, galois


def _protobuf_field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2)."""
    size, length = len(payload), bytearray()
    while True:
        byte, size = size & 0x7F, size >> 7
        length.append(byte | (0x80 if size else 0))
        if not size:
            return bytes([number << 3 | 2]) + bytes(length) + payload


def public_context_bytes(context: ts.Context, features: int) -> bytes:
    """The context without its secret key, with relinearisation keys and Galois keys for the
    rotations a head on ``features`` features needs: what the service receives.

    TenSEAL serialises a context as ``TenSEALContextProto``; its field 2 (``public_context``)
    holds the relinearisation keys in field 4 and the Galois keys in field 5. A second
    occurrence of an embedded message field is merged into the first by every protobuf parser,
    so appending ``{2: {4: relin, 5: galois}}`` to the serialisation without evaluation keys
    installs the chosen ones (TenSEAL loads them with SEAL, which expands seeded keys)."""
    base = context.serialize(
        save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=False
    )
    relin, galois = evaluation_keys(context, rotation_steps(slot_count(context), features))
    return base + _protobuf_field(2, _protobuf_field(4, relin) + _protobuf_field(5, galois))


def require_rotation_keys(context: ts.Context, features: int) -> None:
    """One-line error unless the context holds a Galois key for every rotation of the layout
    (a full TenSEAL key set from an older site qualifies)."""
    if not context.has_galois_keys():
        raise FedcodecError("the context lacks Galois keys (the packed layout rotates)")
    steps = rotation_steps(slot_count(context), features)
    keys = context.galois_keys().data
    missing = [s for s, e in zip(steps, _galois_elements(context, steps)) if not keys.has_key(e)]
    if missing:
        raise FedcodecError(
            f"the context lacks Galois keys for rotation steps {missing} (a head on {features} "
            f"features rotates by {steps})"
        )


def context_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_public_context(
    data: bytes, profile: CkksProfile, n_threads: int = 2, features: int = 0
) -> ts.Context:
    """Parse a context a site sent; refuse secret keys and parameters other than ``profile``'s,
    and (with ``features``) a context without the Galois keys a head on that many features
    needs."""
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
    if features:
        require_rotation_keys(context, features)
    elif not context.has_galois_keys():
        raise FedcodecError("the context lacks Galois keys (the packed layout rotates)")
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


PACK_MAGIC = b"FCKP"
"""Framing of a packed request or reply: magic, u32 count, then u32 length + bytes per vector."""


def padded_features(features: int) -> int:
    """Features rounded up to a power of two: a packed ciphertext must fill its slots exactly
    (TenSEAL's ``enc_matmul_plain``), so S * F' = slots; padded features are zero."""
    return 1 << max(0, features - 1).bit_length()


def studies_per_ciphertext(profile: CkksProfile, features: int) -> int:
    """S: how many studies of ``features`` values one ciphertext holds (feature-major)."""
    if not 0 < features <= profile.slots:
        raise FedcodecError(f"{features} features do not fit {profile.slots} slots")
    return profile.slots // padded_features(features)


def pack_vectors(blobs: list[bytes]) -> bytes:
    return PACK_MAGIC + b"".join(
        [len(blobs).to_bytes(4, "big")] + [len(b).to_bytes(4, "big") + b for b in blobs]
    )


def unpack_vectors(data: bytes, what: str, limit: int = 4096) -> list[bytes]:
    """Split a framed blob; a malformed frame is a one-line CorruptDataError."""
    if len(data) < 8 or data[:4] != PACK_MAGIC:
        raise CorruptDataError(f"malformed {what} ciphertext (not a packed ciphertext list)")
    count, offset, out = int.from_bytes(data[4:8], "big"), 8, []
    if not 0 < count <= limit:
        raise CorruptDataError(f"malformed {what} ciphertext ({count} ciphertexts)")
    for _ in range(count):
        if offset + 4 > len(data):
            raise CorruptDataError(f"malformed {what} ciphertext (truncated)")
        size = int.from_bytes(data[offset : offset + 4], "big")
        offset += 4
        if size == 0 or offset + size > len(data):
            raise CorruptDataError(f"malformed {what} ciphertext (truncated)")
        out.append(data[offset : offset + size])
        offset += size
    if offset != len(data):
        raise CorruptDataError(f"malformed {what} ciphertext (trailing bytes)")
    return out


def encrypt_batch(context: ts.Context, features: np.ndarray, per_ciphertext: int = 0) -> bytes:
    """Encrypt (B, F) features, S studies per ciphertext, feature-major; return the framed bytes.

    ``per_ciphertext`` is S (default: as many as the slots hold)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] == 0:
        raise FedcodecError(f"features must be (studies, features), got shape {features.shape}")
    studies, count = features.shape
    slots = slot_count(context)
    rows = padded_features(count)
    per = per_ciphertext or slots // rows
    if per < 1 or per * rows > slots:
        raise FedcodecError(f"{per} studies of {count} features do not fit {slots} slots")
    blobs = []
    for start in range(0, studies, per):
        block = np.zeros((rows, per))
        part = features[start : start + per]
        block[:count, : len(part)] = part.T
        blobs.append(ts.ckks_vector(context, block.ravel().tolist()).serialize())
    return pack_vectors(blobs)


def load_vectors(context: ts.Context, data: bytes, what: str) -> list[ts.CKKSVector]:
    vectors = []
    for blob in unpack_vectors(data, what):
        try:
            vectors.append(ts.ckks_vector_from(context, blob))
        except (ValueError, RuntimeError, TypeError) as exc:
            raise CorruptDataError(f"malformed {what} ciphertext ({exc})") from None
    return vectors


def load_tensor(context: ts.Context, data: bytes, what: str) -> ts.CKKSTensor:
    """One ``CKKSTensor`` (the earlier layout, kept for comparison runs)."""
    try:
        return ts.ckks_tensor_from(context, data)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise CorruptDataError(f"malformed {what} ciphertext ({exc})") from None


def decrypt_batch(context: ts.Context, data: bytes, batch: int, classes: int) -> np.ndarray:
    """Decrypt packed scores (per ciphertext of S studies: one vector per class) -> (batch, C)."""
    vectors = load_vectors(context, data, "score")
    if not vectors or len(vectors) % classes:
        raise CorruptDataError(f"{len(vectors)} score ciphertexts for {classes} classes")
    try:
        values = [np.asarray(v.decrypt(), dtype=np.float64) for v in vectors]
    except (ValueError, RuntimeError) as exc:
        raise CorruptDataError(f"cannot decrypt the scores ({exc})") from None
    per = {len(v) for v in values}
    if len(per) != 1:
        raise CorruptDataError("score ciphertexts of different sizes")
    blocks = [np.stack(values[i : i + classes], axis=1) for i in range(0, len(values), classes)]
    scores = np.concatenate(blocks)
    if len(scores) < batch:
        raise CorruptDataError(f"analysis reply rejected: {len(scores)} slots decrypted, "
                               f"{batch} sent")
    return scores[:batch]
