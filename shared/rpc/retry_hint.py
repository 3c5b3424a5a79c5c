"""The storage service's "retry later" hint, shared by the service that sets it and the client
that honours it (so neither side imports the other).

A call refused because the site already runs its whole quota of calls is answered
RESOURCE_EXHAUSTED with trailing metadata ``fedcodec-retry-after-ms``. It is sent only for that
refusal, which happens before the call reads anything, so a retry is always safe; other
RESOURCE_EXHAUSTED answers (object too large, server-wide call cap) carry no hint and are final.
"""

from __future__ import annotations

import grpc

RETRY_AFTER_KEY = "fedcodec-retry-after-ms"


def retry_after_metadata(milliseconds: int) -> tuple[tuple[str, str], ...]:
    """Trailing metadata that tells the client to retry after ``milliseconds``."""
    return ((RETRY_AFTER_KEY, str(int(milliseconds))),)


def retry_after_seconds(exc: grpc.RpcError) -> float | None:
    """The hinted wait of a quota refusal, or ``None`` when ``exc`` is not one."""
    if not hasattr(exc, "code") or exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    for key, value in exc.trailing_metadata() or ():
        if key == RETRY_AFTER_KEY:
            try:
                return max(int(value), 0) / 1000
            except ValueError:
                return None
    return None
