"""Size limits of the storage service, in one place so server, client and tests agree."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class StorageLimits:
    """Bounds that keep one caller from exhausting memory, disk or threads.

    ``chunk_bytes`` is the size of a data message the server sends and the largest it accepts;
    ``max_message_bytes`` is the gRPC message cap (a chunk plus framing), on both sides.
    """

    max_object_bytes: int = 4 * 1024 * MIB
    chunk_bytes: int = 1 * MIB
    max_message_bytes: int = 4 * MIB
    max_list_page: int = 1000
    max_workers: int = 16

    def __post_init__(self) -> None:
        if not 0 < self.chunk_bytes < self.max_message_bytes:
            raise ValueError("chunk_bytes must be positive and below max_message_bytes")
        if self.max_object_bytes <= 0 or self.max_list_page <= 0 or self.max_workers <= 0:
            raise ValueError("storage limits must be positive")
