"""docs/encryption-format.md, re-implemented independently, against the real implementation.

``SpecReader`` / ``spec_encrypt`` below follow the document only (section numbers in comments) and
use nothing from ``fedcodec.shared.crypto``: ``cryptography`` primitives, ``hashlib``, ``hmac`` and
``struct``. Keys come from the keyring files as the document lays them out (section 10). If the
code drifts from the document, these tests fail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from fedcodec.shared.crypto.envelope import (
    decrypt_bytes,
    encrypt_bytes,
    replace_header,
    rewrap,
    share,
)
from fedcodec.shared.crypto.errors import TamperedObjectError
from fedcodec.shared.crypto.keyring import SiteKeyring

MAGIC = bytes.fromhex("89464345 0D0A1A0A".replace(" ", ""))  # section 5


def hkdf(ikm: bytes, salt: bytes, info: bytes, size: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=size, salt=salt, info=info).derive(ikm)


def str16(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">H", len(data)) + data


class Fields:
    """Sequential big-endian reads (section 3)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, size: int) -> bytes:
        assert self.pos + size <= len(self.data), "field overruns its block"
        self.pos += size
        return self.data[self.pos - size : self.pos]

    def u(self, fmt: str) -> int:
        return struct.unpack(">" + fmt, self.take(struct.calcsize(">" + fmt)))[0]

    def text(self) -> str:
        return self.take(self.u("H")).decode()

    def done(self) -> None:
        assert self.pos == len(self.data), "stray bytes"


def read_keyring_files(directory: Path) -> dict:
    """Section 10: keyring.json, kek-<id>.key files, identity-x25519.key."""
    meta = json.loads((directory / "keyring.json").read_text())
    keks = {k["id"]: (directory / f"{k['id']}.key").read_bytes() for k in meta["keks"]}
    for kek_id, kek in keks.items():  # section 9: a KEK id is the key's fingerprint
        assert kek_id == "kek-" + hkdf(kek, b"", b"fedcodec/enc/v1 kek-id", 8).hex()
    identity = (directory / "identity-x25519.key").read_bytes()
    return {"site": meta["site"], "keks": keks, "current": meta["current_kek"],
            "identity": identity}


def spec_decrypt(blob: bytes, keys: dict) -> tuple[dict, bytes]:
    """Section 8.2, steps 1-12, for a KEK slot or an X25519 slot of ``keys['site']``."""
    assert blob[:8] == MAGIC  # step 1
    version, b_len = struct.unpack_from(">HI", blob, 8)
    assert version == 1  # step 2
    (r_len,) = struct.unpack_from(">I", blob, 14 + b_len)
    h_len = 82 + b_len + r_len  # step 3
    header = blob[:h_len]
    assert hashlib.sha256(header[:-32]).digest() == header[-32:]  # step 4
    digest = hashlib.sha256(header[: 14 + b_len]).digest()  # D, section 5

    bound = Fields(header[14 : 14 + b_len])  # step 5, section 5.1
    fields = {"suite": bound.u("H"), "frame_size": bound.u("I"), "created": bound.u("Q"),
              "salt": bound.take(32), "commitment": bound.take(32)}
    for name in ("site", "object_id", "codec", "content_type", "origin_kek_id"):
        fields[name] = bound.text()
    bound.done()
    slots_block = Fields(header[18 + b_len : 18 + b_len + r_len])  # section 5.2
    slots = []
    for _ in range(slots_block.u("B")):
        kind, body = slots_block.u("B"), Fields(slots_block.take(slots_block.u("H")))
        slot = {"kind": kind, "site": body.text(), "key_id": body.text()}
        slot["ephemeral"] = body.take(32) if kind == 2 else b""
        slot["wrapped"] = body.take(40)
        body.done()
        slots.append(slot)
    slots_block.done()

    dek = None  # steps 6-7, section 6
    for slot in slots:
        if slot["site"] != keys["site"]:
            continue
        if slot["kind"] == 1 and slot["key_id"] in keys["keks"]:
            kwk = hkdf(keys["keks"][slot["key_id"]], digest, b"fedcodec/enc/v1 kek-wrap")
        elif slot["kind"] == 2:
            private = X25519PrivateKey.from_private_bytes(keys["identity"])
            mine = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                     serialization.PublicFormat.Raw)
            shared = private.exchange(X25519PublicKey.from_public_bytes(slot["ephemeral"]))
            site = keys["site"].encode()
            info = (b"fedcodec/enc/v1 x25519-wrap" + struct.pack(">H", len(site)) + site
                    + mine + slot["ephemeral"])
            kwk = hkdf(shared, digest, info)
        else:
            continue
        dek = aes_key_unwrap(kwk, slot["wrapped"])
        break
    assert dek is not None, "no slot for this keyring"
    salt = fields["salt"]
    assert hkdf(dek, salt, b"fedcodec/enc/v1 key-commitment") == fields["commitment"]  # step 8
    mac_key = hkdf(dek, salt, b"fedcodec/enc/v1 header-mac")
    assert hmac.new(mac_key, header[:-64], hashlib.sha256).digest() == header[-64:-32]  # step 9

    aead = AESGCM(hkdf(dek, salt, b"fedcodec/enc/v1 frame-key"))  # step 10, section 7
    pos, seq, out = h_len, 0, []
    while True:
        flags, length = struct.unpack_from(">BI", blob, pos)
        sealed = blob[pos + 5 : pos + 5 + length + 16]
        assert len(sealed) == length + 16
        nonce = struct.pack(">Q", seq) + b"\x00\x00\x00" + bytes([flags])
        aad = digest + struct.pack(">QBI", seq, flags, length)
        plaintext = aead.decrypt(nonce, sealed, aad)
        pos += 5 + length + 16
        if flags == 1:
            total, content_hash = struct.unpack(">Q32s", plaintext)  # step 11
            data = b"".join(out)
            assert total == len(data) and content_hash == hashlib.sha256(data).digest()
            assert pos == len(blob)  # step 12
            return fields, data
        assert flags == 0 and 1 <= length <= fields["frame_size"]
        out.append(plaintext)
        seq += 1


