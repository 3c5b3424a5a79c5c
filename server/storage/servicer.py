"""``StorageServicer``: gRPC messages in, :class:`~.service.StorageService` calls, statuses out.

Deliberately thin: identity comes from :mod:`.identity`, every rule from the service; this file
only converts messages and maps each refusal class to its gRPC status code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc

from fedcodec.server.storage import errors
from fedcodec.server.storage.identity import site_of
from fedcodec.server.storage.index import ObjectRecord
from fedcodec.server.storage.service import PutMetadata, StorageService
from fedcodec.shared.crypto.storage_receipt import SignedReceipt
from fedcodec.shared.rpc import storage_pb2, storage_pb2_grpc

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
}


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


def _data_parts(messages: Iterator[storage_pb2.PutChunk]) -> Iterator[bytes]:
    try:
        for message in messages:
            if message.WhichOneof("part") != "data":
                raise errors.InvalidObject("only the first Put message may carry metadata")
            yield message.data
    except grpc.RpcError:
        raise errors.Cancelled("the client cancelled the upload") from None


class StorageServicer(storage_pb2_grpc.StorageServicer):
    """The ``fedcodec.storage.v1.Storage`` service over a :class:`StorageService`."""

    def __init__(self, service: StorageService) -> None:
        self.service = service

    def _site(self, context: grpc.ServicerContext, action: str) -> str:
        def identify() -> str:
            try:
                return site_of(context)
            except errors.Unauthenticated as exc:
                self.service.refuse("", action, exc)

        return _answer(context, identify)

    def Put(self, request_iterator, context):  # noqa: N802 - gRPC method name
        site = self._site(context, "put")

        def work() -> storage_pb2.PutReply:
            first = next(request_iterator, None)
            if first is None or first.WhichOneof("part") != "metadata":
                self.service.refuse(
                    site, "put", errors.InvalidObject("the first Put message must carry metadata")
                )
            m = first.metadata
            meta = PutMetadata(m.object_id, m.namespace, m.size, m.sha256, m.replace)
            record, receipt = self.service.put_receipted(
                site, meta, _data_parts(request_iterator)
            )
            return storage_pb2.PutReply(
                object=object_info(record), receipt=receipt_message(receipt)
            )

        return _answer(context, work)

    def Get(self, request, context):  # noqa: N802
        site = self._site(context, "get")
        record, stream = _answer(
            context, lambda: self.service.get(site, request.owner, request.object_id)
        )
        chunks = iter(stream)
        try:
            yield storage_pb2.GetChunk(info=object_info(record))
            while (chunk := _answer(context, lambda: next(chunks, None))) is not None:
                yield storage_pb2.GetChunk(data=chunk)
        finally:
            getattr(chunks, "close", lambda: None)()  # a cancelled call closes the file now

    def List(self, request, context):  # noqa: N802
        site = self._site(context, "list")
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
        record, receipt = _answer(
            context, lambda: self.service.delete_receipted(site, request.owner, request.object_id)
        )
        return storage_pb2.DeleteReply(object=object_info(record), receipt=receipt_message(receipt))

    def Share(self, request, context):  # noqa: N802
        site = self._site(context, "share")
        record = _answer(
            context,
            lambda: self.service.share(
                site, request.object_id, request.grantee, revoke=request.revoke
            ),
        )
        return storage_pb2.ShareReply(object=object_info(record))

    def Head(self, request, context):  # noqa: N802
        site = self._site(context, "head")
        seq, entry_hash, signature = _answer(context, lambda: self.service.head(site))
        signer = self.service.signer
        return storage_pb2.HeadReply(
            seq=seq, entry_hash=entry_hash, signature=bytes.fromhex(signature),
            public_key=signer.public_raw if signer else b"",
        )
