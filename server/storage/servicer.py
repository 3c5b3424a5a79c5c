"""``StorageServicer``: gRPC messages in, :class:`~.service.StorageService` calls, statuses out.

Deliberately thin: identity comes from :mod:`.identity`, every rule from the service; this file
only converts messages and maps each refusal class to its gRPC status code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import grpc

from fedcodec.server.storage import errors
from fedcodec.server.storage.call_guard import CallGuard, GuardedCall
from fedcodec.server.storage.identity import site_of
from fedcodec.server.storage.index import ObjectRecord
from fedcodec.server.storage.service import PutMetadata, StorageService
from fedcodec.shared.crypto.storage_receipt import SignedReceipt
from fedcodec.shared.rpc import storage_pb2, storage_pb2_grpc
from fedcodec.shared.rpc.retry_hint import retry_after_metadata

T = TypeVar("T")

STATUS = {
    errors.AccessDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.ObjectMissing: grpc.StatusCode.NOT_FOUND,
    errors.ObjectExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.InvalidObject: grpc.StatusCode.INVALID_ARGUMENT,
    errors.TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.StoredDataCorrupt: grpc.StatusCode.DATA_LOSS,
    errors.Cancelled: grpc.StatusCode.CANCELLED,
    errors.QuotaExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Stalled: grpc.StatusCode.CANCELLED,
}
RETRY_AFTER_MS = 200
"""Hinted wait of a quota refusal (:mod:`fedcodec.shared.rpc.retry_hint`)."""


def object_info(record: ObjectRecord) -> storage_pb2.ObjectInfo:
    return storage_pb2.ObjectInfo(
        owner=record.site,
        object_id=record.object_id,
        size=record.size,
        sha256=bytes.fromhex(record.sha256),
        key_ids=list(record.key_ids),
        algorithm=record.algorithm,
        format_version=record.format_version,
        created_unix_ms=record.created_ms,
        shared_with=list(record.shared_with),
    )


def receipt_message(signed: SignedReceipt | None) -> storage_pb2.Receipt | None:
    if signed is None:
        return None
    return storage_pb2.Receipt(
        payload=signed.receipt.payload(), signature=signed.signature,
        public_key=signed.public_key,
    )


def _answer(context: grpc.ServicerContext, work: Callable[[], T]) -> T:
    """Run ``work``; turn a refusal or an I/O failure into a gRPC status with a one-line reason."""
    try:
        return work()
    except errors.StorageRefusal as exc:
        context.abort(STATUS.get(type(exc), grpc.StatusCode.UNKNOWN), str(exc))
    except OSError as exc:
        context.abort(grpc.StatusCode.INTERNAL, f"storage I/O error: {exc.strerror or exc}")
    raise AssertionError("unreachable: context.abort raises")


def _messages(
    call: GuardedCall, request_iterator: Iterator[storage_pb2.PutChunk]
) -> Iterator[storage_pb2.PutChunk]:
    """The client's messages, each wait timed by the stall watchdog; a broken stream ends in
    :class:`~.errors.Stalled` (the watchdog cancelled it) or :class:`~.errors.Cancelled`."""
    while True:
        try:
            with call.waiting_on_peer():
                message = next(request_iterator, None)
        except grpc.RpcError:
            message, broken = None, True
        else:
            broken = False
        if call.cancelled_because:  # a cancelled stream may also just end: never a success
            raise errors.Stalled(f"upload cancelled: {call.cancelled_because}")
        if broken:
            raise errors.Cancelled("the client cancelled the upload")
        if message is None:
            return
        yield message


def _data_parts(messages: Iterator[storage_pb2.PutChunk]) -> Iterator[bytes]:
    for message in messages:
        if message.WhichOneof("part") != "data":
            raise errors.InvalidObject("only the first Put message may carry metadata")
        yield message.data


class StorageServicer(storage_pb2_grpc.StorageServicer):
    """The ``fedcodec.storage.v1.Storage`` service over a :class:`StorageService`.

    ``guard`` enforces per-site quotas; its watchdog runs only once started
    (:func:`~.listener.start_storage_server` does both).
    """

    def __init__(self, service: StorageService, guard: CallGuard | None = None) -> None:
        self.service = service
        self.guard = guard if guard is not None else CallGuard(service.limits)

    @contextmanager
    def _admitted(
        self, context: grpc.ServicerContext, site: str, action: str
    ) -> Iterator[GuardedCall]:
        """Hold one of ``site``'s quota slots for the call (RESOURCE_EXHAUSTED when none)."""

        def admit() -> GuardedCall:
            try:
                return self.guard.admit(site, action, context)
            except errors.QuotaExceeded as exc:
                context.set_trailing_metadata(retry_after_metadata(RETRY_AFTER_MS))
                self.service.refuse(site, action, exc)

        call = _answer(context, admit)
        try:
            yield call
        finally:
            self.guard.release(call)

    def _site(self, context: grpc.ServicerContext, action: str) -> str:
        def identify() -> str:
            try:
                return site_of(context)
            except errors.Unauthenticated as exc:
                self.service.refuse("", action, exc)

        return _answer(context, identify)

    def Put(self, request_iterator, context):  # noqa: N802 - gRPC method name
        site = self._site(context, "put")
        with self._admitted(context, site, "put") as call:
            messages = _messages(call, request_iterator)

            def work() -> storage_pb2.PutReply:
                try:
                    first = next(messages, None)
                except errors.StorageRefusal as exc:
                    self.service.refuse(site, "put", exc)
                if first is None or first.WhichOneof("part") != "metadata":
                    self.service.refuse(
                        site, "put",
                        errors.InvalidObject("the first Put message must carry metadata"),
                    )
                m = first.metadata
                meta = PutMetadata(m.object_id, m.namespace, m.size, m.sha256, m.replace)
                record, receipt = self.service.put_receipted(site, meta, _data_parts(messages))
                return storage_pb2.PutReply(
                    object=object_info(record), receipt=receipt_message(receipt)
                )

            return _answer(context, work)

    def Get(self, request, context):  # noqa: N802
        site = self._site(context, "get")
        with self._admitted(context, site, "get") as call:
            record, stream = _answer(
                context, lambda: self.service.get(site, request.owner, request.object_id)
            )
            chunks = iter(stream)
            try:
                with call.waiting_on_peer():  # the stall clock runs while gRPC sends
                    yield storage_pb2.GetChunk(info=object_info(record))
                while (chunk := _answer(context, lambda: next(chunks, None))) is not None:
                    with call.waiting_on_peer():
                        yield storage_pb2.GetChunk(data=chunk)
            finally:
                getattr(chunks, "close", lambda: None)()  # a cancelled call closes the file now

    def List(self, request, context):  # noqa: N802
        site = self._site(context, "list")
        with self._admitted(context, site, "list"):
            return self._list(request, context, site)

    def _list(self, request, context, site: str):  # noqa: ANN001 - gRPC message and context
        page = _answer(
            context,
            lambda: self.service.list(
                site,
                owner=request.owner,
                shared_with_me=request.shared_with_me,
                prefix=request.prefix,
                page_size=request.page_size,
                page_token=request.page_token,
            ),
        )
        return storage_pb2.ListReply(
            objects=[object_info(r) for r in page.records], next_page_token=page.next_token
        )

    def Delete(self, request, context):  # noqa: N802
        site = self._site(context, "delete")
        with self._admitted(context, site, "delete"):
            return self._delete(request, context, site)

    def _delete(self, request, context, site: str):  # noqa: ANN001 - gRPC message and context
        record, receipt = _answer(
            context, lambda: self.service.delete_receipted(site, request.owner, request.object_id)
        )
        return storage_pb2.DeleteReply(object=object_info(record), receipt=receipt_message(receipt))

    def Share(self, request, context):  # noqa: N802
        site = self._site(context, "share")
        with self._admitted(context, site, "share"):
            return self._share(request, context, site)

    def _share(self, request, context, site: str):  # noqa: ANN001 - gRPC message and context
        record = _answer(
            context,
            lambda: self.service.share(
                site, request.object_id, request.grantee, revoke=request.revoke
            ),
        )
        return storage_pb2.ShareReply(object=object_info(record))

    def Head(self, request, context):  # noqa: N802
        site = self._site(context, "head")
        with self._admitted(context, site, "head"):
            seq, entry_hash, signature = _answer(context, lambda: self.service.head(site))
        signer = self.service.signer
        return storage_pb2.HeadReply(
            seq=seq, entry_hash=entry_hash, signature=bytes.fromhex(signature),
            public_key=signer.public_raw if signer else b"",
        )