def spec_encrypt(data: bytes, keys: dict, object_id: str, frame_size: int) -> bytes:
    """Section 8.1 with one KEK slot under the keyring's current KEK."""
    dek, salt = os.urandom(32), os.urandom(32)
    kek_id = keys["current"]
    bound = (struct.pack(">HIQ", 1, frame_size, 1_700_000_000_000) + salt
             + hkdf(dek, salt, b"fedcodec/enc/v1 key-commitment")
             + str16(keys["site"]) + str16(object_id) + str16("raw")
             + str16("application/octet-stream") + str16(kek_id))
    prefix = MAGIC + struct.pack(">HI", 1, len(bound)) + bound
    digest = hashlib.sha256(prefix).digest()
    kwk = hkdf(keys["keks"][kek_id], digest, b"fedcodec/enc/v1 kek-wrap")
    body = str16(keys["site"]) + str16(kek_id) + aes_key_wrap(kwk, dek)
    slots = b"\x01" + struct.pack(">BH", 1, len(body)) + body
    header = prefix + struct.pack(">I", len(slots)) + slots
    header += hmac.new(hkdf(dek, salt, b"fedcodec/enc/v1 header-mac"), header,
                       hashlib.sha256).digest()
    header += hashlib.sha256(header).digest()
    aead = AESGCM(hkdf(dek, salt, b"fedcodec/enc/v1 frame-key"))
    pieces = [data[i : i + frame_size] for i in range(0, len(data), frame_size)]
    pieces.append(struct.pack(">Q32s", len(data), hashlib.sha256(data).digest()))
    frames = []
    for seq, piece in enumerate(pieces):
        flags = 1 if seq == len(pieces) - 1 else 0
        nonce = struct.pack(">Q", seq) + b"\x00\x00\x00" + bytes([flags])
        aad = digest + struct.pack(">QBI", seq, flags, len(piece))
        frames.append(struct.pack(">BI", flags, len(piece)) + aead.encrypt(nonce, piece, aad))
    return header + b"".join(frames)


@pytest.fixture
def ge(tmp_path: Path) -> SiteKeyring:
    return SiteKeyring.create(tmp_path / "ge", "ge")


@pytest.mark.parametrize("size,frame_size", [(0, 16), (48, 16), (1000, 64), (70_000, 1 << 20)])
def test_spec_reader_decrypts_fedcodec_objects(ge: SiteKeyring, size: int, frame_size: int) -> None:
    data = os.urandom(size)
    blob = encrypt_bytes(data, ge, object_id="o", codec="jpegls", frame_size=frame_size,
                         created_unix_ms=1_234)
    fields, plaintext = spec_decrypt(blob, read_keyring_files(ge.path))
    assert plaintext == data
    assert (fields["site"], fields["object_id"], fields["codec"]) == ("ge", "o", "jpegls")
    assert fields["content_type"] == "application/x-fcz" and fields["created"] == 1_234
    assert fields["frame_size"] == frame_size and fields["origin_kek_id"] == ge.current_kek_id


def test_fedcodec_decrypts_spec_objects(ge: SiteKeyring) -> None:
    data = os.urandom(5000)
    blob = spec_encrypt(data, read_keyring_files(ge.path), "from-spec", 512)
    header, plaintext = decrypt_bytes(blob, ge)
    assert plaintext == data
    assert header.object_id == "from-spec" and header.content_type == "application/octet-stream"
    broken = bytearray(blob)
    broken[-1] ^= 1
    with pytest.raises(TamperedObjectError):
        decrypt_bytes(bytes(broken), ge)


def test_spec_reader_follows_rotation_and_sharing(ge: SiteKeyring, tmp_path: Path) -> None:
    philips = SiteKeyring.create(tmp_path / "philips", "philips")
    ge.import_peer("philips", philips.public_key_bytes())
    data = os.urandom(3000)
    blob = encrypt_bytes(data, ge, object_id="s", codec="raw", frame_size=1000)
    ge.rotate()
    blob = replace_header(blob, rewrap(blob, ge))
    blob = replace_header(blob, share(blob, ge, "philips"))
    assert spec_decrypt(blob, read_keyring_files(ge.path))[1] == data
    assert spec_decrypt(blob, read_keyring_files(philips.path))[1] == data
