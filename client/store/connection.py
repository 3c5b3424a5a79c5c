"""``StoreClient``: one mutual-TLS channel to the storage service, errors as one-line messages.

The site's identity is its client certificate (``TLS_DIR/site.pem``, CN = site name, checked by
:mod:`fedcodec.client.site_tls` before connecting); the service derives the namespace from it.
"""

from __future__ import annotations

import hashlib
import io
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

import grpc

from fedcodec.client.site_tls import site_channel
from fedcodec.shared.crypto.storage_receipt import (
    Receipt,
    ReceiptError,
    SignedReceipt,
    verify_head,
)
from fedcodec.shared.errors import CorruptDataError, FedcodecError, UnknownNameError
from fedcodec.shared.rpc import storage_pb2, storage_pb2_grpc
from fedcodec.shared.rpc.retry_hint import retry_after_seconds

MIB = 1024 * 1024
MAX_BACKOFF_SECONDS = 2.0
T = TypeVar("T")


class StoreAccessDenied(FedcodecError):
    """The service refused: this site may not touch that namespace or object."""


class StoreUnavailable(FedcodecError):
    """The service could not be reached, or refused the TLS handshake."""


@dataclass(frozen=True)
class StoredObjectInfo:
    """An object as the service describes it (``sha256`` is hex of the ciphertext)."""

    owner: str
    object_id: str
    size: int
    sha256: str
    key_ids: tuple[str, ...]
    algorithm: str
    format_version: int
    created_unix_ms: int
    shared_with: tuple[str, ...]
    #: The service's signed receipt (puts and deletes of a service that signs; checked).
    receipt: SignedReceipt | None = field(default=None, compare=False)

    @classmethod
    def from_message(
        cls, info: storage_pb2.ObjectInfo, receipt: SignedReceipt | None = None
    ) -> StoredObjectInfo:
        return cls(
            info.owner, info.object_id, info.size, info.sha256.hex(), tuple(info.key_ids),
            info.algorithm, info.format_version, info.created_unix_ms, tuple(info.shared_with),
            receipt,
        )

    def to_json(self) -> dict:
        body = {k: v for k, v in self.__dict__.items() if k != "receipt"}
        return {**body, "key_ids": list(self.key_ids), "shared_with": list(self.shared_with)}


@dataclass(frozen=True)
class SignedHead:
    """The service's audit-log head, its signature checked against the key it came with."""

    seq: int
    entry_hash: str
    public_key: bytes


def checked_receipt(
    message: storage_pb2.Receipt, *, action: str, site: str, object_id: str, sha256: str = ""
) -> SignedReceipt:
    """The receipt in a reply, if its signature verifies and it says what was done."""
    try:
        signed = SignedReceipt(
            Receipt.from_payload(message.payload), message.signature, message.public_key
        )
        receipt = signed.verify()
    except ReceiptError as exc:
        raise ReceiptError(f"storage service sent a bad receipt: {exc}") from None
    said = (receipt.action, receipt.site, receipt.object_id, receipt.sha256 if sha256 else "")
    if said != (action, site, object_id, sha256):
        raise ReceiptError(
            f"storage service's receipt says {receipt.action} {receipt.site}/{receipt.object_id}, "
            f"not {action} {site}/{object_id}" + (" with the sent sha256" if sha256 else "")
        )
    return signed


