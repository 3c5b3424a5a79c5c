"""Every Wycheproof vector for the primitives the envelope format uses, through the same calls.

AES-GCM (frames), AES-KW (data-key wrapping), X25519 (sharing with peers) and HKDF-SHA256 (all
key derivation, through fedcodec's own ``hkdf_sha256``). Valid vectors must round-trip, invalid
ones must be rejected, and "acceptable" ones are held to fedcodec's policy: X25519 must reject an
all-zero shared secret; any other acceptable case may be rejected, but if accepted it must give the
expected output. Run with ``-s`` to see the counts; each test also asserts them against the file.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from conftest import require_shared_data
from fedcodec.shared.crypto.kdf import hkdf_sha256


def _vectors(name: str) -> tuple[dict, list[tuple[dict, dict]]]:
    path: Path = require_shared_data("testvectors", "wycheproof", name)
    suite = json.loads(path.read_text())
    cases = [(group, test) for group in suite["testGroups"] for test in group["tests"]]
    assert len(cases) == suite["numberOfTests"]
    return suite, cases


def _report(name: str, counts: Counter, total: int) -> None:
    assert sum(counts.values()) == total
    summary = ", ".join(f"{key}: {value}" for key, value in sorted(counts.items()))
    print(f"\n[wycheproof] {name}: {total} vectors -> {summary}")


def test_aes_gcm_vectors() -> None:
    _, cases = _vectors("aes_gcm_test.json")
    counts: Counter = Counter()
    for _, t in cases:
        key, iv, aad, msg, ct, tag = (
            bytes.fromhex(t[k]) for k in ("key", "iv", "aad", "msg", "ct", "tag")
        )
        aead = AESGCM(key)
        if not 8 <= len(iv) <= 128:
            # The library refuses these IV lengths before touching data (fedcodec uses only
            # 12-byte nonces); refusing must happen for both directions, never a wrong answer.
            with pytest.raises(ValueError, match="Nonce must be between 8 and 128 bytes"):
                aead.encrypt(iv, msg, aad)
            with pytest.raises(ValueError, match="Nonce must be between 8 and 128 bytes"):
                aead.decrypt(iv, ct + tag, aad)
            counts[f"{t['result']} with IV outside 8..128 bytes, refused up front"] += 1
            continue
        if t["result"] == "valid":
            assert aead.encrypt(iv, msg, aad) == ct + tag, t["tcId"]
            assert aead.decrypt(iv, ct + tag, aad) == msg, t["tcId"]
            counts["valid round-trip"] += 1
        else:
            assert t["result"] == "invalid"
            with pytest.raises(InvalidTag):
                aead.decrypt(iv, ct + tag, aad)
            counts["invalid rejected"] += 1
    _report("aes_gcm_test.json", counts, len(cases))
    assert counts["valid round-trip"] >= 200
    assert counts["invalid rejected"] == 81


def test_aes_kw_vectors() -> None:
    _, cases = _vectors("aes_wrap_test.json")
    counts: Counter = Counter()
    for _, t in cases:
        key, msg, ct = (bytes.fromhex(t[k]) for k in ("key", "msg", "ct"))
        if t["result"] == "valid":
            assert aes_key_wrap(key, msg) == ct, t["tcId"]
            assert aes_key_unwrap(key, ct) == msg, t["tcId"]
            counts["valid round-trip"] += 1
            continue
        with pytest.raises(InvalidUnwrap):
            aes_key_unwrap(key, ct)
        try:
            wrapped = aes_key_wrap(key, msg)
        except ValueError:
            wrapped = None
        if t["result"] == "acceptable":
            # RFC 3394 allows 8-byte keys, SP 800-38F does not: rejecting is allowed.
            assert wrapped is None or wrapped == ct, t["tcId"]
            counts["acceptable rejected (ShortKey)" if wrapped is None else "acceptable ok"] += 1
        else:
            assert t["result"] == "invalid"
            assert wrapped != ct, t["tcId"]
            counts["invalid rejected"] += 1
    _report("aes_wrap_test.json", counts, len(cases))
    assert counts["invalid rejected"] == 126 and counts["valid round-trip"] == 36


def test_x25519_vectors() -> None:
    _, cases = _vectors("x25519_test.json")
    counts: Counter = Counter()
    for _, t in cases:
        private = X25519PrivateKey.from_private_bytes(bytes.fromhex(t["private"]))
        public = bytes.fromhex(t["public"])
        expected = bytes.fromhex(t["shared"])
        try:
            shared = private.exchange(X25519PublicKey.from_public_bytes(public))
        except ValueError:
            shared = None
        if t["result"] == "valid":
            assert shared == expected, t["tcId"]
            counts["valid agreed"] += 1
        elif expected == bytes(32):
            assert shared is None, f"all-zero shared secret accepted (tcId {t['tcId']})"
            counts["acceptable all-zero secret rejected (required)"] += 1
        else:
            assert t["result"] == "acceptable"
            assert shared is None or shared == expected, t["tcId"]
            counts["acceptable agreed correctly" if shared else "acceptable rejected"] += 1
    _report("x25519_test.json", counts, len(cases))
    assert counts["valid agreed"] == 264


def test_hkdf_sha256_vectors() -> None:
    _, cases = _vectors("hkdf_sha256_test.json")
    counts: Counter = Counter()
    for _, t in cases:
        ikm, salt, info = (bytes.fromhex(t[k]) for k in ("ikm", "salt", "info"))
        if t["result"] == "valid":
            okm = hkdf_sha256(ikm, salt=salt, info=info, length=t["size"])
            assert okm == bytes.fromhex(t["okm"]), t["tcId"]
            counts["valid derived"] += 1
        else:
            assert t["result"] == "invalid"
            with pytest.raises(ValueError):
                hkdf_sha256(ikm, salt=salt, info=info, length=t["size"])
            counts["invalid rejected"] += 1
    _report("hkdf_sha256_test.json", counts, len(cases))
    assert counts == Counter({"valid derived": 83, "invalid rejected": 3})
