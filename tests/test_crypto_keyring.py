"""The site keyring on disk: permissions, ids, rotation history, peers, damage detection."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from fedcodec.shared.crypto import kdf
from fedcodec.shared.crypto.errors import KeyringError
from fedcodec.shared.crypto.keyring import (
    DEID_KEY_FILE,
    IDENTITY_FILE,
    METADATA_FILE,
    SiteKeyring,
)
from fedcodec.shared.crypto.keyring_location import resolve_keyring_path
from fedcodec.shared.crypto.public_key_file import (
    parse_public_key_document,
    public_key_document,
)
from fedcodec.shared.errors import CorruptDataError, FedcodecError, UnknownNameError


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_create_lays_out_private_files(tmp_path: Path) -> None:
    keyring = SiteKeyring.create(tmp_path / "keys" / "ge", "ge")
    directory = keyring.path
    assert _mode(directory) == 0o700
    names = sorted(p.name for p in directory.iterdir())
    assert names == sorted([".lock", METADATA_FILE, IDENTITY_FILE, DEID_KEY_FILE,
                            f"{keyring.current_kek_id}.key"])
    for name in names:
        assert _mode(directory / name) == 0o600, name
    kek = (directory / f"{keyring.current_kek_id}.key").read_bytes()
    assert len(kek) == 32 and kdf.kek_id_for(kek) == keyring.current_kek_id
    metadata = json.loads((directory / METADATA_FILE).read_text())
    assert metadata["site"] == "ge" and metadata["current_kek"] == keyring.current_kek_id
    assert kek.hex() not in (directory / METADATA_FILE).read_text()
    assert [e["event"] for e in metadata["history"]] == ["init"]
    assert not any(p.name.endswith(".tmp") for p in directory.iterdir())


def test_open_round_trip_and_rotation_history(tmp_path: Path) -> None:
    created = SiteKeyring.create(tmp_path / "ge", "ge")
    first = created.current_kek_id
    second = created.rotate()
    third = SiteKeyring.open(tmp_path / "ge").rotate()
    keyring = SiteKeyring.open(tmp_path / "ge")
    assert keyring.site == "ge"
    assert keyring.kek_ids == (first, second, third)
    assert keyring.current_kek_id == third
    assert [r.status for r in keyring.kek_records] == ["retired", "retired", "current"]
    assert all(r.retired_at for r in keyring.kek_records[:2])
    assert [e["event"] for e in keyring.history] == ["init", "rotate", "rotate"]
    assert keyring.history[1]["from"] == first and keyring.history[1]["to"] == second
    assert keyring.public_key_bytes() == created.public_key_bytes()
    assert keyring.identity_id == kdf.identity_id_for(created.public_key_bytes())
    assert all(keyring.has_kek(k) for k in (first, second, third))


def test_create_refuses_existing_keyring_and_bad_names(tmp_path: Path) -> None:
    SiteKeyring.create(tmp_path / "ge", "ge")
    with pytest.raises(KeyringError, match="already exists"):
        SiteKeyring.create(tmp_path / "ge", "ge")
    for bad in ("", "../x", "a b", "x" * 65, "-lead"):
        with pytest.raises(FedcodecError, match="invalid site name"):
            SiteKeyring.create(tmp_path / "bad", bad)


@pytest.mark.parametrize("target", ["kek", "identity", "metadata", "directory"])
def test_open_refuses_group_or_world_access(tmp_path: Path, target: str) -> None:
    keyring = SiteKeyring.create(tmp_path / "ge", "ge")
    path = {
        "kek": keyring.path / f"{keyring.current_kek_id}.key",
        "identity": keyring.path / IDENTITY_FILE,
        "metadata": keyring.path / METADATA_FILE,
        "directory": keyring.path,
    }[target]
    os.chmod(path, 0o755 if target == "directory" else 0o644)
    with pytest.raises(KeyringError) as caught:
        SiteKeyring.open(keyring.path)
    message = str(caught.value)
    assert message.startswith("refusing to use ") and str(path) in message
    assert "lets group or others access it" in message and "chmod" in message
    assert ("treat the key as exposed" in message) == (target in ("kek", "identity"))


def test_open_refuses_symlinked_key_file(tmp_path: Path) -> None:
    keyring = SiteKeyring.create(tmp_path / "ge", "ge")
    kek_path = keyring.path / f"{keyring.current_kek_id}.key"
    moved = tmp_path / "elsewhere.key"
    kek_path.rename(moved)
    kek_path.symlink_to(moved)
    with pytest.raises(KeyringError, match="cannot open KEK file"):
        SiteKeyring.open(keyring.path)


def test_open_detects_damaged_or_swapped_keys(tmp_path: Path) -> None:
    keyring = SiteKeyring.create(tmp_path / "ge", "ge")
    kek_path = keyring.path / f"{keyring.current_kek_id}.key"
    original = kek_path.read_bytes()
    kek_path.write_bytes(bytes(32))
    with pytest.raises(KeyringError, match="does not match its id"):
        SiteKeyring.open(keyring.path)
    kek_path.write_bytes(original)
    identity = keyring.path / IDENTITY_FILE
    identity.write_bytes(os.urandom(32))
    with pytest.raises(KeyringError, match="does not match the keyring's public key"):
        SiteKeyring.open(keyring.path)


def test_open_reports_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="no keyring at .*fedcodec keys init"):
        SiteKeyring.open(tmp_path / "nothing")
    keyring = SiteKeyring.create(tmp_path / "ge", "ge")
    metadata = keyring.path / METADATA_FILE
    metadata.write_text("{not json")
    with pytest.raises(KeyringError, match="not valid JSON"):
        SiteKeyring.open(keyring.path)
    metadata.write_text(json.dumps({"format": "fedcodec-keyring", "version": 1}))
    with pytest.raises(KeyringError, match="is malformed"):
        SiteKeyring.open(keyring.path)


def test_peers_are_pinned(tmp_path: Path) -> None:
    ge = SiteKeyring.create(tmp_path / "ge", "ge")
    philips = SiteKeyring.create(tmp_path / "philips", "philips")
    record = ge.import_peer("philips", philips.public_key_bytes())
    assert record.key_id == philips.identity_id
    assert SiteKeyring.open(ge.path).peers == {"philips": philips.public_key_bytes()}
    impostor = SiteKeyring.create(tmp_path / "impostor", "impostor").public_key_bytes()
    with pytest.raises(FedcodecError, match="pinned to key x25519-"):
        ge.import_peer("philips", impostor)
    ge.import_peer("philips", impostor, replace=True)
    assert SiteKeyring.open(ge.path).peers["philips"] == impostor
    assert [e["event"] for e in ge.history][-2:] == ["import-peer", "replace-peer"]
    with pytest.raises(FedcodecError, match="low-order X25519 point"):
        ge.import_peer("toshiba", bytes(32))
    with pytest.raises(FedcodecError, match="32-byte"):
        ge.import_peer("toshiba", b"short")
    with pytest.raises(FedcodecError, match="peer of itself"):
        ge.import_peer("ge", philips.public_key_bytes())
    with pytest.raises(UnknownNameError, match="unknown peer site 'siemens'"):
        ge.peer_public_key("siemens")


def test_public_key_document(tmp_path: Path) -> None:
    philips = SiteKeyring.create(tmp_path / "philips", "philips")
    text = public_key_document(philips)
    parsed = parse_public_key_document(text)
    assert (parsed.site, parsed.public_key) == ("philips", philips.public_key_bytes())
    document = json.loads(text)
    document["public_key"] = document["public_key"][:-4] + "AAA="
    with pytest.raises(CorruptDataError, match="damaged"):
        parse_public_key_document(json.dumps(document))
    with pytest.raises(CorruptDataError, match="not a valid site public key"):
        parse_public_key_document("[]")


def test_keyring_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDCODEC_HOME", str(tmp_path / "home"))
    with pytest.raises(FedcodecError, match="no keyring under"):
        resolve_keyring_path()
    assert resolve_keyring_path("ge") == tmp_path / "home" / "keys" / "ge"
    SiteKeyring.create(resolve_keyring_path("ge"), "ge")
    assert resolve_keyring_path() == tmp_path / "home" / "keys" / "ge"
    SiteKeyring.create(resolve_keyring_path("philips"), "philips")
    with pytest.raises(FedcodecError, match=r"several keyrings .*\(ge, philips\)"):
        resolve_keyring_path()
    assert resolve_keyring_path(path=tmp_path / "x") == tmp_path / "x"
