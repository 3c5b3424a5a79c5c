"""The storage rules, as a plain class: who may do what, what is checked, in which order.

Every public method takes the caller's ``site`` as established by the transport (the servicer
reads it from the mutual-TLS client certificate, never from the request) and writes exactly one
audit entry per call, refused calls included, before returning or raising.

Namespaces and existence (see docs/storage-service.md): a site reads, lists, writes and deletes
its own namespace; it reads another site's object only through an explicit share. A request that
names another site's namespace without a share is PERMISSION_DENIED *whether or not the object
exists*, so a site cannot probe another site's ids; NOT_FOUND is only ever said about the
caller's own namespace (or an object shared with it that was just deleted).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import IO, BinaryIO, NoReturn, TypeVar

from fedcodec.server.audit.ledger import put_detail
from fedcodec.server.audit.log import AuditEntry, AuditLog
from fedcodec.server.pki import SITE_NAME
from fedcodec.server.storage.backend import ObjectBackend
from fedcodec.server.storage.errors import (
    AccessDenied,
    InvalidObject,
    ObjectExists,
    ObjectMissing,
    StorageRefusal,
    StoredDataCorrupt,
    TooLarge,
)
from fedcodec.server.storage.header_check import (
    HEADER_PREFIX_BYTES,
    HeaderReader,
    ObjectSummary,
    StructureCheck,
)
from fedcodec.server.storage.index import ObjectIndex, ObjectRecord, now_ms
from fedcodec.server.storage.limits import StorageLimits
from fedcodec.server.storage.object_id import check_object_id
from fedcodec.server.storage.replica_sync import (
    adoptable_record,
    is_shared,
    record_adoption,
    sync_site,
)
from fedcodec.server.storage.signing import ServiceSigner
from fedcodec.shared.crypto.storage_receipt import SignedReceipt

T = TypeVar("T")


@dataclass(frozen=True)
class PutMetadata:
    """What a Put declares before sending bytes."""

    object_id: str
    namespace: str
    size: int
    sha256: bytes
    replace: bool = False


@dataclass(frozen=True)
class ListPage:
    records: list[ObjectRecord]
    next_token: str


class _Audited:
    """Fields of the audit entry a call will write, filled in as the call learns them."""

    def __init__(self, owner: str = "", object_id: str = "") -> None:
        self.owner, self.object_id, self.key_id, self.detail = owner, object_id, "", ""
        self.entry: AuditEntry | None = None  # the entry written for a successful call

    def about(
        self, record: ObjectRecord | None = None, summary: ObjectSummary | None = None
    ) -> None:
        key_ids = record.key_ids if record else summary.key_ids if summary else ()
        self.key_id = ",".join(key_ids)


class StorageService:
    """Ciphertext storage for many sites over one backend, index and audit log."""

    def __init__(
        self,
        backend: ObjectBackend,
        index: ObjectIndex,
        audit: AuditLog,
        header_reader: HeaderReader,
        limits: StorageLimits = StorageLimits(),
        signer: ServiceSigner | None = None,
    ) -> None:
        self.backend, self.index, self.audit = backend, index, audit
        self.header_reader, self.limits, self.signer = header_reader, limits, signer
        self._commit_lock = threading.Lock()
        self.held: list[IO[str]] = []  # closed with the service (the root's lock file)

    def close(self) -> None:
        self.audit.close()
        self.index.close()
        for resource in self.held:
            resource.close()

    # -- audit wrapper -------------------------------------------------------------------------

    def _audited(self, site: str, action: str, note: _Audited, work: Callable[[], T]) -> T:
        try:
            result = work()
        except StorageRefusal as exc:
            self._record(site, action, exc.outcome, note, str(exc))
            raise
        except BaseException as exc:
            self._record(site, action, "error", note, f"{type(exc).__name__}: {exc}")
            raise
        note.entry = self._record(site, action, "ok", note, note.detail)
        return result

    def _record(
        self, site: str, action: str, outcome: str, note: _Audited, detail: str
    ) -> AuditEntry:
        return self.audit.append(
            site=site, action=action, outcome=outcome, owner=note.owner,
            object_id=note.object_id, key_id=note.key_id, detail=detail,
        )

    def refuse(self, site: str, action: str, refusal: StorageRefusal) -> NoReturn:
        """Audit and raise a refusal decided outside the service (no identity, bad framing)."""
        self._record(site, action, refusal.outcome, _Audited(), str(refusal))
        raise refusal

    # -- access rules --------------------------------------------------------------------------

    def _readable(self, site: str, owner: str, object_id: str) -> ObjectRecord:
        if owner != site and not (
            SITE_NAME.match(owner) and self.index.is_shared(owner, object_id, site)
        ):
            raise AccessDenied(f"site {site!r} may not read {owner}/{object_id}")
        check_object_id(object_id)
        record = self.index.get(owner, object_id)
        if record is None and owner == site and is_shared(self.backend):
            record = self._adopt(site, object_id)  # stored through another replica?
        if record is None:
            raise ObjectMissing(f"no object {object_id!r} in namespace {owner!r}")
        return record

    def _adopt(self, site: str, object_id: str) -> ObjectRecord | None:
        record = adoptable_record(self.backend, self.header_reader, site, object_id)
        if record is not None:
            self.index.insert(record)
            record_adoption(self.audit, record, "indexed an object stored through another replica")
        return record

    @staticmethod
    def _own(site: str, owner: str, verb: str) -> str:
        if owner and owner != site:
            raise AccessDenied(f"site {site!r} may not {verb} in namespace {owner!r}")
        return site

    # -- calls ---------------------------------------------------------------------------------

    def put(self, site: str, meta: PutMetadata, data: Iterable[bytes]) -> ObjectRecord:
        """Store one object; return its index record once it is durable and listed."""
        return self.put_receipted(site, meta, data)[0]

    def put_receipted(
        self, site: str, meta: PutMetadata, data: Iterable[bytes]
    ) -> tuple[ObjectRecord, SignedReceipt | None]:
        """:meth:`put`, and the signed receipt naming the put's audit entry (None unsigned)."""
        self.index.note_site(site)
        note = _Audited(meta.namespace or site, meta.object_id)
        action = "replace" if meta.replace else "put"
        record = self._audited(site, action, note, lambda: self._put(site, meta, data, note))
        return record, self._receipt(action, record, note)

    def _receipt(
        self, action: str, record: ObjectRecord, note: _Audited
    ) -> SignedReceipt | None:
        if self.signer is None or note.entry is None:
            return None
        deleted = action == "delete"
        return self.signer.receipt(
            action, record.site, record.object_id, 0 if deleted else record.size,
            "" if deleted else record.sha256, record.content_digest, note.entry.seq,
            note.entry.entry_hash,
        )

    def _put(
        self, site: str, meta: PutMetadata, data: Iterable[bytes], note: _Audited
    ) -> ObjectRecord:
        self._own(site, meta.namespace, "write")
        check_object_id(meta.object_id)
        if meta.size > self.limits.max_object_bytes:
            raise TooLarge(
                f"object of {meta.size} bytes exceeds the limit of {self.limits.max_object_bytes}"
            )
        if len(meta.sha256) != 32:
            raise InvalidObject("sha256 must be 32 bytes")
        existing = self.index.get(site, meta.object_id)
        if meta.replace and existing is None:
            raise ObjectMissing(f"no object {meta.object_id!r} in namespace {site!r} to replace")
        if not meta.replace and existing is not None:
            raise ObjectExists(f"object {meta.object_id!r} already exists in namespace {site!r}")
        pending = self.backend.begin(site, meta.object_id)
        try:
            summary = self._receive(site, meta, data, pending.write)
            note.about(summary=summary)
            note.detail = put_detail(meta.sha256.hex(), meta.size)
            record = ObjectRecord(
                site, meta.object_id, meta.size, meta.sha256.hex(), summary.key_ids,
                summary.algorithm, summary.format_version, now_ms(), summary.content_digest,
            )
            with self._commit_lock:
                if not meta.replace:
                    pending.commit()
                    try:
                        self.index.insert(record)
                    except BaseException:
                        self.backend.delete(site, meta.object_id)  # never acknowledged
                        raise
                    return record
                record = self._swap(record)
                self.index.begin_replace(record)
                try:
                    pending.commit(replace=True)
                except BaseException:
                    self.index.drop_replace(site, meta.object_id)  # the old version stays
                    raise
                self.index.finish_replace(site, meta.object_id)
        except BaseException:
            pending.abort()
            raise
        updated = self.index.get(site, meta.object_id)
        assert updated is not None
        return updated

    def _swap(self, record: ObjectRecord) -> ObjectRecord:
        """Check a replacement against the current version (under the commit lock)."""
        current = self.index.get(record.site, record.object_id)
        if current is None:
            raise ObjectMissing(f"object {record.object_id!r} was deleted during the upload")
        if current.content_digest != record.content_digest:
            raise InvalidObject(
                f"a replacement of {record.object_id!r} must keep the encrypted content and "
                "change only its key slots"
            )
        return replace(record, created_ms=current.created_ms)

    def _receive(
        self, site: str, meta: PutMetadata, data: Iterable[bytes], write: Callable[[bytes], None]
    ) -> ObjectSummary:
        digest = hashlib.sha256()
        structure = StructureCheck()
        prefix = bytearray()
        summary: ObjectSummary | None = None
        received = 0
        for chunk in data:
            if len(chunk) > self.limits.max_message_bytes:  # gRPC enforces it too
                raise TooLarge(
                    f"chunk of {len(chunk)} bytes exceeds {self.limits.max_message_bytes}"
                )
            received += len(chunk)
            if received > meta.size:
                raise InvalidObject(f"received more than the declared {meta.size} bytes")
            if summary is None and len(prefix) < HEADER_PREFIX_BYTES:
                prefix += chunk[: HEADER_PREFIX_BYTES - len(prefix)]
                if len(prefix) == HEADER_PREFIX_BYTES:
                    summary = self._check_header(site, meta, bytes(prefix))
            digest.update(chunk)
            structure.feed(chunk)
            write(chunk)
        if received != meta.size:
            raise InvalidObject(f"received {received} bytes, declared {meta.size}")
        if digest.digest() != meta.sha256:
            raise InvalidObject("sha256 of the received bytes does not match the declared sha256")
        structure.finish()
        return summary if summary is not None else self._check_header(site, meta, bytes(prefix))

    def _check_header(self, site: str, meta: PutMetadata, prefix: bytes) -> ObjectSummary:
        summary = self.header_reader(prefix)
        if summary.site != site:
            raise InvalidObject(
                f"object is encrypted for site {summary.site!r}, not the caller's site {site!r}"
            )
        if summary.object_id != meta.object_id:
            raise InvalidObject(
                f"object header names id {summary.object_id!r}, not {meta.object_id!r}"
            )
        return summary

    def get(self, site: str, owner: str, object_id: str) -> tuple[ObjectRecord, Iterator[bytes]]:
        """The record and a stream of the ciphertext (verified against the index hash)."""
        self.index.note_site(site)
        owner = owner or site
        note = _Audited(owner, object_id)

        def work() -> tuple[ObjectRecord, Iterator[bytes]]:
            with self._commit_lock:  # the record and the open file are one version
                record = self._readable(site, owner, object_id)
                handle = self.backend.open(record.site, record.object_id)
            note.about(record)
            return record, self._stream(site, record, handle)

        record, stream = self._audited(site, "get", note, work)
        if owner != site:
            record = replace(record, shared_with=())
        return record, stream

    def _stream(self, site: str, record: ObjectRecord, handle: BinaryIO) -> Iterator[bytes]:
        digest, sent = hashlib.sha256(), 0
        with handle:
            while chunk := handle.read(self.limits.chunk_bytes):
                digest.update(chunk)
                sent += len(chunk)
                yield chunk
        if sent != record.size or digest.hexdigest() != record.sha256:
            note = _Audited(record.site, record.object_id)
            note.about(record)
            detail = f"stored object {record.site}/{record.object_id} does not match its index hash"
            self._record(site, "get", StoredDataCorrupt.outcome, note, detail)
            raise StoredDataCorrupt(detail)

    def list(
        self,
        site: str,
        *,
        owner: str = "",
        shared_with_me: bool = False,
        prefix: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> ListPage:
        """One page of the caller's objects, or of the objects shared with it."""
        self.index.note_site(site)
        note = _Audited(owner or site)
        note.detail = "shared_with_me" if shared_with_me else ""

        def work() -> ListPage:
            self._own(site, owner, "list")
            limit = min(page_size or self.limits.max_list_page, self.limits.max_list_page)
            if shared_with_me:
                after = tuple(page_token.split("/", 1)) if page_token else ("", "")
                if len(after) != 2:
                    raise InvalidObject(f"invalid page token {page_token!r}")
                rows = self.index.list_shared_with(site, prefix, after, limit + 1)
                rows = [replace(r, shared_with=()) for r in rows]
            else:
                if is_shared(self.backend) and not page_token:
                    with self._commit_lock:  # the bucket is the truth on a shared backend
                        sync_site(self.backend, self.index, self.audit, self.header_reader, site)
                rows = self.index.list_site(site, prefix, page_token, limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            token = ""
            if more:
                last = rows[-1]
                token = f"{last.site}/{last.object_id}" if shared_with_me else last.object_id
            return ListPage(rows, token)

        return self._audited(site, "list", note, work)

    def delete(self, site: str, owner: str, object_id: str) -> ObjectRecord:
        """Remove an object of the caller's own namespace (shares go with it)."""
        return self.delete_receipted(site, owner, object_id)[0]

    def delete_receipted(
        self, site: str, owner: str, object_id: str
    ) -> tuple[ObjectRecord, SignedReceipt | None]:
        """:meth:`delete`, and the signed receipt naming the delete's audit entry."""
        self.index.note_site(site)
        note = _Audited(owner or site, object_id)

        def work() -> ObjectRecord:
            self._own(site, owner, "delete")
            check_object_id(object_id)
            with self._commit_lock:
                record = self.index.delete(site, object_id)
                if record is None:
                    raise ObjectMissing(f"no object {object_id!r} in namespace {site!r}")
                self.backend.delete(site, object_id)
            note.about(record)
            return record

        record = self._audited(site, "delete", note, work)
        return record, self._receipt("delete", record, note)

    def share(
        self, site: str, object_id: str, grantee: str, *, revoke: bool = False
    ) -> ObjectRecord:
        """Grant (or revoke) ``grantee`` read access to an object of the caller's namespace."""
        self.index.note_site(site)
        note = _Audited(site, object_id)
        note.detail = f"{'revoke' if revoke else 'grant'} {grantee}"

        def work() -> ObjectRecord:
            check_object_id(object_id)
            if not SITE_NAME.match(grantee):
                raise InvalidObject(f"invalid site name {grantee!r}")
            if grantee == site:
                raise InvalidObject("a site cannot share an object with itself")
            record = self.index.get(site, object_id)
            if record is None:
                raise ObjectMissing(f"no object {object_id!r} in namespace {site!r}")
            note.about(record)
            if not revoke and not self.index.site_known(grantee):
                raise ObjectMissing(
                    f"unknown site {grantee!r} (a site is known once it has connected)"
                )
            self.index.set_share(site, object_id, grantee, not revoke)
            updated = self.index.get(site, object_id)
            assert updated is not None
            return updated

        return self._audited(site, "share", note, work)

    def head(self, site: str) -> tuple[int, str, str]:
        """``(seq, entry_hash, signature hex)`` of the signed audit head, this call included."""
        self.index.note_site(site)
        self._audited(site, "head", _Audited(site), lambda: None)
        with self._commit_lock:
            anchored = self.index.audit_head() or (0, "")
            return anchored[0], anchored[1], self.index.audit_head_signature()
