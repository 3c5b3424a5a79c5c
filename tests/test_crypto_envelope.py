"""Round trips, streaming, the public header, and keyless validation of encrypted objects."""

from __future__ import annotations

import hashlib
import os
import random
import tracemalloc
from pathlib import Path

import pytest

from fedcodec.shared.crypto.envelope import (
    decrypt_bytes,
    decrypt_object,
    encrypt_bytes,
    encrypt_object,
    read_header,
)
from fedcodec.shared.crypto.errors import NotAnObjectError, TruncatedObjectError
from fedcodec.shared.crypto.keyring import SiteKeyring
from fedcodec.shared.crypto.object_header import MAGIC
from fedcodec.shared.crypto.object_validator import ObjectStructureCheck, scan_object
from fedcodec.shared.errors import CorruptDataError, FedcodecError


@pytest.fixture
def keyring(tmp_path: Path) -> SiteKeyring:
    return SiteKeyring.create(tmp_path / "ge", "ge")


def _chunked(data: bytes, rng: random.Random, largest: int) -> list[bytes]:
    chunks, pos = [], 0
    while pos < len(data):
        size = rng.randint(1, largest)
        chunks.append(data[pos : pos + size])
        pos += size
    return chunks


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 47, 48, 49, 1000])
def test_round_trip_across_frame_boundaries(keyring: SiteKeyring, size: int) -> None:
    data = os.urandom(size)
    blob = encrypt_bytes(data, keyring, object_id=f"obj-{size}", codec="raw", frame_size=16)
    header, plaintext = decrypt_bytes(blob, keyring)
    assert plaintext == data
    layout = scan_object(blob)
    full, rest = divmod(size, 16)
    assert layout.data_frames == full + (1 if rest else 0)
    assert layout.plaintext_length == size
    assert layout.total_length == len(blob)
    assert layout.header.object_id == header.object_id == f"obj-{size}"


def test_chunked_input_and_output_streams(keyring: SiteKeyring) -> None:
    rng = random.Random(7)
    data = os.urandom(5000)
    encrypted = list(
        encrypt_object(_chunked(data, rng, 300), keyring, object_id="s", codec="raw",
                       frame_size=512)
    )
    blob = b"".join(encrypted)
    assert len(encrypted) == 1 + 10 + 1  # header, ceil(5000/512) data frames, final frame
    for largest in (1, 7, 700, 100_000):
        _, frames = decrypt_object(_chunked(blob, rng, largest), keyring)
        assert b"".join(frames) == data
        assert frames.content_sha256 == hashlib.sha256(data).digest()
        assert frames.plaintext_length == len(data)
        check = ObjectStructureCheck()
        for chunk in _chunked(blob, rng, largest):
            check.feed(chunk)
        assert check.finish().plaintext_length == len(data)


def test_public_header_fields(keyring: SiteKeyring) -> None:
    blob = encrypt_bytes(
        b"x" * 10,
        keyring,
        object_id="study/1.2.840.1",
        codec="jpegls:near=0",
        content_type="application/x-fcz",
        created_unix_ms=1_700_000_000_123,
    )
    header = read_header(blob[:65536])
    assert blob.startswith(MAGIC)
    assert (header.site, header.object_id, header.codec) == ("ge", "study/1.2.840.1",
                                                            "jpegls:near=0")
    assert header.content_type == "application/x-fcz"
    assert header.format_version == 1
    assert header.algorithm == "AES-256-GCM-STREAM/HKDF-SHA256/AES-KW/X25519"
    assert header.created_unix_ms == 1_700_000_000_123
    assert header.created_at.isoformat() == "2023-11-14T22:13:20.123000+00:00"
    assert header.key_ids == (keyring.current_kek_id,)
    assert header.kek_id == header.origin_kek_id == keyring.current_kek_id
    assert header.recipient_sites == ("ge",)
    assert header.frame_size == 1 << 20
    assert header.raw == blob[: header.length]


def test_each_object_has_a_fresh_data_key(keyring: SiteKeyring) -> None:
    one = read_header(encrypt_bytes(b"same", keyring, object_id="a", codec="raw"))
    two = read_header(encrypt_bytes(b"same", keyring, object_id="a", codec="raw"))
    assert one.key_commitment != two.key_commitment
    assert one.slots[0].wrapped_key != two.slots[0].wrapped_key
    assert one.bound.object_salt != two.bound.object_salt


def test_not_an_object(keyring: SiteKeyring) -> None:
    with pytest.raises(NotAnObjectError, match="empty input"):
        decrypt_bytes(b"", keyring)
    with pytest.raises(NotAnObjectError, match="bad magic"):
        decrypt_bytes(b"FCZ1" + bytes(200), keyring)
    with pytest.raises(NotAnObjectError, match="bad magic"):
        read_header(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(TruncatedObjectError, match="truncated"):
        read_header(MAGIC + b"\x00")
    future = MAGIC + (2).to_bytes(2, "big") + bytes(100)
    with pytest.raises(CorruptDataError, match="unsupported encrypted-object format version 2"):
        read_header(future)


def test_bad_arguments_are_rejected_before_streaming(keyring: SiteKeyring) -> None:
    with pytest.raises(FedcodecError, match="frame size"):
        encrypt_object(b"x", keyring, object_id="a", codec="raw", frame_size=0)
    with pytest.raises(FedcodecError, match="object id"):
        encrypt_object(b"x", keyring, object_id="", codec="raw")
    with pytest.raises(FedcodecError, match="object id"):
        encrypt_object(b"x", keyring, object_id="x" * 2000, codec="raw")


def test_streaming_memory_is_bounded(keyring: SiteKeyring) -> None:
    """64 MiB through encrypt -> decrypt without ever holding more than a few frames."""
    block = os.urandom(1 << 20)
    expected = hashlib.sha256()

    def source():
        for _ in range(64):
            expected.update(block)
            yield block

    tracemalloc.start()
    try:
        _, frames = decrypt_object(
            encrypt_object(source(), keyring, object_id="big", codec="raw"), keyring
        )
        total = sum(len(frame) for frame in frames)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 64 << 20
    assert frames.content_sha256 == expected.digest()
    assert peak < 8 << 20, f"peak traced memory {peak / 2**20:.1f} MiB for a 64 MiB stream"


def test_file_round_trip_and_no_partial_output(keyring: SiteKeyring, tmp_path: Path) -> None:
    from fedcodec.shared.crypto.object_files import decrypt_file, encrypt_file

    source = tmp_path / "study.fcz"
    source.write_bytes(os.urandom(10_000))
    encrypted = tmp_path / "study.fcz.enc"
    header = encrypt_file(source, encrypted, keyring, object_id="study", codec="raw",
                          frame_size=4096)
    assert header == read_header(encrypted.read_bytes())
    restored = tmp_path / "restored.fcz"
    assert decrypt_file(encrypted, restored, keyring).object_id == "study"
    assert restored.read_bytes() == source.read_bytes()

    damaged = bytearray(encrypted.read_bytes())
    damaged[-20] ^= 1  # inside the final frame: the data frames already streamed out
    encrypted.write_bytes(bytes(damaged))
    target = tmp_path / "never.fcz"
    with pytest.raises(CorruptDataError, match="tampered: frame 3"):
        decrypt_file(encrypted, target, keyring)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ge", "restored.fcz", "study.fcz",
                                                          "study.fcz.enc"]
    with pytest.raises(FedcodecError, match="cannot read"):
        decrypt_file(tmp_path / "missing", target, keyring)
