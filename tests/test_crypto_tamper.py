"""Every manipulation of an encrypted object is detected, and classified correctly.

A small object (three data frames of a 16-byte frame size, plus the final frame) is altered in
every way the format claims to stop: each single byte flipped, cut at every length, frames
reordered, duplicated, dropped, spliced in from another object, bytes appended; then opened with
keys that are not its own. Damage must raise ``CorruptDataError`` (tampered / truncated / not an
object), never ``WrongKeyError``; a foreign key must raise ``WrongKeyError``, never "tampered".
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from fedcodec.shared.crypto import kdf
from fedcodec.shared.crypto.envelope import decrypt_bytes, read_header, share
from fedcodec.shared.crypto.errors import (
    NotAnObjectError,
    TamperedObjectError,
    TruncatedObjectError,
    UnknownKeyError,
    WrongKeyError,
)
from fedcodec.shared.crypto.frame_stream import FRAME_PREFIX, TAG_BYTES
from fedcodec.shared.crypto.key_slots import kek_slot
from fedcodec.shared.crypto.keyring import SiteKeyring
from fedcodec.shared.crypto.object_header import assemble_header
from fedcodec.shared.crypto.object_validator import scan_object
from fedcodec.shared.errors import CorruptDataError

FRAME = 16
PLAINTEXT = bytes(range(40))  # frames of 16, 16, 8 bytes, then the final frame


@pytest.fixture
def keyring(tmp_path: Path) -> SiteKeyring:
    return SiteKeyring.create(tmp_path / "ge", "ge")


def _encrypt(keyring: SiteKeyring, object_id: str = "obj", data: bytes = PLAINTEXT) -> bytes:
    from fedcodec.shared.crypto.envelope import encrypt_bytes

    return encrypt_bytes(data, keyring, object_id=object_id, codec="raw", frame_size=FRAME)


def _split(blob: bytes) -> tuple[bytes, list[bytes]]:
    """Header bytes and the list of whole frames (prefix + ciphertext + tag)."""
    header = read_header(blob)
    frames, pos = [], header.length
    while pos < len(blob):
        _, length = FRAME_PREFIX.unpack_from(blob, pos)
        end = pos + FRAME_PREFIX.size + length + TAG_BYTES
        frames.append(blob[pos:end])
        pos = end
    return blob[: header.length], frames


def test_object_shape(keyring: SiteKeyring) -> None:
    header, frames = _split(_encrypt(keyring))
    assert [len(f) - FRAME_PREFIX.size - TAG_BYTES for f in frames] == [16, 16, 8, 40]
    assert [f[0] for f in frames] == [0, 0, 0, 1]


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_every_single_byte_flip_is_detected(keyring: SiteKeyring, mask: int) -> None:
    blob = _encrypt(keyring)
    header_length = read_header(blob).length
    kinds: dict[str, int] = {}
    for position in range(len(blob)):
        damaged = bytearray(blob)
        damaged[position] ^= mask
        with pytest.raises(CorruptDataError) as caught:
            decrypt_bytes(bytes(damaged), keyring)
        assert not isinstance(caught.value, WrongKeyError), (position, str(caught.value))
        assert "\n" not in str(caught.value)
        kinds[type(caught.value).__name__] = kinds.get(type(caught.value).__name__, 0) + 1
        if position < header_length:
            # Header damage is visible without any key (what the storage service checks).
            with pytest.raises(CorruptDataError):
                read_header(bytes(damaged))
        elif _in_sealed_part(blob, header_length, position):
            assert isinstance(caught.value, TamperedObjectError), (position, str(caught.value))
            assert str(caught.value).startswith("tampered: frame ")
    print(f"\n[tamper] mask {mask:#04x}: {len(blob)} byte flips detected: {kinds}")


def _in_sealed_part(blob: bytes, header_length: int, position: int) -> bool:
    """True if ``position`` is in a frame's ciphertext or tag (not its clear prefix)."""
    pos = header_length
    while pos < len(blob):
        _, length = FRAME_PREFIX.unpack_from(blob, pos)
        start, end = pos + FRAME_PREFIX.size, pos + FRAME_PREFIX.size + length + TAG_BYTES
        if start <= position < end:
            return True
        pos = end
    return False


def test_truncation_at_every_length_is_detected(keyring: SiteKeyring) -> None:
    blob = _encrypt(keyring)
    header, frames = _split(blob)
    boundaries = {len(header) + sum(len(f) for f in frames[:k]) for k in range(len(frames))}
    for cut in range(len(blob)):
        expected = NotAnObjectError if cut == 0 else TruncatedObjectError
        with pytest.raises(expected) as caught:
            decrypt_bytes(blob[:cut], keyring)
        assert str(caught.value).startswith(("truncated", "object header is truncated",
                                             "not an encrypted")), cut
        with pytest.raises(expected):
            scan_object(blob[:cut])
        if cut in boundaries and cut > len(header):
            assert "without its final frame" in str(caught.value)
    assert len(boundaries) == 4


