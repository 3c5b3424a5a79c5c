"""The analysis service's wire format: limits both sides agree on, and the model card message.

The messages themselves are in ``protos/analysis.proto`` (stubs in :mod:`fedcodec.shared.rpc`);
this module converts the public :class:`~.heads.HeadCard` to and from its ``ModelCard`` message
so the client and the server cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedcodec.shared.analysis.ckks import PROFILES, CkksProfile, studies_per_ciphertext
from fedcodec.shared.analysis.heads import HeadCard
from fedcodec.shared.errors import CorruptDataError
from fedcodec.shared.rpc import analysis_pb2

MIB = 1024 * 1024


@dataclass(frozen=True)
class AnalysisLimits:
    """Bounds that keep one caller from exhausting the service's memory or CPU.

    ``max_request_bytes`` caps the serialised feature tensor (and is the gRPC message cap, plus
    framing); ``max_batch`` caps slots in use (a ciphertext has at most N/2 = 4096).
    """

    max_request_bytes: int = 160 * MIB
    max_context_bytes: int = 64 * MIB
    """A public context with the layout's Galois keys is 6.0 MB (linear-packed-8192) / 8.5 MB
    (mlp-8192); the cap still admits an older site's full TenSEAL key set (35 / 50 MB)."""
    max_batch: int = 4096
    max_contexts_per_site: int = 4
    max_workers: int = 4

    @property
    def max_message_bytes(self) -> int:
        """The gRPC message cap: the larger of a request and a context, plus framing."""
        return max(self.max_request_bytes, self.max_context_bytes) + MIB


def profile_message(profile: CkksProfile) -> analysis_pb2.CkksProfile:
    return analysis_pb2.CkksProfile(
        name=profile.name,
        poly_modulus_degree=profile.poly_modulus_degree,
        coeff_mod_bit_sizes=list(profile.coeff_mod_bit_sizes),
        scale_bits=profile.scale_bits,
        security_bits=profile.security_bits,
        slots=profile.slots,
    )


def card_message(card: HeadCard, limits: AnalysisLimits) -> analysis_pb2.ModelCard:
    return analysis_pb2.ModelCard(
        head=card.kind,
        model_hash=card.model_hash,
        feature_count=card.feature_count,
        class_names=list(card.class_names),
        profile=profile_message(card.profile),
        pooling=card.pooling,
        latent_codec=card.latent_codec,
        latent_model_hash=card.latent_model_hash,
        known_count=len(card.known_inputs),
        known_inputs=card.known_inputs.ravel().tolist(),
        known_scores=card.known_scores.ravel().tolist(),
        max_batch=min(limits.max_batch, card.profile.slots),
        max_request_bytes=limits.max_request_bytes,
        studies_per_ciphertext=studies_per_ciphertext(card.profile, card.feature_count),
    )


def card_from_message(message: analysis_pb2.ModelCard) -> HeadCard:
    """Parse a card from the service, checking every size against the others."""
    profile = PROFILES.get(message.profile.name)
    if profile is None:
        raise CorruptDataError(f"the service uses unknown CKKS profile {message.profile.name!r}")
    if (
        message.profile.poly_modulus_degree != profile.poly_modulus_degree
        or tuple(message.profile.coeff_mod_bit_sizes) != profile.coeff_mod_bit_sizes
        or message.profile.scale_bits != profile.scale_bits
    ):
        raise CorruptDataError(f"the service describes profile {profile.name} with other values")
    count, features, classes = message.known_count, message.feature_count, len(message.class_names)
    if (
        count == 0
        or features == 0
        or classes == 0
        or len(message.known_inputs) != count * features
        or len(message.known_scores) != count * classes
    ):
        raise CorruptDataError("the service's model card has inconsistent known answers")
    if message.studies_per_ciphertext not in (0, studies_per_ciphertext(profile, features)):
        raise CorruptDataError("the service packs another number of studies per ciphertext")
    return HeadCard(
        kind=message.head,
        model_hash=message.model_hash,
        feature_count=features,
        class_names=tuple(message.class_names),
        profile=profile,
        pooling=message.pooling,
        latent_codec=message.latent_codec,
        latent_model_hash=message.latent_model_hash,
        known_inputs=np.asarray(message.known_inputs, dtype=np.float64).reshape(count, features),
        known_scores=np.asarray(message.known_scores, dtype=np.float64).reshape(count, classes),
    )
