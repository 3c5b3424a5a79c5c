"""An S3-compatible object backend (AWS S3, MinIO, Ceph RGW...) on boto3.

Commit semantics match the filesystem backend: a pending object is spooled to a local file (it
is ciphertext; the spool folder is the storage root's ``spool/``) and ``commit`` makes it
visible in one atomic step: a single ``PutObject`` up to ``part_bytes``, otherwise a multipart
upload whose parts stay invisible until ``CompleteMultipartUpload``. A crash mid-upload
therefore never shows a partial object; the upload id is journalled in the spool so startup
recovery aborts the orphaned parts. Write-once uses S3 conditional writes (``IfNoneMatch='*'``
on ``PutObject`` and ``CompleteMultipartUpload``): when two service replicas put the same id at
once, the first to finish wins and the other gets :class:`~.errors.ObjectExists`.

Each object carries its SHA-256 as user metadata (``x-amz-meta-sha256``), so another replica on
the same bucket can index an object it did not write (:mod:`.replica_sync`). Keys are
``objects/<site>/<id>`` and ``quarantine/<site>/<id>.<stamp>`` under an optional prefix; the
index and audit log stay on the replica's local disk.

Tested end to end against moto's standalone S3 server (real HTTP, SigV4, multipart).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import boto3
import botocore.config
import botocore.exceptions

from fedcodec.server.storage.backend import TEMP_PREFIX, StoredObject
from fedcodec.server.storage.errors import ObjectExists, ObjectMissing
from fedcodec.shared.errors import FedcodecError

MIB = 1024 * 1024
UPLOAD_JOURNAL_PREFIX = f"{TEMP_PREFIX}upload-"
SHA256_METADATA = "sha256"


class S3Error(FedcodecError):
    """The S3 endpoint refused or failed a request."""


@dataclass(frozen=True)
class S3Settings:
    """Where and as whom to store objects. Credentials come from the environment by default."""

    endpoint: str  # http(s)://host[:port]
    bucket: str
    region: str = "us-east-1"
    access_key: str = ""
    secret_key: str = ""
    prefix: str = ""
    timeout: float = 60.0
    part_bytes: int = 8 * MIB
    """Objects above this size go up as a multipart upload of parts this size (S3 minimum 5 MiB)."""
    max_attempts: int = 3
    """Tries per request (boto3 "standard" retries: throttling, 5xx, connection errors)."""

    @classmethod
    def from_environment(
        cls, endpoint: str, bucket: str, region: str, prefix: str = ""
    ) -> S3Settings:
        access = os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not access or not secret:
            raise FedcodecError(
                "S3 backend needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
            )
        return cls(endpoint, bucket, region, access, secret, prefix)


@dataclass(frozen=True)
class ObjectDescription:
    """What the bucket says about one object (for indexing it on another replica)."""

    size: int
    sha256: str  # hex, from the object's metadata; "" when the object has none
    modified_ms: int


def _status(exc: botocore.exceptions.ClientError) -> tuple[int, str]:
    meta = exc.response.get("ResponseMetadata", {})
    return int(meta.get("HTTPStatusCode", 0)), str(exc.response.get("Error", {}).get("Code", ""))


class _Body:
    """A streaming GET body whose failures are one-line :class:`S3Error`."""

    def __init__(self, body: Any, what: str) -> None:
        self._body, self._what = body, what

    def read(self, size: int = -1) -> bytes:
        try:
            return self._body.read(None if size < 0 else size)
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise S3Error(f"S3 read of {self._what} failed: {exc}") from None

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> _Body:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class S3Backend:
    """:class:`~.backend.ObjectBackend` over an S3-compatible bucket (path-style addressing)."""

    shared_by_replicas = True
    """Other service replicas may write to the same bucket (see :mod:`.replica_sync`)."""

    def __init__(self, settings: S3Settings, spool_dir: Path) -> None:
        if not settings.endpoint.startswith(("http://", "https://")):
            raise FedcodecError(
                f"invalid S3 endpoint {settings.endpoint!r} (use http(s)://host[:port])"
            )
        if settings.part_bytes < 5 * MIB:
            raise FedcodecError("S3 multipart parts must be at least 5 MiB")
        self.settings = settings
        self.spool_dir = Path(spool_dir)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        config = botocore.config.Config(
            s3={"addressing_style": "path"},
            connect_timeout=min(settings.timeout, 10.0),
            read_timeout=settings.timeout,
            retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        )
        self.s3 = boto3.session.Session().client(
            "s3", endpoint_url=settings.endpoint, region_name=settings.region,
            aws_access_key_id=settings.access_key or None,
            aws_secret_access_key=settings.secret_key or None, config=config,
        )

    # -- requests ------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.settings.prefix.strip("/"), *parts) if p)

    def _call(self, operation: str, key: str, **params: Any) -> dict:
        """``operation`` on the bucket; every failure becomes a one-line :class:`S3Error`
        (:class:`botocore.exceptions.ClientError` is re-raised for callers that map codes)."""
        try:
            return getattr(self.s3, operation)(Bucket=self.settings.bucket, **params)
        except botocore.exceptions.ClientError:
            raise
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise S3Error(f"S3 endpoint {self.settings.endpoint} unreachable: {exc}") from None

    def _checked(self, operation: str, key: str, **params: Any) -> dict:
        try:
            return self._call(operation, key, **params)
        except botocore.exceptions.ClientError as exc:
            status, code = _status(exc)
            raise S3Error(f"S3 {operation} {key}: HTTP {status} {code}") from None

    def _upload(self, key: str, path: Path, sha256: str, *, write_once: bool) -> None:
        condition = {"IfNoneMatch": "*"} if write_once else {}
        metadata = {SHA256_METADATA: sha256}
        size = path.stat().st_size
        try:
            if size <= self.settings.part_bytes:
                with open(path, "rb") as body:
                    self._call(
                        "put_object", key, Key=key, Body=body, ContentLength=size,
                        Metadata=metadata, **condition,
                    )
            else:
                self._multipart(key, path, metadata, condition)
        except botocore.exceptions.ClientError as exc:
            status, code = _status(exc)
            if status == 412 or code == "PreconditionFailed":
                raise ObjectExists(f"object {key.rsplit('/', 1)[-1]!r} already exists") from None
            raise S3Error(f"S3 upload of {key}: HTTP {status} {code}") from None

    def _multipart(self, key: str, path: Path, metadata: dict, condition: dict) -> None:
        upload = self._call("create_multipart_upload", key, Key=key, Metadata=metadata)
        upload_id = upload["UploadId"]
        journal = self.spool_dir / f"{UPLOAD_JOURNAL_PREFIX}{uuid.uuid4().hex}"
        journal.write_text(json.dumps({"key": key, "upload_id": upload_id}))
        try:
            parts = []
            with open(path, "rb") as source:
                while data := source.read(self.settings.part_bytes):
                    number = len(parts) + 1
                    reply = self._call(
                        "upload_part", key, Key=key, UploadId=upload_id, PartNumber=number,
                        Body=data,
                    )
                    parts.append({"PartNumber": number, "ETag": reply["ETag"]})
            self._call(
                "complete_multipart_upload", key, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": parts}, **condition,
            )
        except BaseException:
            if self._abort_upload(key, upload_id):
                journal.unlink(missing_ok=True)
            raise
        journal.unlink(missing_ok=True)

    def _abort_upload(self, key: str, upload_id: str) -> bool:
        """Drop an unfinished upload's parts; ``False`` if that failed (the journal stays and
        recovery retries)."""
        try:
            self._call("abort_multipart_upload", key, Key=key, UploadId=upload_id)
        except botocore.exceptions.ClientError as exc:
            return _status(exc)[0] == 404  # already gone
        except S3Error:
            return False
        return True

    # -- ObjectBackend -------------------------------------------------------------------------

    def begin(self, site: str, object_id: str) -> _PendingS3:
        return _PendingS3(self, self._key("objects", site, object_id))

    def open(self, site: str, object_id: str) -> _Body:
        key = self._key("objects", site, object_id)
        try:
            reply = self._call("get_object", key, Key=key)
        except botocore.exceptions.ClientError as exc:
            status, code = _status(exc)
            if status == 404:
                raise ObjectMissing(f"object {object_id!r} has no stored bytes") from None
            raise S3Error(f"S3 get_object {key}: HTTP {status} {code}") from None
        return _Body(reply["Body"], key)

    def describe(self, site: str, object_id: str) -> ObjectDescription | None:
        """Size, recorded SHA-256 and modification time, or ``None`` when absent."""
        key = self._key("objects", site, object_id)
        try:
            head = self._call("head_object", key, Key=key)
        except botocore.exceptions.ClientError as exc:
            if _status(exc)[0] == 404:
                return None
            raise S3Error(f"S3 head_object {key}: HTTP {_status(exc)[0]}") from None
        return ObjectDescription(
            int(head["ContentLength"]), head.get("Metadata", {}).get(SHA256_METADATA, ""),
            int(head["LastModified"].timestamp() * 1000),
        )

    def delete(self, site: str, object_id: str) -> None:
        key = self._key("objects", site, object_id)
        self._checked("delete_object", key, Key=key)

    def scan(self, site: str = "") -> Iterator[StoredObject]:
        """Committed objects (of one ``site``, or all); multipart parts are never listed."""
        prefix = self._key("objects") + "/"
        params = {"Prefix": prefix + (f"{site}/" if site else "")}
        while True:
            page = self._checked("list_objects_v2", prefix, **params)
            for item in page.get("Contents", []):
                owner, _, object_id = item["Key"][len(prefix):].partition("/")
                if owner and object_id and "/" not in object_id:
                    yield StoredObject(owner, object_id, int(item["Size"]))
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]

    def _journals(self) -> list[Path]:
        return sorted(self.spool_dir.glob(f"{UPLOAD_JOURNAL_PREFIX}*"))

    def temporaries(self) -> list[str]:
        return sorted(p.name for p in self.spool_dir.glob(f"{TEMP_PREFIX}*"))

    def remove_temporaries(self) -> list[str]:
        """Delete spooled uploads and abort the multipart uploads this replica left behind."""
        removed = []
        for journal in self._journals():
            try:
                entry = json.loads(journal.read_text())
            except (ValueError, OSError):
                removed.append(f"spool/{journal.name} (unreadable journal)")
                journal.unlink(missing_ok=True)
                continue
            if not self._abort_upload(str(entry.get("key")), str(entry.get("upload_id"))):
                raise S3Error(f"cannot abort the unfinished multipart upload of {entry['key']}")
            removed.append(f"multipart upload of {entry['key']}")
            journal.unlink(missing_ok=True)
        for path in sorted(self.spool_dir.glob(f"{TEMP_PREFIX}*")):
            path.unlink(missing_ok=True)
            removed.append(f"spool/{path.name}")
        return removed

    def quarantine(self, site: str, object_id: str) -> str:
        stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        target = self._key("quarantine", site, f"{object_id}.{stamp}")
        source = self._key("objects", site, object_id)
        try:
            self.s3.copy({"Bucket": self.settings.bucket, "Key": source}, self.settings.bucket,
                         target)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise S3Error(f"S3 copy of {source} to quarantine failed: {exc}") from None
        self.delete(site, object_id)
        return target


class _PendingS3:
    def __init__(self, backend: S3Backend, key: str) -> None:
        self._backend, self._key = backend, key
        self._path = backend.spool_dir / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        self._handle: BinaryIO | None = open(self._path, "xb")  # noqa: SIM115 - closed in commit
        self._digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        assert self._handle is not None, "write after commit/abort"
        self._handle.write(data)
        self._digest.update(data)

    def commit(self, replace: bool = False) -> None:
        assert self._handle is not None, "commit twice"
        self._handle.close()
        self._handle = None
        try:
            self._backend._upload(
                self._key, self._path, self._digest.hexdigest(), write_once=not replace
            )
        finally:
            self._path.unlink(missing_ok=True)

    def abort(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._path.unlink(missing_ok=True)
