"""Keyed, deterministic replacement of UIDs and patient IDs (PS3.15 action U, and D pseudonyms).

Why keyed: a plain hash of a UID can be reversed by hashing candidate UIDs (scanner UIDs embed
serial numbers and timestamps, so the space is small). HMAC-SHA256 with a secret that never leaves
the site makes the mapping one-way for anyone without the key, while the same UID always maps to the
same replacement at that site, across files, series and runs, so references (Study/Series/Frame of
Reference, Referenced SOP Instance UIDs) stay consistent.

Form: ``2.25.<decimal of a 128-bit UUID>`` (ITU-T X.667), an RFC 9562 version-8 UUID whose 122 free
bits hold 90 bits of ``HMAC(key, uid)`` and a 32-bit keyed check of those bits. The check lets the
mapper recognise its own output, so de-identifying already de-identified data leaves UIDs unchanged
(idempotence), while anyone without the key cannot forge a UID it would pass through unchanged.
The longest result is 44 characters (the UI limit is 64).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

MIN_KEY_BYTES = 16
_UID_DOMAIN = b"fedcodec/deid/uid/v1\x00"
_UID_CHECK_DOMAIN = b"fedcodec/deid/uid-check/v1\x00"
_PATIENT_DOMAIN = b"fedcodec/deid/patient-id/v1\x00"
_PATIENT_CHECK_DOMAIN = b"fedcodec/deid/patient-id-check/v1\x00"
_BODY_BITS = 90
_CHECK_BITS = 32
PATIENT_PREFIX = "FCP-"


def _mac(key: bytes, domain: bytes, message: bytes) -> int:
    return int.from_bytes(hmac.new(key, domain + message, hashlib.sha256).digest(), "big")


def _uuid_fields(payload: int) -> int:
    """Spread 122 payload bits around the UUID version (8) and variant (0b10) bits."""
    time_high = (payload >> 74) & ((1 << 48) - 1)
    middle = (payload >> 62) & 0xFFF
    low = payload & ((1 << 62) - 1)
    return (time_high << 80) | (0x8 << 76) | (middle << 64) | (0b10 << 62) | low


def _uuid_payload(value: int) -> int | None:
    if value >> 128 or (value >> 76) & 0xF != 0x8 or (value >> 62) & 0b11 != 0b10:
        return None
    time_high = value >> 80
    middle = (value >> 64) & 0xFFF
    low = value & ((1 << 62) - 1)
    return (time_high << 74) | (middle << 62) | low


class UidMapper:
    """Maps UIDs and patient IDs with one site key; caches, so a series costs one HMAC per UID."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the de-identification key must be at least {MIN_KEY_BYTES} bytes")
        self._key = bytes(key)
        self._cache: dict[str, str] = {}

    def _check(self, body: int, domain: bytes, bits: int) -> int:
        digest = _mac(self._key, domain, body.to_bytes(16, "big"))
        return digest >> (256 - bits)

    def is_mapped(self, uid: str) -> bool:
        """Whether ``uid`` is an output of this mapper (same key)."""
        if not uid.startswith("2.25.") or not uid[5:].isdigit() or len(uid) > 44:
            return False
        payload = _uuid_payload(int(uid[5:]))
        if payload is None:
            return False
        body, check = payload >> _CHECK_BITS, payload & ((1 << _CHECK_BITS) - 1)
        return self._check(body, _UID_CHECK_DOMAIN, _CHECK_BITS) == check

    def map_uid(self, uid: str) -> str:
        """The replacement for ``uid``; an already mapped UID is returned unchanged."""
        uid = uid.strip("\x00 ")
        if cached := self._cache.get(uid):
            return cached
        if self.is_mapped(uid):
            self._cache[uid] = uid
            return uid
        body = _mac(self._key, _UID_DOMAIN, uid.encode("utf-8", "surrogateescape")) >> (
            256 - _BODY_BITS
        )
        payload = (body << _CHECK_BITS) | self._check(body, _UID_CHECK_DOMAIN, _CHECK_BITS)
        mapped = f"2.25.{_uuid_fields(payload)}"
        self._cache[uid] = mapped
        return mapped

    def _patient_check(self, body: bytes) -> bytes:
        return hmac.new(self._key, _PATIENT_CHECK_DOMAIN + body, hashlib.sha256).digest()[:5]

    def is_pseudonym(self, patient_id: str) -> bool:
        if not patient_id.startswith(PATIENT_PREFIX):
            return False
        try:
            raw = base64.b32decode(patient_id[len(PATIENT_PREFIX) :])
        except ValueError:
            return False
        return len(raw) == 15 and hmac.compare_digest(raw[10:], self._patient_check(raw[:10]))

    def pseudonym(self, patient_id: str) -> str:
        """``FCP-`` + 24 base32 characters: 80 keyed bits of the ID + a 40-bit keyed check."""
        patient_id = patient_id.strip("\x00 ")
        if self.is_pseudonym(patient_id):
            return patient_id
        body = hmac.new(
            self._key, _PATIENT_DOMAIN + patient_id.encode("utf-8", "surrogateescape"), "sha256"
        ).digest()[:10]
        return PATIENT_PREFIX + base64.b32encode(body + self._patient_check(body)).decode()
