"""``fedcodec keys ...``: the keyring commands end to end, and that no secret is ever printed."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from fedcodec.client.cli import main
from fedcodec.shared.crypto.envelope import decrypt_bytes, encrypt_bytes, replace_header, share
from fedcodec.shared.crypto.keyring import SiteKeyring


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FEDCODEC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _secrets(directory: Path) -> list[str]:
    """Every secret key in a keyring, in the spellings that could leak (hex, base64)."""
    found = []
    for path in directory.glob("*.key"):
        raw = path.read_bytes()
        found += [raw.hex(), base64.b64encode(raw).decode()]
    return found


def test_keys_workflow(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["keys", "init", "--site", "ge"]) == 0
    assert main(["keys", "init", "--site", "philips"]) == 0
    assert main(["keys", "rotate", "--site", "ge"]) == 0
    exported = tmp_path / "philips.pub.json"
    assert main(["keys", "export-public", "--site", "philips", "-o", str(exported)]) == 0
    assert main(["keys", "import-peer", "--site", "ge", str(exported)]) == 0
    assert main(["keys", "list", "--site", "ge"]) == 0
    assert main(["keys", "export-public", "--site", "ge"]) == 0
    out = capsys.readouterr().out

    ge = SiteKeyring.open(home / "keys" / "ge")
    philips = SiteKeyring.open(home / "keys" / "philips")
    assert f"current KEK is now {ge.current_kek_id}" in out
    assert f"{ge.kek_ids[0]}  retired" in out and f"{ge.kek_ids[1]}  current" in out
    assert f"pinned peer philips key {philips.identity_id}" in out
    assert ge.peers == {"philips": philips.public_key_bytes()}
    assert base64.b64encode(ge.public_key_bytes()).decode() in out  # public part only
    for secret in _secrets(ge.path) + _secrets(philips.path):
        assert secret not in out

    blob = encrypt_bytes(b"study", ge, object_id="s1", codec="raw")
    shared = replace_header(blob, share(blob, ge, "philips"))
    assert decrypt_bytes(shared, philips)[1] == b"study"


def test_keys_errors_are_one_line(home: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["keys", "list"]) == 2
    assert "no keyring under" in capsys.readouterr().err
    assert main(["keys", "init"]) == 2
    assert "keys init needs --site NAME" in capsys.readouterr().err
    assert main(["keys", "init", "--site", "ge"]) == 0
    assert main(["keys", "init", "--site", "ge"]) == 2
    assert "already exists" in capsys.readouterr().err
    kek = next((home / "keys" / "ge").glob("kek-*.key"))
    os.chmod(kek, 0o644)
    assert main(["keys", "rotate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing to use KEK file" in err and "chmod 600" in err
    os.chmod(kek, 0o600)
    bogus = home / "bogus.json"
    bogus.write_text('{"format": "something else"}')
    assert main(["keys", "import-peer", str(bogus)]) == 2
    assert "is not a valid site public key" in capsys.readouterr().err
