"""Why the storage service refused a call: one class per gRPC status the servicer returns.

Plain exceptions (not gRPC types) so :class:`~.service.StorageService` can be tested without a
network; :mod:`.servicer` maps each to its status code, the audit log records ``outcome``.
"""

from __future__ import annotations

from fedcodec.shared.errors import FedcodecError


class StorageRefusal(FedcodecError):
    """A call the service refused; ``outcome`` is what the audit log records."""

    outcome = "error"


class AccessDenied(StorageRefusal):
    """The caller's site may not touch that namespace or object (PERMISSION_DENIED)."""

    outcome = "denied"


class Unauthenticated(StorageRefusal):
    """No usable site identity in the client certificate (UNAUTHENTICATED)."""

    outcome = "unauthenticated"


class ObjectMissing(StorageRefusal):
    """No such object in the caller's own namespace, or no such site (NOT_FOUND)."""

    outcome = "not_found"


class ObjectExists(StorageRefusal):
    """Objects are immutable: an id is written once (ALREADY_EXISTS)."""

    outcome = "already_exists"


class InvalidObject(StorageRefusal):
    """Bad id, size or hash mismatch, or not a well-formed encrypted object (INVALID_ARGUMENT)."""

    outcome = "invalid"


class TooLarge(StorageRefusal):
    """Over a configured limit (RESOURCE_EXHAUSTED)."""

    outcome = "too_large"


class StoredDataCorrupt(StorageRefusal):
    """A stored object no longer matches its recorded hash (DATA_LOSS)."""

    outcome = "data_loss"


class Cancelled(StorageRefusal):
    """The client went away in the middle of an upload (CANCELLED); nothing was stored."""

    outcome = "cancelled"


class QuotaExceeded(StorageRefusal):
    """The site already runs as many calls as its quota allows (RESOURCE_EXHAUSTED).

    Refused before the call reads anything, so retrying later is always safe.
    """

    outcome = "over_quota"


class Stalled(StorageRefusal):
    """The peer sent or took nothing for too long, or the call outlived its deadline; the
    service cancelled it and nothing was stored (the client sees CANCELLED)."""

    outcome = "stalled"
