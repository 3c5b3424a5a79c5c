"""How a site knows the encrypted scores it decrypted are the answer to *its* request.

TenSEAL decrypts anything: a result under the wrong key, a ciphertext the service (or anyone on
the path) altered, or another request's result all decrypt silently into numbers. CKKS offers no
integrity, and a MAC cannot survive homomorphic evaluation, so the site checks the *result*:

1. **Known-answer check slots.** Before encrypting, the site hides ``checks`` extra inputs among
   its studies at secret random slot positions. For a linear head each check input is a fresh
   random convex combination of the card's known inputs, whose score is the same combination of
   the known scores (an affine map preserves affine combinations), so neither the inputs nor the
   answers repeat across requests. For the polynomial head, check inputs are known inputs chosen
   at random. The service sees only ciphertexts, so it cannot tell check slots from studies.
   After decryption every check slot must match its expected score within the profile's
   tolerance; a wrong key, a tampered, substituted, replayed or truncated result, or a different
   head fails with overwhelming probability.
2. **Binding.** The reply echoes the request id (128 random bits), the context hash, the model
   hash, the batch size and the SHA-256 of the feature ciphertext the service evaluated; the site
   compares each with what it sent (catches honest mix-ups early with a precise message).

Limits (see docs): checks are spot checks. A service that perturbs k of B + S slots escapes
detection with probability about (1 - k/(B+S))^S per request; S is configurable.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np

from fedcodec.shared.analysis.heads import LINEAR, HeadCard
from fedcodec.shared.errors import CorruptDataError, FedcodecError

DEFAULT_CHECKS = 8
TOLERANCE = {"linear-4096": (2e-3, 1e-3), "linear-packed-8192": (2e-3, 1e-3),
             "mlp-8192": (5e-2, 1e-3)}
"""(absolute, relative) tolerance of a check slot per CKKS profile (CKKS is approximate)."""


@dataclass(frozen=True)
class Binding:
    """What a reply must echo."""

    request_id: str
    context_hash: str
    model_hash: str
    batch_size: int
    features_sha256: str


@dataclass(frozen=True)
class CheckPlan:
    """Secret to the site: where the studies and the check slots are, and what checks must read."""

    study_slots: np.ndarray
    check_slots: np.ndarray
    expected: np.ndarray
    tolerance: tuple[float, float]

    @property
    def batch_size(self) -> int:
        return len(self.study_slots) + len(self.check_slots)


def new_request_id() -> str:
    return secrets.token_hex(16)


def plan_batch(
    card: HeadCard, features: np.ndarray, checks: int = DEFAULT_CHECKS
) -> tuple[np.ndarray, CheckPlan]:
    """Mix ``checks`` check inputs into ``features`` at secret positions; return (slots, plan)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] != card.feature_count:
        raise FedcodecError(
            f"features have shape {features.shape}, the head takes (studies, {card.feature_count})"
        )
    if checks < 1:
        raise FedcodecError("at least one check slot is needed to authenticate a result")
    studies = features.shape[0]
    total = studies + checks
    if total > card.profile.slots:  # one request: at most a ciphertext's worth of slots
        raise FedcodecError(
            f"{studies} studies + {checks} check slots exceed {card.profile.slots} slots"
        )
    rng = np.random.default_rng(secrets.randbits(128))
    order = rng.permutation(total)
    study_slots, check_slots = order[:studies], order[studies:]
    known_x, known_y = card.known_inputs, card.known_scores
    if card.kind == LINEAR:
        mix = rng.dirichlet(np.ones(len(known_x)), size=checks)
        check_x, expected = mix @ known_x, mix @ known_y
    else:
        pick = rng.integers(0, len(known_x), size=checks)
        check_x, expected = known_x[pick], known_y[pick]
    slots = np.empty((total, card.feature_count))
    slots[study_slots] = features
    slots[check_slots] = check_x
    tolerance = TOLERANCE.get(card.profile.name, (1e-3, 1e-4))
    return slots, CheckPlan(study_slots, check_slots, expected, tolerance)


def check_binding(expected: Binding, received: Binding) -> None:
    """Compare the reply's echo with the request; raise a one-line error naming the mismatch."""
    for name in ("request_id", "context_hash", "model_hash", "batch_size", "features_sha256"):
        want, got = getattr(expected, name), getattr(received, name)
        if want != got:
            raise CorruptDataError(
                f"analysis reply rejected: {name.replace('_', ' ')} is {got!r}, this request's "
                f"is {want!r} (substituted or replayed result, or a different model/context)"
            )


def verify_scores(plan: CheckPlan, scores: np.ndarray) -> np.ndarray:
    """Check every check slot; return the studies' scores in their original order."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[0] != plan.batch_size:
        raise CorruptDataError(
            f"analysis reply rejected: {scores.shape[0]} slots decrypted, {plan.batch_size} sent"
        )
    got = scores[plan.check_slots]
    absolute, relative = plan.tolerance
    allowed = absolute + relative * np.abs(plan.expected)
    bad = ~np.isfinite(got) | (np.abs(got - plan.expected) > allowed)
    if bad.any():
        raise CorruptDataError(
            f"analysis reply failed its known-answer check ({int(bad.any(axis=1).sum())} of "
            f"{len(plan.check_slots)} check slots wrong): wrong key, or the result was tampered "
            "with or computed with another model"
        )
    return scores[plan.study_slots]
