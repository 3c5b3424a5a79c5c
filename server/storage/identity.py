"""The caller's site, from the client certificate TLS already verified — never from a request.

gRPC puts the verified peer certificate in the call's auth context (``x509_pem_cert``); the
site is its Common Name, accepted only for a certificate with the clientAuth usage (see
:func:`fedcodec.server.pki.site_from_certificate`).
"""

from __future__ import annotations

import grpc
from cryptography import x509

from fedcodec.server.pki import site_from_certificate
from fedcodec.server.storage.errors import Unauthenticated
from fedcodec.shared.errors import FedcodecError


def site_from_auth_context(auth: dict[str, list[bytes]]) -> str:
    """The site named by the verified client certificate in a gRPC auth context."""
    if auth.get("transport_security_type") != [b"ssl"]:
        raise Unauthenticated("the storage service requires mutual TLS")
    pems = auth.get("x509_pem_cert")
    if not pems:
        raise Unauthenticated("no client certificate presented")
    try:
        cert = x509.load_pem_x509_certificate(pems[0])
        return site_from_certificate(cert)
    except (ValueError, FedcodecError) as exc:
        raise Unauthenticated(f"unusable client certificate: {exc}") from None


def site_of(context: grpc.ServicerContext) -> str:
    """The calling site of a gRPC call."""
    return site_from_auth_context(context.auth_context())
