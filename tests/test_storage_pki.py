"""PKI for the storage service: what is issued, and which certificates the service turns away."""

from __future__ import annotations

import datetime as dt
import shutil
import stat
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from test_storage_support import make_federation, running_service

from fedcodec.client.store.connection import StoreClient, StoreUnavailable
from fedcodec.server import pki
from fedcodec.server.cli import main as server_main
from fedcodec.server.storage.listener import start_storage_server
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.rpc import storage_pb2, storage_pb2_grpc

NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("pki")
    fed = make_federation(base, ("a",))
    with running_service(fed, base / "root") as running:
        yield fed, running


def _list_with(tls: Path, cert: str, key: str, port: int) -> grpc.StatusCode:
    """Call List with an arbitrary certificate, bypassing every client-side check."""
    creds = grpc.ssl_channel_credentials(
        (tls / "ca.pem").read_bytes(), (tls / key).read_bytes(), (tls / cert).read_bytes()
    )
    with grpc.secure_channel(f"127.0.0.1:{port}", creds) as channel:
        try:
            storage_pb2_grpc.StorageStub(channel).List(storage_pb2.ListRequest(), timeout=10)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def test_issued_certificates_say_who_they_are(tmp_path: Path) -> None:
    fed = make_federation(tmp_path, ("hospital-a",))
    site = x509.load_pem_x509_certificate((fed.site_tls["hospital-a"] / "site.pem").read_bytes())
    assert pki.site_from_certificate(site) == "hospital-a"
    usages = site.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    server = x509.load_pem_x509_certificate((fed.server_tls / "server.pem").read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    for key in (fed.ca_dir / "ca.key", fed.server_tls / "server.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    with pytest.raises(FedcodecError, match="refusing to overwrite"):
        pki.issue_site(fed.ca_dir, fed.site_tls["hospital-a"], "hospital-a")
    with pytest.raises(FedcodecError, match="invalid site name 'Bad/Name'"):
        pki.issue_site(fed.ca_dir, tmp_path / "bad", "Bad/Name")
    with pytest.raises(FedcodecError, match="not a site certificate"):
        pki.site_from_certificate(server)


def test_expired_site_certificate_is_rejected(world, tmp_path: Path) -> None:
    fed, running = world
    expired = tmp_path / "expired"
    pki.issue_site(fed.ca_dir, expired, "a", now=NOW - dt.timedelta(days=30), days=1)
    assert _list_with(expired, "site.pem", "site.key", running.port) == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(FedcodecError, match=r"the certificate of site 'a' .* expired on"):
        StoreClient(f"127.0.0.1:{running.port}", expired)
    assert _list_with(fed.site_tls["a"], "site.pem", "site.key", running.port) == grpc.StatusCode.OK


def test_certificate_from_another_ca_is_rejected(world, tmp_path: Path) -> None:
    fed, running = world
    pki.init_ca(tmp_path / "rogue-ca")
    rogue = tmp_path / "rogue"
    pki.issue_site(tmp_path / "rogue-ca", rogue, "a")
    shutil.copy(fed.ca_dir / "ca.pem", rogue / "ca.pem")  # trusts the real server, but ...
    assert _list_with(rogue, "site.pem", "site.key", running.port) == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(FedcodecError, match=r"certificate of site 'a' was not issued by .*ca.pem"):
        StoreClient(f"127.0.0.1:{running.port}", rogue)


def test_site_enrolled_with_the_wrong_ca_gets_a_clear_message(tmp_path: Path) -> None:
    """Locally consistent TLS files the service does not trust: the handshake error is named."""
    fed = make_federation(tmp_path / "real", ("a",))
    pki.init_ca(tmp_path / "other-ca")
    pki.issue_site(tmp_path / "other-ca", tmp_path / "site", "a")
    server_tls = tmp_path / "server-tls"
    pki.issue_server(tmp_path / "other-ca", server_tls)  # the site can verify this server ...
    shutil.copy(fed.ca_dir / "ca.pem", server_tls / "ca.pem")  # ... which trusts only the real CA
    running = start_storage_server(tmp_path / "root", server_tls)
    try:
        with StoreClient(f"127.0.0.1:{running.port}", tmp_path / "site", timeout=10) as client:
            with pytest.raises(StoreUnavailable, match="does not accept this site's certificate"):
                client.list()
    finally:
        running.stop(grace=0.5)


def test_server_certificate_cannot_pose_as_a_site(world) -> None:
    """TLS refuses it (serverAuth-only purpose); site_from_certificate would refuse it too."""
    fed, running = world
    code = _list_with(fed.server_tls, "server.pem", "server.key", running.port)
    assert code == grpc.StatusCode.UNAVAILABLE


def test_expired_server_certificate_stops_startup(tmp_path: Path) -> None:
    fed = make_federation(tmp_path, ())
    old = tmp_path / "old-server"
    pki.issue_server(fed.ca_dir, old, now=NOW - dt.timedelta(days=30), days=1)
    with pytest.raises(FedcodecError, match="server certificate .* expired on"):
        start_storage_server(tmp_path / "root", old)


def test_pki_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = str(tmp_path / "ca")
    assert server_main(["pki", "init-ca", "--ca-dir", ca]) == 0
    assert server_main(["pki", "issue-server", "--ca-dir", ca, "--out", str(tmp_path / "s")]) == 0
    site = ["pki", "issue-site", "ge", "--ca-dir", ca, "--out", str(tmp_path / "g")]
    assert server_main(site) == 0
    out = capsys.readouterr().out
    assert "ge: " in out and "valid until" in out
    assert server_main(site) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
