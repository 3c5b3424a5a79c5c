"""The site's side of mutual TLS: its certificate files, checked, and a channel to a service.

The storage and analysis services share one PKI (``fedcodec-server pki``): a site holds
``TLS_DIR/site.pem`` (CN = site name), ``site.key`` and the CA's ``ca.pem``. The services derive
the caller's site from the certificate, so nothing here sends a site name the server would
trust. The certificate is checked locally before connecting (present, not expired, issued by
``ca.pem``), so the common mistakes get a precise message instead of a bare TLS failure.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from fedcodec.shared.crypto.certificate_names import single_common_name
from fedcodec.shared.crypto.private_files import read_private_key_file
from fedcodec.shared.errors import FedcodecError, UnknownNameError

CA_CERT, SITE_CERT, SITE_KEY = "ca.pem", "site.pem", "site.key"


def check_site_certificate(tls_dir: Path) -> tuple[str, bytes, bytes, bytes]:
    """Read and sanity-check the site's TLS files; return (site, ca, cert, key) PEM bytes."""
    tls_dir = Path(tls_dir)
    paths = {name: tls_dir / name for name in (CA_CERT, SITE_CERT, SITE_KEY)}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise UnknownNameError(
            f"missing TLS file(s) {', '.join(missing)} (the service operator issues them with "
            "`fedcodec-server pki issue-site`)"
        )
    ca_pem, cert_pem = (paths[n].read_bytes() for n in (CA_CERT, SITE_CERT))
    key_pem = read_private_key_file(paths[SITE_KEY], what="TLS private key")
    try:
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise FedcodecError(f"unreadable certificate in {tls_dir}: {exc}") from None
    single_common_name(ca, what=f"CA certificate {paths[CA_CERT]}")
    site = single_common_name(cert, what=f"site certificate {paths[SITE_CERT]}") or "?"
    now = dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc < now:
        raise FedcodecError(
            f"the certificate of site {site!r} ({paths[SITE_CERT]}) expired on "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; ask the service operator for a new one"
        )
    if cert.not_valid_before_utc > now:
        raise FedcodecError(f"the certificate of site {site!r} is not valid before "
                            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise FedcodecError(
            f"the certificate of site {site!r} was not issued by {paths[CA_CERT]} "
            f"({type(exc).__name__})"
        ) from None
    return site, ca_pem, cert_pem, key_pem


def site_channel(service: str, tls_dir: Path, *, max_message_bytes: int) -> tuple[str, grpc.Channel]:
    """(site name, mutual-TLS channel to ``service`` as that site), certificate checked first."""
    site, ca, cert, key = check_site_certificate(tls_dir)
    channel = grpc.secure_channel(
        service,
        grpc.ssl_channel_credentials(ca, key, cert),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )
    return site, channel
