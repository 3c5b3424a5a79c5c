"""The one Common Name of a certificate subject, or an error: never "the first of several".

A site's identity is its certificate's CN. A subject with two CNs (``CN=site-a, CN=site-b``) is
read differently by different libraries (first, last, or all), so whoever issued it could make
one component see one site and another component a different one. Every place that reads a CN
goes through :func:`single_common_name`, which refuses such certificates with a one-line error.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from fedcodec.shared.errors import FedcodecError


class AmbiguousCommonNameError(FedcodecError):
    """A certificate subject holds more than one Common Name."""


def single_common_name(cert: x509.Certificate, *, what: str = "certificate") -> str | None:
    """The subject's Common Name (``None`` when it has none); more than one is an error."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) > 1:
        values = ", ".join(repr(str(n.value)) for n in names)
        raise AmbiguousCommonNameError(
            f"refusing {what}: its subject has {len(names)} Common Names ({values}); "
            "a certificate must name exactly one"
        )
    return str(names[0].value) if names else None
