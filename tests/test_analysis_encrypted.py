"""CKKS heads, public contexts and result authentication, without a network."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tenseal as ts
from test_analysis_support import FEATURES, seeded_head, study_features

from fedcodec.shared.analysis.ckks import (
    PROFILES,
    decrypt_batch,
    encrypt_batch,
    load_public_context,
    load_vectors,
    new_site_context,
    public_context_bytes,
    rotation_steps,
    slot_count,
)
from fedcodec.shared.analysis.heads import LINEAR, POLY_MLP, head_path, load_head
from fedcodec.shared.analysis.result_check import (
    Binding,
    check_binding,
    plan_batch,
    verify_scores,
)
from fedcodec.shared.errors import CorruptDataError, FedcodecError


@pytest.fixture(scope="module")
def contexts() -> dict[str, ts.Context]:
    return {kind: new_site_context(seeded_head(kind).profile) for kind in (LINEAR, POLY_MLP)}


def _remote_evaluate(head, site_context, slots):
    """What the service does: public context only, ciphertext bytes in and out."""
    server_context = load_public_context(public_context_bytes(site_context, head.feature_count),
                                         head.profile, features=head.feature_count)
    return head.evaluate_bytes(server_context, encrypt_batch(site_context, slots))


@pytest.mark.parametrize("kind", [LINEAR, POLY_MLP])
def test_encrypted_scores_match_plaintext(kind, contexts) -> None:
    head = seeded_head(kind)
    features = study_features(head, 50)
    slots, plan = plan_batch(head.card(), features, checks=8)
    scores = decrypt_batch(contexts[kind], _remote_evaluate(head, contexts[kind], slots),
                           plan.batch_size, 3)
    studies = verify_scores(plan, scores)
    plain = head.plain_scores(features)
    assert studies.shape == (50, 3)
    tolerance = 2e-3 if kind == LINEAR else 5e-2
    assert np.abs(studies - plain).max() < tolerance
    assert (studies.argmax(1) == plain.argmax(1)).all()


def test_service_context_cannot_decrypt(contexts) -> None:
    head = seeded_head(LINEAR)
    public = load_public_context(public_context_bytes(contexts[LINEAR], FEATURES), head.profile)
    assert not public.is_private()
    [vector] = load_vectors(public, encrypt_batch(contexts[LINEAR], np.ones((4, 24))), "feature")
    with pytest.raises(ValueError, match="secret_key"):
        vector.decrypt()


def test_service_refuses_a_context_with_its_secret_key(contexts) -> None:
    head = seeded_head(LINEAR)
    with pytest.raises(FedcodecError, match="holds a secret key"):
        load_public_context(contexts[LINEAR].serialize(save_secret_key=True), head.profile)


def test_service_refuses_other_parameters(contexts) -> None:
    linear = seeded_head(LINEAR)
    with pytest.raises(FedcodecError, match="wrong CKKS context"):
        load_public_context(public_context_bytes(contexts[POLY_MLP], FEATURES), linear.profile)
    with pytest.raises(CorruptDataError, match="not a TenSEAL context"):
        load_public_context(b"\x00" * 100, linear.profile)


def test_profiles_are_128_bit() -> None:
    limits = {4096: 109, 8192: 218}  # HomomorphicEncryption.org standard, 128-bit classical
    for profile in PROFILES.values():
        assert profile.security_bits == 128
        assert profile.total_bits <= limits[profile.poly_modulus_degree]
    with pytest.raises(ValueError):  # SEAL itself refuses more modulus bits at N=4096
        ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=4096, coeff_mod_bit_sizes=[40, 31, 39])


def test_wrong_key_is_detected(contexts) -> None:
    head = seeded_head(LINEAR)
    features = study_features(head, 20)
    slots, plan = plan_batch(head.card(), features)
    result = _remote_evaluate(head, contexts[LINEAR], slots)
    other = new_site_context(head.profile)  # same parameters, another secret key
    garbage = decrypt_batch(other, result, plan.batch_size, 3)  # TenSEAL does not notice
    with pytest.raises(CorruptDataError, match="known-answer check"):
        verify_scores(plan, garbage)


def test_substituted_result_is_detected(contexts) -> None:
    """A result computed for another request (same site, same model) fails the check slots."""
    head = seeded_head(LINEAR)
    features = study_features(head, 20)
    old_slots, _ = plan_batch(head.card(), features)
    old_result = _remote_evaluate(head, contexts[LINEAR], old_slots)
    _, plan = plan_batch(head.card(), features)
    with pytest.raises(CorruptDataError, match="known-answer check"):
        verify_scores(plan, decrypt_batch(contexts[LINEAR], old_result, plan.batch_size, 3))


def test_other_model_is_detected(contexts) -> None:
    head, impostor = seeded_head(LINEAR, seed=0), seeded_head(LINEAR, seed=5)
    slots, plan = plan_batch(head.card(), study_features(head, 10))
    result = _remote_evaluate(impostor, contexts[LINEAR], slots)
    with pytest.raises(CorruptDataError, match="known-answer check"):
        verify_scores(plan, decrypt_batch(contexts[LINEAR], result, plan.batch_size, 3))


def test_tampered_ciphertext_is_detected_or_refused(contexts) -> None:
    head = seeded_head(LINEAR)
    slots, plan = plan_batch(head.card(), study_features(head, 10))
    result = bytearray(_remote_evaluate(head, contexts[LINEAR], slots))
    result[len(result) // 2] ^= 0x40
    with pytest.raises(CorruptDataError):
        verify_scores(plan, decrypt_batch(contexts[LINEAR], bytes(result), plan.batch_size, 3))


def test_binding_names_the_mismatch() -> None:
    sent = Binding("a" * 32, "c1", "m1", 10, "f1")
    check_binding(sent, sent)
    with pytest.raises(CorruptDataError, match="request id is"):
        check_binding(sent, dataclasses.replace(sent, request_id="b" * 32))
    with pytest.raises(CorruptDataError, match="context hash"):
        check_binding(sent, dataclasses.replace(sent, context_hash="c2"))


def test_check_slots_are_fresh_and_hidden() -> None:
    head = seeded_head(LINEAR)
    features = study_features(head, 30)
    (s1, p1), (s2, p2) = plan_batch(head.card(), features), plan_batch(head.card(), features)
    assert not np.array_equal(p1.check_slots, p2.check_slots)
    assert not np.allclose(s1[p1.check_slots], s2[p2.check_slots])
    np.testing.assert_array_equal(s1[p1.study_slots], features)


def test_head_file_round_trip_and_tamper(tmp_path) -> None:
    head = seeded_head(POLY_MLP)
    path = head_path(tmp_path, POLY_MLP)
    head.save(path)
    loaded = load_head(path)
    assert loaded.model_hash() == head.model_hash()
    np.testing.assert_array_equal(loaded.card().known_scores, head.card().known_scores)
    marker = '"b2":{"shape":[3],"values":['
    path.write_text(path.read_text().replace(marker, marker + "1+"))
    with pytest.raises(CorruptDataError):
        load_head(path)


@pytest.mark.parametrize("kind", [LINEAR, POLY_MLP])
def test_packing_round_trip_and_mask(kind, contexts) -> None:
    """S studies share one ciphertext; scores equal plaintext; every non-result slot is zero
    (unmasked, they would hold partial sums W[k, c] * x[k, b] that reveal the weights)."""
    import tenseal.sealapi as sealapi

    head = seeded_head(kind)
    per = head.studies_per_ciphertext
    assert per == head.profile.slots // 32  # 24 features padded to 32
    features = study_features(head, per + 3)  # two ciphertexts, the second part-filled
    blob = encrypt_batch(contexts[kind], features)
    assert len(load_vectors(contexts[kind], blob, "feature")) == 2
    out = _remote_evaluate(head, contexts[kind], features)
    vectors = load_vectors(contexts[kind], out, "score")
    assert len(vectors) == 2 * head.classes and all(v.size() == per for v in vectors)
    scores = decrypt_batch(contexts[kind], out, len(features), head.classes)
    plain = head.plain_scores(features)
    assert np.abs(scores - plain).max() < (2e-3 if kind == LINEAR else 5e-2)
    seal = contexts[kind].seal_context().data
    decryptor = sealapi.Decryptor(seal, contexts[kind].secret_key().data)
    encoder = sealapi.CKKSEncoder(seal)
    for vector in vectors:
        plaintext = sealapi.Plaintext()
        decryptor.decrypt(vector.ciphertext()[0], plaintext)
        slots = np.asarray(encoder.decode_double(plaintext))
        assert np.abs(slots[per:]).max() < 1e-4 < np.abs(slots[:per]).max()


def test_batch_and_ciphertext_count_must_agree(contexts) -> None:
    head = seeded_head(LINEAR)
    public = load_public_context(public_context_bytes(contexts[LINEAR], FEATURES), head.profile)
    blob = encrypt_batch(contexts[LINEAR], study_features(head, 3))
    with pytest.raises(FedcodecError, match="1 feature ciphertexts for a batch of 300"):
        head.evaluate_bytes(public, blob, 300)
    with pytest.raises(CorruptDataError, match="malformed feature"):
        head.evaluate_bytes(public, blob[:-5], 3)


def test_public_context_has_only_the_layout_rotation_keys(contexts) -> None:
    """Galois keys for the layout's rotations only: smaller than TenSEAL's full key set, and
    the service evaluates with them (agreement checked in test_encrypted_scores_match_plaintext,
    which goes through the same public context)."""
    head = seeded_head(LINEAR)
    site = contexts[LINEAR]
    assert not site.has_galois_keys()  # the site never rotates
    steps = rotation_steps(slot_count(site), head.feature_count)
    assert steps == [128, 256, 512, 1024, 2048]  # 24 features -> 32 padded, S = 128
    small = public_context_bytes(site, head.feature_count)
    public = load_public_context(small, head.profile, features=head.feature_count)
    assert not public.is_private() and public.galois_keys().data.size() == len(steps)
    full = site.copy()
    full.generate_galois_keys()  # what sites sent before: every power-of-two step, both ways
    full_bytes = full.serialize(save_secret_key=False)
    assert len(small) < 0.3 * len(full_bytes)  # 5 of 24 keys, seeded
    # an older site's full-key context still works (the service just sees another hash)
    old = load_public_context(full_bytes, head.profile, features=head.feature_count)
    features = study_features(head, 40)
    scores = decrypt_batch(site, head.evaluate_bytes(old, encrypt_batch(site, features)), 40, 3)
    assert np.abs(scores - head.plain_scores(features)).max() < 2e-3


def test_context_without_the_needed_rotation_keys_is_refused(contexts) -> None:
    head = seeded_head(LINEAR)
    too_few = public_context_bytes(contexts[LINEAR], 2)  # keys for one step (2048) only
    with pytest.raises(FedcodecError, match=r"lacks Galois keys for rotation steps \[128, 256"):
        load_public_context(too_few, head.profile, features=head.feature_count)
    without = contexts[LINEAR].serialize(save_secret_key=False, save_galois_keys=False)
    with pytest.raises(FedcodecError, match="lacks Galois keys"):
        load_public_context(without, head.profile, features=head.feature_count)
