"""``fedcodec store``: encrypted round trips, and one clear line for every way it can go wrong."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

import grpc
import pytest
from test_storage_support import make_federation, running_service

from fedcodec.client.cli import main
from fedcodec.server import pki
from fedcodec.shared.crypto import envelope
from fedcodec.shared.rpc import storage_pb2, storage_pb2_grpc


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("client")
    fed = make_federation(base, ("a", "b"))
    with running_service(fed, base / "root") as running:
        yield fed, running


def _args(fed, running, site: str = "a", keyring: str | None = None) -> list[str]:
    return [
        "--service", f"127.0.0.1:{running.port}", "--tls-dir", str(fed.site_tls[site]),
        "--keyring", str(fed.base / f"keyring-{keyring or site}"),
    ]


def _one_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith("fedcodec: error: "), err
    return err[0].removeprefix("fedcodec: error: ")


def test_put_get_ls_rm_round_trip(world, tmp_path: Path, capsys) -> None:
    fed, running = world
    study = tmp_path / "study.fcz"
    study.write_bytes(os.urandom(2_500_000))
    assert main(["store", "put", str(study), *_args(fed, running)]) == 0
    assert "stored a/study.fcz" in capsys.readouterr().out
    out = tmp_path / "back" / "study.fcz"
    assert main(["store", "get", "study.fcz", "-o", str(out), *_args(fed, running)]) == 0
    assert out.read_bytes() == study.read_bytes()
    assert "codec fcz" in capsys.readouterr().out
    assert main(["store", "ls", "--json", *_args(fed, running)[:4]]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(o["owner"], o["object_id"]) for o in listed] == [("a", "study.fcz")]
    assert listed[0]["key_ids"] == [fed.keyrings["a"].current_kek_id]
    assert main(["store", "rm", "study.fcz", *_args(fed, running)[:4]]) == 0
    assert main(["store", "ls", *_args(fed, running)[:4]]) == 0
    assert "study.fcz" not in capsys.readouterr().out.replace("deleted a/study.fcz", "")


def test_share_then_the_peer_downloads_and_decrypts(world, tmp_path: Path, capsys) -> None:
    fed, running = world
    fed.keyrings["a"].import_peer("b", fed.keyrings["b"].public_key_bytes())
    main(["store", "ls", *_args(fed, running, "b")[:4]])  # b connects once
    src = tmp_path / "scan.bin"
    src.write_bytes(b"scan" * 10_000)
    assert main(["store", "put", str(src), "--id", "scan", *_args(fed, running)]) == 0
    assert main(["store", "share", "scan", "--with", "b", *_args(fed, running)]) == 0
    assert "readers now: b" in capsys.readouterr().out
    out = tmp_path / "b-copy.bin"
    args_b = _args(fed, running, "b")
    assert main(["store", "get", "scan", "--owner", "a", "-o", str(out), *args_b]) == 0
    assert out.read_bytes() == src.read_bytes()


def test_wrong_key(world, tmp_path: Path, capsys) -> None:
    fed, running = world
    src = tmp_path / "w.bin"
    src.write_bytes(b"w" * 1000)
    assert main(["store", "put", str(src), *_args(fed, running)]) == 0
    out = tmp_path / "w.out"
    code = main(["store", "get", "w.bin", "-o", str(out), *_args(fed, running, "a", keyring="b")])
    line = _one_error(capsys, code)
    assert line.startswith("wrong key: object 'w.bin' opens only with a:")
    assert not out.exists() and not list(tmp_path.glob(".w.out*"))


def test_keyring_of_another_site_is_refused_on_put(world, tmp_path: Path, capsys) -> None:
    fed, running = world
    src = tmp_path / "k.bin"
    src.write_bytes(b"k")
    code = main(["store", "put", str(src), *_args(fed, running, "a", keyring="b")])
    assert _one_error(capsys, code) == "keyring is for site 'b' but the TLS certificate is for 'a'"


def test_tampered_object(world, tmp_path: Path, capsys) -> None:
    fed, running = world
    blob = bytearray(fed.sealed("a", "tampered", os.urandom(5000)))
    blob[-100] ^= 0x01  # inside the last data frame: the header still parses
    with fed.client("a", running.port) as client:
        client.put_bytes("tampered", bytes(blob))
    out = tmp_path / "t.out"
    code = main(["store", "get", "tampered", "-o", str(out), *_args(fed, running)])
    line = _one_error(capsys, code)
    assert line == "tampered: frame 0 of object 'tampered' fails authentication"
    assert not out.exists() and os.listdir(tmp_path) == []


def test_unknown_object_and_unknown_peer(world, tmp_path: Path, capsys) -> None:
    fed, running = world
    out = str(tmp_path / "x")
    line = _one_error(capsys, main(["store", "get", "nope", "-o", out, *_args(fed, running)]))
    assert line == "no object 'nope' in namespace 'a'"
    line = _one_error(capsys, main(["store", "rm", "nope", *_args(fed, running)[:4]]))
    assert line == "no object 'nope' in namespace 'a'"
    src = tmp_path / "p.bin"
    src.write_bytes(b"p")
    assert main(["store", "put", str(src), *_args(fed, running)]) == 0
    capsys.readouterr()
    code = main(["store", "share", "p.bin", "--with", "zz", *_args(fed, running)])
    line = _one_error(capsys, code)
    assert "unknown peer site 'zz'" in line
    code = main(["store", "get", "p.bin", "--owner", "b", "-o", out, *_args(fed, running)])
    line = _one_error(capsys, code)
    assert line == "permission denied: site 'a' may not read b/p.bin"


def test_expired_certificate(world, tmp_path: Path, capsys) -> None:
    fed, running = world
    expired = tmp_path / "expired-tls"
    now = dt.datetime.now(dt.timezone.utc)
    pki.issue_site(fed.ca_dir, expired, "a", now=now - dt.timedelta(days=400), days=365)
    service = f"127.0.0.1:{running.port}"
    code = main(["store", "ls", "--service", service, "--tls-dir", str(expired)])
    line = _one_error(capsys, code)
    assert line.startswith("the certificate of site 'a' (") and "expired on" in line


def test_unreachable_service(world, capsys) -> None:
    fed, _ = world
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tls = str(fed.site_tls["a"])
    code = main(["store", "ls", "--service", f"127.0.0.1:{port}", "--tls-dir", tls])
    line = _one_error(capsys, code)
    assert line.startswith(f"storage service at 127.0.0.1:{port} is unreachable (")


def test_missing_options_and_files(world, tmp_path: Path, capsys) -> None:
    fed, running = world
    assert _one_error(capsys, main(["store", "ls", "--tls-dir", str(tmp_path)])).startswith(
        "no storage service given"
    )
    code = main(["store", "ls", "--service", "127.0.0.1:1", "--tls-dir", str(tmp_path)])
    line = _one_error(capsys, code)
    assert line.startswith("missing TLS file(s)")
    code = main(["store", "put", str(tmp_path / "absent"), *_args(fed, running)])
    assert _one_error(capsys, code) == f"file not found: {tmp_path / 'absent'}"


def test_decrypted_header_matches_what_was_stored(world, tmp_path: Path) -> None:
    fed, running = world
    with fed.client("a", running.port) as client:
        client.put_bytes("hdr", fed.sealed("a", "hdr", b"h"))
        info, blob = client.get_bytes("hdr")
    header = envelope.read_header(blob)
    assert info.key_ids == header.key_ids and info.algorithm == header.algorithm


def test_rotate_then_rewrap_moves_objects_to_the_new_kek(world, tmp_path: Path, capsys) -> None:
    fed, running = world
    src = tmp_path / "r.bin"
    src.write_bytes(b"rotate me" * 100)
    assert main(["store", "put", str(src), "--id", "rot", *_args(fed, running)]) == 0
    old = fed.keyrings["a"].current_kek_id
    new = fed.keyrings["a"].rotate()
    capsys.readouterr()
    assert main(["store", "rewrap", "--all", *_args(fed, running)]) == 0
    out = capsys.readouterr().out
    assert f"rewrapped a/rot: keys {new}" in out
    with fed.client("a", running.port) as client:
        assert all(old not in o.key_ids for o in client.list())
    back = tmp_path / "r.out"
    assert main(["store", "get", "rot", "-o", str(back), *_args(fed, running)]) == 0
    assert back.read_bytes() == src.read_bytes()


def test_upload_cut_off_by_the_client_leaves_nothing(world) -> None:
    """A client that dies mid-upload: no object, no temporary file, an audited 'cancelled'."""
    fed, running = world
    blob = fed.sealed("a", "cut", os.urandom(2_000_000))
    tls = fed.site_tls["a"]
    creds = grpc.ssl_channel_credentials(
        (tls / "ca.pem").read_bytes(), (tls / "site.key").read_bytes(),
        (tls / "site.pem").read_bytes(),
    )

    def messages():
        digest = hashlib.sha256(blob).digest()
        meta = storage_pb2.PutMetadata(object_id="cut", size=len(blob), sha256=digest)
        yield storage_pb2.PutChunk(metadata=meta)
        yield storage_pb2.PutChunk(data=blob[:1_000_000])
        time.sleep(0.2)
        raise RuntimeError("client crashed")

    with grpc.secure_channel(f"127.0.0.1:{running.port}", creds) as channel:
        with pytest.raises(grpc.RpcError):
            storage_pb2_grpc.StorageStub(channel).Put(messages(), timeout=10)
    log = fed.base / "root" / "audit" / "audit.jsonl"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and '"object_id":"cut"' not in log.read_text():
        time.sleep(0.05)
    entries = [json.loads(line) for line in log.read_text().splitlines() if '"cut"' in line]
    assert [(e["action"], e["site"]) for e in entries] == [("put", "a")]
    # The service sees the cancellation, or (if the stream's end arrives first) a short upload.
    assert entries[0]["outcome"] in ("cancelled", "invalid"), entries[0]
    assert not (fed.base / "root" / "objects" / "a" / "cut").exists()
    assert not list((fed.base / "root" / "objects" / "a").glob(".tmp-*"))


def test_keyring_defaults_to_the_certificate_site_under_fedcodec_home(
    world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    fed, running = world
    home = tmp_path / "home"
    shutil.copytree(fed.base / "keyring-a", home / "keys" / "a")
    monkeypatch.setenv("FEDCODEC_HOME", str(home))
    monkeypatch.delenv("FEDCODEC_KEYRING", raising=False)
    src = tmp_path / "h.bin"
    src.write_bytes(b"home keyring")
    no_keyring = _args(fed, running)[:4]
    assert main(["store", "put", str(src), "--id", "home", *no_keyring]) == 0
    out = tmp_path / "h.out"
    assert main(["store", "get", "home", "-o", str(out), *no_keyring]) == 0
    assert out.read_bytes() == src.read_bytes()