def rpc_failure(exc: grpc.RpcError, service: str) -> FedcodecError:
    """One-line error for a failed call (``exc`` is a ``grpc.Call``)."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else "") or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        lowered = details.lower()
        if "handshake" in lowered or "certificate" in lowered or "ssl" in lowered:
            return StoreUnavailable(
                f"TLS handshake with the storage service at {service} failed: the server's "
                "certificate is not from this site's ca.pem or does not name this host"
            )
        if "socket closed" in lowered:
            return StoreUnavailable(
                f"the storage service at {service} closed the connection during the TLS "
                "handshake: it does not accept this site's certificate (expired, revoked, or "
                "issued by another CA)"
            )
        return StoreUnavailable(f"storage service at {service} is unreachable ({details})")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return StoreUnavailable(f"storage service at {service} did not answer in time")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return StoreAccessDenied(f"permission denied: {details}")
    if code == grpc.StatusCode.NOT_FOUND:
        return UnknownNameError(details)
    if code == grpc.StatusCode.DATA_LOSS:
        return CorruptDataError(f"storage service reports damaged data: {details}")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return StoreAccessDenied(f"not authenticated: {details}")
    return FedcodecError(f"storage service refused the call ({code.name}): {details}")


class StoreClient:
    """Calls to the storage service as this site; use as a context manager."""

    def __init__(
        self,
        service: str,
        tls_dir: Path,
        *,
        timeout: float = 600.0,
        chunk_bytes: int = 1 * MIB,
        max_message_bytes: int = 4 * MIB,
    ) -> None:
        self.service = service
        self.timeout = timeout
        self.chunk_bytes = chunk_bytes
        self.site, self._channel = site_channel(
            service, Path(tls_dir), max_message_bytes=max_message_bytes
        )
        self._stub = storage_pb2_grpc.StorageStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> StoreClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _fail(self, exc: grpc.RpcError) -> FedcodecError:
        return rpc_failure(exc, self.service)

    def _within_quota(self, call: Callable[[], T], rewind: Callable[[], None] | None = None) -> T:
        """``call()``, retried while the service says this site's quota of calls is in use.

        Only a quota refusal carries the retry hint (:mod:`fedcodec.shared.rpc.retry_hint`) and
        it comes before the service reads anything, so retrying is safe; the wait grows with
        jitter up to ``MAX_BACKOFF_SECONDS`` and stops at this client's ``timeout``.
        """
        give_up = time.monotonic() + self.timeout
        backoff = 0.0
        while True:
            try:
                return call()
            except grpc.RpcError as exc:
                hint = retry_after_seconds(exc)
                if hint is None:
                    raise
                backoff = min(max(hint, backoff * 2), MAX_BACKOFF_SECONDS)
                wait = backoff * random.uniform(0.5, 1.5)
                if time.monotonic() + wait > give_up:
                    raise
                time.sleep(wait)
                if rewind is not None:
                    rewind()

    def put_blob(
        self, object_id: str, source: BinaryIO, size: int, sha256: bytes, *, replace: bool = False
    ) -> StoredObjectInfo:
        """Upload ``size`` ciphertext bytes from ``source``; return the service's record.

        ``replace=True`` swaps in a new version of an existing object whose header differs only
        in its key slots (sharing, KEK rotation); the service refuses anything else.
        """

        # gRPC reads the messages in its own thread, which may still be inside an attempt the
        # service refused when the next one starts: each attempt reads only while it is current.
        current, reading = [0], threading.Lock()

        def messages(attempt: int) -> Iterator[storage_pb2.PutChunk]:
            yield storage_pb2.PutChunk(
                metadata=storage_pb2.PutMetadata(
                    object_id=object_id, size=size, sha256=sha256, replace=replace
                )
            )
            while True:
                with reading:
                    if attempt != current[0]:
                        return
                    chunk = source.read(self.chunk_bytes)
                if not chunk:
                    return
                yield storage_pb2.PutChunk(data=chunk)

        def rewind() -> None:
            with reading:
                current[0] += 1
                source.seek(start)

        start = source.tell() if source.seekable() else None
        try:
            if start is None:
                reply = self._stub.Put(messages(0), timeout=self.timeout)
            else:
                reply = self._within_quota(
                    lambda: self._stub.Put(messages(current[0]), timeout=self.timeout), rewind
                )
        except grpc.RpcError as exc:
            raise self._fail(exc) from None
        receipt = None
        if reply.HasField("receipt"):
            receipt = checked_receipt(
                reply.receipt, action="replace" if replace else "put", site=self.site,
                object_id=object_id, sha256=sha256.hex(),
            )
        return StoredObjectInfo.from_message(reply.object, receipt)

    def put_bytes(self, object_id: str, blob: bytes) -> StoredObjectInfo:
        """Upload ciphertext already in memory."""
        return self.put_blob(object_id, io.BytesIO(blob), len(blob), hashlib.sha256(blob).digest())

    def get_blob(self, object_id: str, owner: str = "") -> tuple[StoredObjectInfo, Iterator[bytes]]:
        """The object's record and its ciphertext as a stream of chunks.

        The stream checks size and SHA-256 against the record as it ends and raises
        :class:`CorruptDataError` on a mismatch, so a caller that consumes it fully has either
        the exact stored bytes or an error.
        """

        def started() -> tuple[grpc.Call, storage_pb2.GetChunk | None]:
            call = self._stub.Get(
                storage_pb2.GetRequest(owner=owner, object_id=object_id), timeout=self.timeout
            )
            return call, next(call, None)

        try:
            call, first = self._within_quota(started)
        except grpc.RpcError as exc:
            raise self._fail(exc) from None
        if first is None:
            raise CorruptDataError(f"storage service sent nothing for {object_id!r}")
        if first.WhichOneof("part") != "info":
            call.cancel()
            raise CorruptDataError("storage service did not start the download with its record")
        info = StoredObjectInfo.from_message(first.info)
        return info, self._verified(call, info)

    def _verified(self, call: grpc.Call, info: StoredObjectInfo) -> Iterator[bytes]:
        digest, received, finished = hashlib.sha256(), 0, False
        try:
            for message in call:
                chunk = message.data
                digest.update(chunk)
                received += len(chunk)
                yield chunk
            finished = True
        except grpc.RpcError as exc:
            raise self._fail(exc) from None
        finally:
            if not finished:
                call.cancel()  # the caller stopped early (or failed): free the stream
        if received != info.size or digest.hexdigest() != info.sha256:
            raise CorruptDataError(
                f"download of {info.owner}/{info.object_id} is incomplete or altered in transit "
                f"({received} of {info.size} bytes, hash "
                f"{'ok' if digest.hexdigest() == info.sha256 else 'mismatch'})"
            )

    def get_bytes(self, object_id: str, owner: str = "") -> tuple[StoredObjectInfo, bytes]:
        info, chunks = self.get_blob(object_id, owner)
        return info, b"".join(chunks)

    def list(
        self, *, shared_with_me: bool = False, prefix: str = "", owner: str = ""
    ) -> list[StoredObjectInfo]:
        """Every object of this site (or shared with it), following pages."""
        found: list[StoredObjectInfo] = []
        token = ""
        while True:
            try:
                request = storage_pb2.ListRequest(
                    owner=owner, shared_with_me=shared_with_me, prefix=prefix, page_token=token
                )
                reply = self._within_quota(
                    lambda request=request: self._stub.List(request, timeout=self.timeout)
                )
            except grpc.RpcError as exc:
                raise self._fail(exc) from None
            found += [StoredObjectInfo.from_message(o) for o in reply.objects]
            token = reply.next_page_token
            if not token:
                return found

    def delete(self, object_id: str, owner: str = "") -> StoredObjectInfo:
        try:
            request = storage_pb2.DeleteRequest(object_id=object_id, owner=owner)
            reply = self._within_quota(lambda: self._stub.Delete(request, timeout=self.timeout))
        except grpc.RpcError as exc:
            raise self._fail(exc) from None
        receipt = None
        if reply.HasField("receipt"):
            receipt = checked_receipt(
                reply.receipt, action="delete", site=self.site, object_id=object_id
            )
        return StoredObjectInfo.from_message(reply.object, receipt)

    def head(self) -> SignedHead:
        """The service's signed audit-log head (signature checked; pin ``public_key``)."""
        try:
            reply = self._stub.Head(storage_pb2.HeadRequest(), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise self._fail(exc) from None
        if not reply.signature:
            raise ReceiptError("storage service does not sign its audit head")
        verify_head(reply.public_key, reply.seq, reply.entry_hash, reply.signature)
        return SignedHead(reply.seq, reply.entry_hash, reply.public_key)

    def share(self, object_id: str, grantee: str, *, revoke: bool = False) -> StoredObjectInfo:
        try:
            request = storage_pb2.ShareRequest(object_id=object_id, grantee=grantee, revoke=revoke)
            reply = self._within_quota(lambda: self._stub.Share(request, timeout=self.timeout))
        except grpc.RpcError as exc:
            raise self._fail(exc) from None
        return StoredObjectInfo.from_message(reply.object)
