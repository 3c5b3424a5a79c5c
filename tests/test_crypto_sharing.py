"""Key rotation (rewrap without re-encrypting) and sharing with peer sites over X25519."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fedcodec.shared.crypto.envelope import (
    decrypt_bytes,
    encrypt_bytes,
    read_header,
    replace_header,
    rewrap,
    share,
    stream_with_header,
    unshare,
)
from fedcodec.shared.crypto.errors import UnknownKeyError
from fedcodec.shared.crypto.keyring import SiteKeyring
from fedcodec.shared.crypto.object_header import SLOT_KEK, SLOT_X25519
from fedcodec.shared.errors import FedcodecError, UnknownNameError

DATA = os.urandom(3000)


@pytest.fixture
def sites(tmp_path: Path) -> dict[str, SiteKeyring]:
    names = ("ge", "philips", "toshiba")
    rings = {name: SiteKeyring.create(tmp_path / name, name) for name in names}
    rings["ge"].import_peer("philips", rings["philips"].public_key_bytes())
    return rings


def _encrypt(keyring: SiteKeyring, object_id: str = "study-1") -> bytes:
    return encrypt_bytes(DATA, keyring, object_id=object_id, codec="jpegls", frame_size=1024)


def test_rotation_keeps_old_objects_readable_and_rewrap_moves_them(tmp_path: Path) -> None:
    keyring = SiteKeyring.create(tmp_path / "ge", "ge")
    old_blob = _encrypt(keyring, "old")
    old_kek = keyring.current_kek_id
    new_kek = keyring.rotate()
    new_blob = _encrypt(keyring, "new")
    reopened = SiteKeyring.open(tmp_path / "ge")
    assert decrypt_bytes(old_blob, reopened)[1] == DATA  # retired KEK still unwraps
    assert decrypt_bytes(new_blob, reopened)[1] == DATA
    assert read_header(old_blob).kek_id == old_kek
    assert read_header(new_blob).kek_id == new_kek

    header = rewrap(old_blob, reopened)
    rewrapped = replace_header(old_blob, header)
    assert header.kek_id == new_kek and header.key_ids == (new_kek,)
    assert header.origin_kek_id == old_kek  # the bound block never changes
    old_header = read_header(old_blob)
    assert rewrapped[header.length :] == old_blob[old_header.length :]  # frames untouched
    assert header.bound_digest == old_header.bound_digest
    assert decrypt_bytes(rewrapped, reopened)[1] == DATA


def test_rewrapped_object_no_longer_needs_the_retired_kek(tmp_path: Path) -> None:
    keyring = SiteKeyring.create(tmp_path / "ge", "ge")
    blob = _encrypt(keyring)
    retired = keyring.current_kek_id
    keyring.rotate()
    rewrapped = replace_header(blob, rewrap(blob, keyring))
    (keyring.path / f"{retired}.key").unlink()
    # Simulate a keyring that destroyed the retired KEK: only the current one is left.
    metadata = keyring.path / "keyring.json"
    doc = json.loads(metadata.read_text())
    doc["keks"] = [k for k in doc["keks"] if k["id"] != retired]
    metadata.write_text(json.dumps(doc))
    trimmed = SiteKeyring.open(keyring.path)
    assert decrypt_bytes(rewrapped, trimmed)[1] == DATA
    with pytest.raises(UnknownKeyError, match=f"wrong key: .*ge:{retired}"):
        decrypt_bytes(blob, trimmed)


def test_share_opens_at_the_peer_and_not_at_a_third_site(sites: dict[str, SiteKeyring]) -> None:
    blob = _encrypt(sites["ge"])
    header = share(blob, sites["ge"], "philips")
    shared = replace_header(blob, header)
    assert [(s.kind, s.site) for s in header.slots] == [(SLOT_KEK, "ge"), (SLOT_X25519, "philips")]
    assert header.key_ids == (sites["ge"].current_kek_id, sites["philips"].identity_id)
    assert header.recipient_sites == ("ge", "philips")
    assert decrypt_bytes(shared, sites["philips"])[1] == DATA
    assert decrypt_bytes(shared, sites["ge"])[1] == DATA
    with pytest.raises(UnknownKeyError, match="wrong key:.*'toshiba' holds none"):
        decrypt_bytes(shared, sites["toshiba"])
    with pytest.raises(UnknownKeyError):
        decrypt_bytes(blob, sites["philips"])  # the unshared original


def test_peer_slot_is_bound_to_its_recipient(sites: dict[str, SiteKeyring], tmp_path: Path) -> None:
    """A slot relabelled for another site (even one holding the same private key) fails."""
    blob = _encrypt(sites["ge"])
    shared = replace_header(blob, share(blob, sites["ge"], "philips"))
    clone = tmp_path / "clone"
    clone.mkdir(mode=0o700)
    philips = sites["philips"].path
    for name in os.listdir(philips):
        (clone / name).write_bytes((philips / name).read_bytes())
        os.chmod(clone / name, 0o600)
    doc = json.loads((clone / "keyring.json").read_text())
    doc["site"] = "siemens"
    (clone / "keyring.json").write_text(json.dumps(doc))
    impostor = SiteKeyring.open(clone)  # same X25519 key, different site name
    with pytest.raises(UnknownKeyError):
        decrypt_bytes(shared, impostor)


def test_rotation_after_sharing_keeps_the_peer_slot(sites: dict[str, SiteKeyring]) -> None:
    blob = _encrypt(sites["ge"])
    shared = replace_header(blob, share(blob, sites["ge"], "philips"))
    new_kek = sites["ge"].rotate()
    header = rewrap(shared, sites["ge"])
    assert header.key_ids == (new_kek, sites["philips"].identity_id)
    rewrapped = replace_header(shared, header)
    assert decrypt_bytes(rewrapped, sites["philips"])[1] == DATA
    assert decrypt_bytes(rewrapped, sites["ge"])[1] == DATA


def test_peer_can_rewrap_under_its_own_kek(sites: dict[str, SiteKeyring]) -> None:
    blob = _encrypt(sites["ge"])
    shared = replace_header(blob, share(blob, sites["ge"], "philips"))
    header = rewrap(shared, sites["philips"])
    assert [(s.kind, s.site) for s in header.slots] == [(SLOT_KEK, "ge"), (SLOT_KEK, "philips")]
    own = replace_header(shared, header)
    assert decrypt_bytes(own, sites["philips"])[1] == DATA
    # The peer shares back to the owner: the owner's KEK slot must survive.
    sites["philips"].import_peer("ge", sites["ge"].public_key_bytes())
    back = share(own, sites["philips"], "ge")
    assert [(s.kind, s.site) for s in back.slots] == [
        (SLOT_KEK, "ge"), (SLOT_KEK, "philips"), (SLOT_X25519, "ge")
    ]
    with pytest.raises(FedcodecError, match="cannot remove the key slots of site 'ge'"):
        unshare(back, sites["philips"], "ge")


def test_unshare_and_errors(sites: dict[str, SiteKeyring]) -> None:
    blob = _encrypt(sites["ge"])
    shared = replace_header(blob, share(blob, sites["ge"], "philips"))
    header = unshare(shared, sites["ge"], "philips")
    assert header.recipient_sites == ("ge",)
    with pytest.raises(UnknownKeyError):
        decrypt_bytes(replace_header(shared, header), sites["philips"])
    with pytest.raises(UnknownNameError, match="unknown peer site 'toshiba'"):
        share(blob, sites["ge"], "toshiba")
    with pytest.raises(FedcodecError, match="cannot remove the key slots of site 'ge'"):
        unshare(shared, sites["ge"], "ge")
    with pytest.raises(FedcodecError, match="with itself"):
        share(blob, sites["ge"], "ge")
    with pytest.raises(UnknownNameError, match="not shared with 'toshiba'"):
        unshare(blob, sites["ge"], "toshiba")
    sites["toshiba"].import_peer("ge", sites["ge"].public_key_bytes())
    with pytest.raises(UnknownKeyError):
        share(blob, sites["toshiba"], "ge")  # cannot share what you cannot open


def test_header_of_another_object_is_refused(sites: dict[str, SiteKeyring]) -> None:
    one, two = _encrypt(sites["ge"], "one"), _encrypt(sites["ge"], "two")
    with pytest.raises(FedcodecError, match="does not belong to object 'one'"):
        replace_header(one, read_header(two))


def test_stream_with_header_copies_frames_in_chunks(sites: dict[str, SiteKeyring]) -> None:
    blob = _encrypt(sites["ge"])
    header = share(blob, sites["ge"], "philips")
    chunks = [blob[i : i + 333] for i in range(0, len(blob), 333)]
    rebuilt = b"".join(stream_with_header(iter(chunks), header))
    assert rebuilt == replace_header(blob, header)
    assert decrypt_bytes(rebuilt, sites["philips"])[1] == DATA
