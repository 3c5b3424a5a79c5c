"""A small certificate authority for the storage service's mutual TLS.

Why a CA of our own: the storage service must know *which site* is calling without trusting any
request field, so every site gets a client certificate whose Common Name is its site name, signed
by one CA the service trusts. The service's own certificate (SAN ``localhost``/``127.0.0.1`` by
default) is signed by the same CA, so a site needs just one file, ``ca.pem``, to check the server.

Each ``issue_*`` call writes a self-contained TLS folder (``ca.pem`` + certificate + key) that is
what ``fedcodec-server storage serve --tls-dir`` and ``fedcodec store --tls-dir`` read. Private
keys are written with mode 0600 via a temporary file and a rename, and never overwritten unless
asked.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fedcodec.shared.atomic_files import write_atomic
from fedcodec.shared.crypto.certificate_names import single_common_name
from fedcodec.shared.crypto.private_files import read_private_key_file
from fedcodec.shared.errors import FedcodecError, UnknownNameError

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
SERVER_CERT = "server.pem"
SERVER_KEY = "server.key"
SITE_CERT = "site.pem"
SITE_KEY = "site.key"

#: Site names become folder names on the server and CNs in certificates: keep them boring.
SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_CLOCK_SKEW = dt.timedelta(minutes=5)


def check_site_name(site: str) -> str:
    """Return ``site`` if it is a valid site name, else raise a one-line error."""
    if not SITE_NAME.match(site):
        raise FedcodecError(
            f"invalid site name {site!r}: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return site


@dataclass(frozen=True)
class IssuedCertificate:
    """Where an issued certificate and its key were written, and until when it is valid."""

    cert_path: Path
    key_path: Path
    subject: str
    not_valid_after: dt.datetime


def _now(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.timezone.utc)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    write_atomic(path, data, mode=mode)


def _refuse_overwrite(paths: list[Path], force: bool) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise FedcodecError(f"refusing to overwrite {', '.join(existing)} (pass --force)")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_certificate(path: Path) -> x509.Certificate:
    """Parse a PEM certificate, with a one-line error when it is missing or not a certificate."""
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except FileNotFoundError:
        raise UnknownNameError(f"certificate not found: {path}") from None
    except ValueError as exc:
        raise FedcodecError(f"not a PEM certificate: {path} ({exc})") from None


def _load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = load_certificate(ca_dir / CA_CERT)
    key_path = ca_dir / CA_KEY
    if not key_path.exists():
        raise UnknownNameError(f"CA key not found: {key_path} (run `fedcodec-server pki init-ca`)")
    key_pem = read_private_key_file(key_path, what="CA private key")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise FedcodecError(f"unreadable CA private key {key_path}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise FedcodecError(f"unsupported CA key type in {key_path}")
    return cert, key


def common_name(cert: x509.Certificate) -> str | None:
    """The certificate's subject CN, or None; a subject with several CNs is refused."""
    return single_common_name(cert)


def init_ca(
    ca_dir: Path,
    *,
    name: str = "fedcodec storage CA",
    days: int = 3650,
    now: dt.datetime | None = None,
    force: bool = False,
) -> IssuedCertificate:
    """Create a CA key and self-signed certificate in ``ca_dir`` (``ca.pem``, ``ca.key``)."""
    ca_dir = Path(ca_dir)
    cert_path, key_path = ca_dir / CA_CERT, ca_dir / CA_KEY
    _refuse_overwrite([cert_path, key_path], force)
    start = _now(now)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - _CLOCK_SKEW)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_atomic(key_path, _key_pem(key), 0o600)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return IssuedCertificate(cert_path, key_path, name, cert.not_valid_after_utc)


def _issue_leaf(
    ca_dir: Path,
    out_dir: Path,
    *,
    cn: str,
    usage: x509.ObjectIdentifier,
    san: list[x509.GeneralName],
    cert_name: str,
    key_name: str,
    days: int,
    now: dt.datetime | None,
    force: bool,
) -> IssuedCertificate:
    ca_dir, out_dir = Path(ca_dir), Path(out_dir)
    ca_cert, ca_key = _load_ca(ca_dir)
    cert_path, key_path = out_dir / cert_name, out_dir / key_name
    _refuse_overwrite([cert_path, key_path], force)
    start = _now(now)
    end = start + dt.timedelta(days=days)
    if end > ca_cert.not_valid_after_utc:
        end = ca_cert.not_valid_after_utc
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - _CLOCK_SKEW)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_atomic(key_path, _key_pem(key), 0o600)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write_atomic(out_dir / CA_CERT, (ca_dir / CA_CERT).read_bytes(), 0o644)
    return IssuedCertificate(cert_path, key_path, cn, cert.not_valid_after_utc)


def issue_server(
    ca_dir: Path,
    out_dir: Path,
    *,
    hosts: tuple[str, ...] = ("localhost",),
    ips: tuple[str, ...] = ("127.0.0.1",),
    days: int = 825,
    now: dt.datetime | None = None,
    force: bool = False,
) -> IssuedCertificate:
    """Write ``server.pem``/``server.key``/``ca.pem`` for the storage service into ``out_dir``."""
    san: list[x509.GeneralName] = [x509.DNSName(h) for h in hosts]
    try:
        san += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    except ValueError as exc:
        raise FedcodecError(f"invalid IP address for the server certificate: {exc}") from None
    if not san:
        raise FedcodecError("a server certificate needs at least one host name or IP address")
    cn = hosts[0] if hosts else ips[0]
    return _issue_leaf(
        ca_dir,
        out_dir,
        cn=cn,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        san=san,
        cert_name=SERVER_CERT,
        key_name=SERVER_KEY,
        days=days,
        now=now,
        force=force,
    )


def issue_site(
    ca_dir: Path,
    out_dir: Path,
    site: str,
    *,
    days: int = 365,
    now: dt.datetime | None = None,
    force: bool = False,
) -> IssuedCertificate:
    """Write a client certificate with CN = ``site`` (``site.pem``/``site.key``/``ca.pem``)."""
    check_site_name(site)
    return _issue_leaf(
        ca_dir,
        out_dir,
        cn=site,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        san=[],
        cert_name=SITE_CERT,
        key_name=SITE_KEY,
        days=days,
        now=now,
        force=force,
    )


def site_from_certificate(cert: x509.Certificate) -> str:
    """The site a verified client certificate speaks for: its CN, if it is a client certificate.

    TLS has already checked the chain and validity; this refuses certificates that are not meant
    for clients (the server's own certificate, for example) and CNs that are not site names.
    """
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is None or ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise FedcodecError("client certificate is not a site certificate (no clientAuth usage)")
    cn = common_name(cert)
    if cn is None:
        raise FedcodecError("client certificate has no Common Name (site name)")
    return check_site_name(cn)