def test_frame_reorder_duplicate_drop_and_append(keyring: SiteKeyring) -> None:
    header, frames = _split(_encrypt(keyring))
    d0, d1, d2, final = frames
    variants = {
        "swap 0 and 1": [d1, d0, d2, final],
        "duplicate 0": [d0, d0, d1, d2, final],
        "drop 1": [d0, d2, final],
        "replay 0 as 1": [d0, d0, d2, final],
        "final moved first": [final, d0, d1, d2],
    }
    for name, order in variants.items():
        with pytest.raises(TamperedObjectError, match="tampered") as caught:
            decrypt_bytes(header + b"".join(order), keyring)
        assert "frame" in str(caught.value), name
    for extra in (b"\x00", final, d0):
        with pytest.raises(TamperedObjectError, match="bytes after its final frame"):
            decrypt_bytes(header + b"".join(frames) + extra, keyring)
        with pytest.raises(TamperedObjectError, match="bytes after its final frame"):
            scan_object(header + b"".join(frames) + extra)


def test_truncated_object_cannot_be_finalised(keyring: SiteKeyring) -> None:
    """Turning the last data frame into a 'final' one (flag flip) fails authentication."""
    header, frames = _split(_encrypt(keyring))
    forged = bytearray(frames[1])
    forged[0] = 0x01
    with pytest.raises(TamperedObjectError):
        decrypt_bytes(header + frames[0] + bytes(forged), keyring)


def test_splice_between_objects_is_detected(keyring: SiteKeyring) -> None:
    header_a, frames_a = _split(_encrypt(keyring, "a"))
    header_b, frames_b = _split(_encrypt(keyring, "b", data=bytes(40)))
    with pytest.raises(TamperedObjectError, match="frame 1 of object 'a'"):
        decrypt_bytes(header_a + frames_a[0] + frames_b[1] + frames_a[2] + frames_a[3], keyring)
    with pytest.raises(TamperedObjectError, match="frame 0 of object 'a'"):
        decrypt_bytes(header_a + b"".join(frames_b), keyring)
    with pytest.raises(TamperedObjectError, match="final frame|frame 3"):
        decrypt_bytes(header_a + b"".join(frames_a[:3]) + frames_b[3], keyring)


def test_key_slot_moved_from_another_object_is_tampering(keyring: SiteKeyring) -> None:
    a, b = read_header(_encrypt(keyring, "a")), read_header(_encrypt(keyring, "b"))
    # An attacker without keys can rebuild the checksum but not the MAC or the wrap binding.
    forged = assemble_header(a.bound, list(b.slots), os.urandom(32))
    blob = forged + _encrypt(keyring, "a")[a.length :]
    with pytest.raises(TamperedObjectError, match="AES-KW integrity"):
        decrypt_bytes(blob, keyring)


def test_removed_peer_slot_breaks_the_header_mac(keyring: SiteKeyring, tmp_path: Path) -> None:
    peer = SiteKeyring.create(tmp_path / "ph", "philips")
    keyring.import_peer("philips", peer.public_key_bytes())
    blob = _encrypt(keyring)
    shared = share(blob, keyring, "philips")
    forged = assemble_header(shared.bound, [shared.slots[0]], os.urandom(32))
    with pytest.raises(TamperedObjectError, match="header MAC"):
        decrypt_bytes(forged + blob[read_header(blob).length :], keyring)


def test_foreign_keyrings_are_wrong_key(keyring: SiteKeyring, tmp_path: Path) -> None:
    blob = _encrypt(keyring)
    other_site = SiteKeyring.create(tmp_path / "philips", "philips")
    same_name = SiteKeyring.create(tmp_path / "ge-again", "ge")
    for stranger in (other_site, same_name):
        with pytest.raises(UnknownKeyError) as caught:
            decrypt_bytes(blob, stranger)
        message = str(caught.value)
        assert message.startswith("wrong key: object 'obj' opens only with ge:kek-")
        assert "tampered" not in message


def test_key_commitment_rejects_a_different_data_key(keyring: SiteKeyring) -> None:
    """A slot that unwraps cleanly to a key that is not the object's: 'wrong key', no frames."""
    blob = _encrypt(keyring)
    header = read_header(blob)
    other_key = os.urandom(32)
    slot = kek_slot(other_key, keyring, header.bound_digest)
    mac_key = kdf.derive_object_keys(other_key, header.bound.object_salt).header_mac_key
    forged = assemble_header(header.bound, [slot], mac_key)
    with pytest.raises(WrongKeyError) as caught:
        decrypt_bytes(forged + blob[header.length :], keyring)
    assert not isinstance(caught.value, UnknownKeyError)
    assert str(caught.value) == (
        f"wrong key: the data key from ge:{keyring.current_kek_id} does not match the key "
        "commitment of object 'obj'"
    )


def test_oversized_lengths_do_not_allocate(keyring: SiteKeyring) -> None:
    header, frames = _split(_encrypt(keyring))
    huge = struct.pack(">BI", 0, 0xFFFFFFFF) + frames[0][FRAME_PREFIX.size :]
    with pytest.raises(TamperedObjectError, match="length 4294967295"):
        decrypt_bytes(header + huge + b"".join(frames[1:]), keyring)
