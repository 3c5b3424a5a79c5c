"""Private keys other users can read are refused; certificates with two Common Names are refused.

The keyring already refused loose modes; the audit found TLS keys at 0644 accepted and a
two-CN certificate read by its first CN. Each key a fedcodec process reads (server, site, CA,
SuperNode) and each place a CN is read is exercised here, through the functions and the CLIs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from test_storage_support import make_federation, running_service

from fedcodec.client.cli import main as client_main
from fedcodec.client.site_tls import check_site_certificate
from fedcodec.server import pki
from fedcodec.server.cli import main as server_main
from fedcodec.server.storage.identity import site_from_auth_context
from fedcodec.server.storage.listener import start_storage_server
from fedcodec.server.tls import server_credentials
from fedcodec.shared.crypto.certificate_names import AmbiguousCommonNameError
from fedcodec.shared.crypto.errors import PrivateKeyFileError
from fedcodec.shared.crypto.private_files import read_private_key_file
from fedcodec.shared.rpc import storage_pb2, storage_pb2_grpc

NOW = dt.datetime.now(dt.timezone.utc)


def _one_line(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_every_kind_of_private_key_is_refused_when_others_can_read_it(
    tmp_path: Path, mode: int, capsys: pytest.CaptureFixture[str]
) -> None:
    fed = make_federation(tmp_path, ("a",))
    site_tls = fed.site_tls["a"]
    for key in (fed.server_tls / "server.key", site_tls / "site.key", fed.ca_dir / "ca.key"):
        key.chmod(mode)
    wanted = f"mode {mode:04o} lets group or others access it; treat the key as exposed"
    with pytest.raises(PrivateKeyFileError, match=f"TLS private key .*server.key: {wanted}"):
        server_credentials(fed.server_tls)
    with pytest.raises(PrivateKeyFileError, match=f"TLS private key .*site.key: {wanted}"):
        check_site_certificate(site_tls)
    with pytest.raises(PrivateKeyFileError, match=f"CA private key .*ca.key: {wanted}"):
        pki.issue_site(fed.ca_dir, tmp_path / "b", "b")
    # the CLIs say it in one line, exit non-zero, and write nothing
    line = _one_line(capsys, server_main(["storage", "serve", "--root", str(tmp_path / "r"),
                                          "--tls-dir", str(fed.server_tls), "--port", "0"]))
    assert "server.key" in line and f"chmod 600 {fed.server_tls / 'server.key'}" in line
    line = _one_line(capsys, client_main(["store", "ls", "--service", "127.0.0.1:1",
                                          "--tls-dir", str(site_tls)]))
    assert "site.key" in line and "lets group or others access it" in line
    line = _one_line(capsys, server_main(["pki", "issue-site", "c", "--ca-dir",
                                          str(fed.ca_dir), "--out", str(tmp_path / "c")]))
    assert "ca.key" in line and not (tmp_path / "c").exists()


def test_owner_only_keys_and_links_to_them_are_accepted(tmp_path: Path) -> None:
    fed = make_federation(tmp_path, ("a",))
    server_credentials(fed.server_tls)
    assert check_site_certificate(fed.site_tls["a"])[0] == "a"
    link = tmp_path / "linked.key"  # secrets mounted through links (Kubernetes) are followed
    link.symlink_to(fed.server_tls / "server.key")
    assert read_private_key_file(link, what="TLS private key").startswith(b"-----BEGIN")
    (fed.server_tls / "server.key").chmod(0o644)
    with pytest.raises(PrivateKeyFileError, match="linked.key: mode 0644"):
        read_private_key_file(link, what="TLS private key")
    with pytest.raises(PrivateKeyFileError, match="is missing"):
        read_private_key_file(tmp_path / "absent.key", what="TLS private key")


def test_supernode_key_is_written_private_and_refused_when_loose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    assert client_main(["join", "keygen", "--keys", str(keys)]) == 0
    capsys.readouterr()
    assert (keys / "supernode.key").stat().st_mode & 0o777 == 0o600
    (keys / "supernode.key").chmod(0o644)
    data = tmp_path / "data"
    data.mkdir()
    line = _one_line(capsys, client_main([
        "join", "--keys", str(keys), "--superlink", "127.0.0.1:1",
        "--root-cert", str(tmp_path / "ca.pem"), "--data-dir", str(data),
        "--state-dir", str(tmp_path / "state"),
    ]))
    assert "SuperNode private key" in line and "mode 0644" in line


def _two_cn_certificate(fed, out: Path, usage: x509.ObjectIdentifier, names: list[str]) -> Path:
    """A leaf signed by the federation's real CA whose subject holds every name as a CN."""
    ca_key = serialization.load_pem_private_key((fed.ca_dir / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((fed.ca_dir / "ca.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, n) for n in names])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        san = x509.SubjectAlternativeName([x509.DNSName("localhost")])
        builder = builder.add_extension(san, critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    out.mkdir(parents=True, exist_ok=True)
    name = "server" if usage == ExtendedKeyUsageOID.SERVER_AUTH else "site"
    (out / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = out / f"{name}.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    (out / "ca.pem").write_bytes((fed.ca_dir / "ca.pem").read_bytes())
    return out


def test_certificate_with_two_common_names_is_refused_everywhere(tmp_path: Path) -> None:
    fed = make_federation(tmp_path, ("a", "b"))
    two = _two_cn_certificate(fed, tmp_path / "two", ExtendedKeyUsageOID.CLIENT_AUTH, ["a", "b"])
    cert = x509.load_pem_x509_certificate((two / "site.pem").read_bytes())
    with pytest.raises(AmbiguousCommonNameError, match=r"2 Common Names \('a', 'b'\)"):
        pki.site_from_certificate(cert)
    with pytest.raises(AmbiguousCommonNameError, match="refusing site certificate"):
        check_site_certificate(two)
    # the service, given the verified peer certificate, refuses the caller
    auth = {"transport_security_type": [b"ssl"], "x509_pem_cert": [(two / "site.pem").read_bytes()]}
    with pytest.raises(Exception, match="2 Common Names"):
        site_from_auth_context(auth)
    one = _two_cn_certificate(fed, tmp_path / "one", ExtendedKeyUsageOID.CLIENT_AUTH, ["a"])
    assert check_site_certificate(one)[0] == "a"
    server = _two_cn_certificate(fed, tmp_path / "srv", ExtendedKeyUsageOID.SERVER_AUTH,
                                 ["localhost", "evil"])
    with pytest.raises(AmbiguousCommonNameError, match="refusing server certificate"):
        start_storage_server(tmp_path / "root", server)


def test_running_service_turns_away_a_two_cn_site(tmp_path: Path) -> None:
    """Over real mutual TLS, bypassing every client-side check: UNAUTHENTICATED, not site 'a'."""
    fed = make_federation(tmp_path, ("a",))
    two = _two_cn_certificate(fed, tmp_path / "two", ExtendedKeyUsageOID.CLIENT_AUTH, ["a", "b"])
    creds = grpc.ssl_channel_credentials((two / "ca.pem").read_bytes(),
                                         (two / "site.key").read_bytes(),
                                         (two / "site.pem").read_bytes())
    with running_service(fed, tmp_path / "root") as running:
        with grpc.secure_channel(f"127.0.0.1:{running.port}", creds) as channel:
            stub = storage_pb2_grpc.StorageStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.List(storage_pb2.ListRequest(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Common Names" in (caught.value.details() or "")
