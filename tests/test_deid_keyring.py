"""The de-identification key lives in the site keyring: made with it, kept through rotation,
checked like the other keys, importable from a legacy key file, and stable across runs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pydicom
import pytest

from fedcodec.client.cli import main as fedcodec_main
from fedcodec.shared.crypto import kdf
from fedcodec.shared.crypto.errors import KeyringError
from fedcodec.shared.crypto.keyring import DEID_KEY_FILE, METADATA_FILE, SiteKeyring
from fedcodec.shared.deid import UidMapper

PYDICOM_DATA = Path(pydicom.__file__).parents[1] / "data_store" / "data"
SOURCES = ("MR2_UNCR.dcm", "emri_small.dcm")


def _study(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in SOURCES:
        shutil.copy(PYDICOM_DATA / name, folder / name)
    return folder


def _uids(folder: Path) -> dict[str, tuple[str, str, str]]:
    """Per source file (by its pixel bytes' length): the new Study, Series and SOP UIDs."""
    found = {}
    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        found[str(ds.Rows) + "x" + str(ds.get("NumberOfFrames", 1))] = (
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    return found


def _legacy(keyring: SiteKeyring) -> None:
    """Make ``keyring`` look like one made before de-identification keys existed."""
    metadata = json.loads((keyring.path / METADATA_FILE).read_text())
    del metadata["deid"]
    (keyring.path / METADATA_FILE).write_text(json.dumps(metadata))
    (keyring.path / DEID_KEY_FILE).unlink()


def test_keyring_holds_a_deid_key_that_rotation_keeps(tmp_path: Path) -> None:
    keyring = SiteKeyring.create(tmp_path / "a", "site-a")
    key = keyring.deid_key_bytes()
    assert len(key) == 32 and keyring.deid_key_id == kdf.deid_key_id_for(key)
    assert (keyring.path / DEID_KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert key.hex() not in (keyring.path / METADATA_FILE).read_text()
    keyring.rotate()
    reopened = SiteKeyring.open(keyring.path)
    assert reopened.deid_key_bytes() == key and reopened.deid_key_id == keyring.deid_key_id
    with pytest.raises(KeyringError, match="never replaced"):
        reopened.add_deid_key()
    other = SiteKeyring.create(tmp_path / "b", "site-b")
    assert other.deid_key_bytes() != key


def test_deid_key_file_is_checked_like_the_other_keys(tmp_path: Path) -> None:
    keyring = SiteKeyring.create(tmp_path / "a", "site-a")
    path = keyring.path / DEID_KEY_FILE
    os.chmod(path, 0o644)
    with pytest.raises(KeyringError, match="chmod"):
        SiteKeyring.open(keyring.path)
    os.chmod(path, 0o600)
    path.write_bytes(os.urandom(32))
    with pytest.raises(KeyringError, match="does not match its id"):
        SiteKeyring.open(keyring.path)


def test_legacy_keyring_gets_a_key_or_imports_the_old_file(tmp_path: Path) -> None:
    keyring = SiteKeyring.create(tmp_path / "a", "site-a")
    _legacy(keyring)
    old = SiteKeyring.open(keyring.path)
    assert old.deid_key_id is None
    with pytest.raises(KeyringError, match="fedcodec keys add-deid-key"):
        old.deid_key_bytes()
    legacy_key = os.urandom(32)
    legacy_file = tmp_path / "deid.key"
    legacy_file.write_text(legacy_key.hex() + "\n")
    os.chmod(legacy_file, 0o600)
    key_id = old.add_deid_key(legacy_file)
    reopened = SiteKeyring.open(keyring.path)
    assert reopened.deid_key_bytes() == legacy_key and reopened.deid_key_id == key_id
    assert reopened.history[-1]["event"] == "import-deid-key"
    # the imported key maps exactly as the old key file did
    uid = "1.2.840.113619.2.55.3.1"
    assert UidMapper(reopened.deid_key_bytes()).map_uid(uid) == UidMapper(legacy_key).map_uid(uid)


def test_legacy_key_file_must_be_private_and_long_enough(tmp_path: Path) -> None:
    keyring = SiteKeyring.create(tmp_path / "a", "site-a")
    _legacy(keyring)
    short = tmp_path / "short.key"
    short.write_text("ab" * 16)
    os.chmod(short, 0o600)
    with pytest.raises(KeyringError, match="holds 16 bytes"):
        keyring.add_deid_key(short)
    loose = tmp_path / "loose.key"
    loose.write_text("ab" * 32)
    os.chmod(loose, 0o644)
    with pytest.raises(KeyringError, match="chmod"):
        keyring.add_deid_key(loose)
    assert SiteKeyring.open(keyring.path).deid_key_id is None


def test_deid_cli_maps_uids_the_same_way_every_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("FEDCODEC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FEDCODEC_KEYRING", raising=False)
    study = _study(tmp_path / "study")
    assert fedcodec_main(["keys", "init", "--site", "site-a"]) == 0
    for out in ("run1", "run2"):  # the only keyring under $FEDCODEC_HOME/keys is found
        assert fedcodec_main(["deid", str(study), "-o", str(tmp_path / out), "--quiet"]) == 0
    assert fedcodec_main(["keys", "rotate", "--site", "site-a"]) == 0
    assert fedcodec_main(["deid", str(study), "-o", str(tmp_path / "run3"), "--quiet",
                          "--site", "site-a"]) == 0
    first = _uids(tmp_path / "run1")
    assert len(first) == len(SOURCES)
    assert first == _uids(tmp_path / "run2") == _uids(tmp_path / "run3")
    originals = {pydicom.dcmread(study / n).SOPInstanceUID for n in SOURCES}
    assert not originals & {uid for uids in first.values() for uid in uids}

    assert fedcodec_main(["keys", "init", "--site", "site-b"]) == 0
    assert fedcodec_main(["deid", str(study), "-o", str(tmp_path / "x"), "--quiet"]) == 2
    assert "several keyrings" in capsys.readouterr().err
    assert fedcodec_main(["deid", str(study), "-o", str(tmp_path / "b"), "--quiet",
                          "--site", "site-b"]) == 0
    other = _uids(tmp_path / "b")
    assert all(other[k] != first[k] for k in first)  # another site's key, other UIDs


def test_keys_list_and_add_deid_key_cli(tmp_path: Path, capsys) -> None:
    keyring = tmp_path / "keys" / "site-a"
    assert fedcodec_main(["keys", "init", "--site", "site-a", "--keyring", str(keyring)]) == 0
    key_id = SiteKeyring.open(keyring).deid_key_id
    assert f"de-id key     {key_id}" in capsys.readouterr().out
    assert fedcodec_main(["keys", "list", "--keyring", str(keyring)]) == 0
    assert f"de-identification: {key_id}" in capsys.readouterr().out
    _legacy(SiteKeyring.open(keyring))
    assert fedcodec_main(["keys", "add-deid-key", "--keyring", str(keyring)]) == 0
    assert "de-identification key deid-" in capsys.readouterr().out
    assert fedcodec_main(["keys", "add-deid-key", "--keyring", str(keyring)]) == 2
    assert "never replaced" in capsys.readouterr().err
