"""An S3-compatible object backend (AWS S3, MinIO, Ceph RGW...) with no dependency beyond stdlib.

Why stdlib: boto3 is not a project dependency, and the service needs five calls (PUT, GET,
DELETE, ListObjectsV2, copy). Requests are signed with AWS Signature Version 4
(:func:`authorization_header`, checked against AWS's published examples in the tests) and use
path-style addressing (``ENDPOINT/BUCKET/KEY``), which S3-compatible servers accept.

Commit semantics match the filesystem backend: a pending object is spooled to a local file (it
is ciphertext; the spool folder is the storage root's ``spool/``), and ``commit`` sends one PUT,
which S3 makes visible atomically. Write-once uses the conditional ``If-None-Match: *`` (HTTP
412 when the key exists). The index and audit log stay on local disk. Keys are
``objects/<site>/<id>`` and ``quarantine/<site>/<id>.<stamp>`` under an optional prefix.

Tested against an in-test fake server and AWS's signature examples, not against a live S3.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import os
import time
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlsplit

from fedcodec.server.storage.backend import TEMP_PREFIX, StoredObject
from fedcodec.server.storage.errors import ObjectExists, ObjectMissing
from fedcodec.shared.errors import FedcodecError

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_XMLNS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


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


def _uri_encode(text: str, *, keep_slash: bool) -> str:
    return quote(text, safe="-_.~/" if keep_slash else "-_.~")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def authorization_header(
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    access_key: str,
    secret_key: str,
    region: str,
    amz_date: str,
    service: str = "s3",
) -> str:
    """The SigV4 ``Authorization`` value; every header given is signed (host, x-amz-* ...)."""
    canonical_query = "&".join(
        f"{_uri_encode(k, keep_slash=False)}={_uri_encode(v, keep_slash=False)}"
        for k, v in sorted(query.items())
    )
    lowered = {k.lower(): " ".join(str(v).strip().split()) for k, v in headers.items()}
    signed = ";".join(sorted(lowered))
    canonical_headers = "".join(f"{k}:{lowered[k]}\n" for k in sorted(lowered))
    canonical_request = "\n".join(
        [method, _uri_encode(path, keep_slash=True), canonical_query, canonical_headers, signed,
         payload_sha256]
    )
    day = amz_date[:8]
    scope = f"{day}/{region}/{service}/aws4_request"
    request_hash = hashlib.sha256(canonical_request.encode()).hexdigest()
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, request_hash])
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope},SignedHeaders={signed},"
        f"Signature={signature}"
    )


class _Response:
    """A streaming GET body that also closes its connection."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse):
        self._connection, self._response = connection, response

    def read(self, size: int = -1) -> bytes:
        return self._response.read(size)

    def close(self) -> None:
        self._response.close()
        self._connection.close()

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class S3Backend:
    """:class:`~.backend.ObjectBackend` over an S3-compatible bucket."""

    def __init__(self, settings: S3Settings, spool_dir: Path) -> None:
        self.settings = settings
        parts = urlsplit(settings.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FedcodecError(
                f"invalid S3 endpoint {settings.endpoint!r} (use http(s)://host[:port])"
            )
        self._https = parts.scheme == "https"
        self._host = parts.netloc
        self.spool_dir = Path(spool_dir)
        self.spool_dir.mkdir(parents=True, exist_ok=True)

    # -- HTTP ----------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.settings.prefix.strip("/"), *parts) if p)

    def _request(
        self,
        method: str,
        key: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: BinaryIO | bytes | None = None,
        payload_sha256: str = EMPTY_SHA256,
        length: int = 0,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        query = dict(query or {})
        path = f"/{self.settings.bucket}/{key}" if key else f"/{self.settings.bucket}"
        amz_date = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        signed = {
            "host": self._host,
            "x-amz-date": amz_date,
            "x-amz-content-sha256": payload_sha256,
            **{k.lower(): v for k, v in (headers or {}).items()},
        }
        if body is not None:
            signed["content-length"] = str(length)
        signed["authorization"] = authorization_header(
            method=method, path=path, query=query, headers=signed, payload_sha256=payload_sha256,
            access_key=self.settings.access_key, secret_key=self.settings.secret_key,
            region=self.settings.region, amz_date=amz_date,
        )
        target = _uri_encode(path, keep_slash=True)
        if query:
            target += "?" + "&".join(
                f"{_uri_encode(k, keep_slash=False)}={_uri_encode(v, keep_slash=False)}"
                for k, v in sorted(query.items())
            )
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = kind(self._host, timeout=self.settings.timeout)
        try:
            connection.request(method, target, body=body, headers=signed)
            return connection, connection.getresponse()
        except OSError as exc:
            connection.close()
            raise S3Error(f"S3 endpoint {self.settings.endpoint} unreachable: {exc}") from None

    def _call(self, method: str, key: str, ok: tuple[int, ...], **kwargs) -> tuple[int, bytes]:
        connection, response = self._request(method, key, **kwargs)
        try:
            data = response.read()
        finally:
            connection.close()
        if response.status not in ok:
            code = _xml_text(data, "Code") or response.reason
            raise S3Error(f"S3 {method} {key}: HTTP {response.status} {code}")
        return response.status, data

    def _upload(self, key: str, path: Path, sha256: str, *, write_once: bool) -> None:
        headers = {"if-none-match": "*"} if write_once else {}
        size = path.stat().st_size
        with open(path, "rb") as body:
            status, _ = self._call(
                "PUT", key, (200, 412), headers=headers, body=body, payload_sha256=sha256,
                length=size,
            )
        if status == 412:
            raise ObjectExists(f"object {key.rsplit('/', 1)[-1]!r} already exists")

    # -- ObjectBackend -------------------------------------------------------------------------

    def begin(self, site: str, object_id: str) -> _PendingS3:
        return _PendingS3(self, self._key("objects", site, object_id))

    def open(self, site: str, object_id: str) -> _Response:
        connection, response = self._request("GET", self._key("objects", site, object_id))
        if response.status == 200:
            return _Response(connection, response)
        data = response.read()
        connection.close()
        if response.status == 404:
            raise ObjectMissing(f"object {object_id!r} has no stored bytes")
        raise S3Error(f"S3 GET {object_id}: HTTP {response.status} {_xml_text(data, 'Code') or ''}")

    def delete(self, site: str, object_id: str) -> None:
        self._call("DELETE", self._key("objects", site, object_id), (200, 204, 404))

    def scan(self) -> Iterator[StoredObject]:
        prefix = self._key("objects") + "/"
        token = ""
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            _, data = self._call("GET", "", (200,), query=query)
            root = ElementTree.fromstring(data)
            for item in root.iter(f"{_XMLNS}Contents"):
                key = item.findtext(f"{_XMLNS}Key") or ""
                size = int(item.findtext(f"{_XMLNS}Size") or 0)
                site, _, object_id = key[len(prefix):].partition("/")
                if site and object_id and "/" not in object_id:
                    yield StoredObject(site, object_id, size)
            token = root.findtext(f"{_XMLNS}NextContinuationToken") or ""
            if root.findtext(f"{_XMLNS}IsTruncated") != "true" or not token:
                return

    def temporaries(self) -> list[str]:
        return sorted(p.name for p in self.spool_dir.glob(f"{TEMP_PREFIX}*"))

    def remove_temporaries(self) -> list[str]:
        removed = []
        for path in sorted(self.spool_dir.glob(f"{TEMP_PREFIX}*")):
            path.unlink(missing_ok=True)
            removed.append(f"spool/{path.name}")
        return removed

    def quarantine(self, site: str, object_id: str) -> str:
        stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        target = self._key("quarantine", site, f"{object_id}.{stamp}")
        source = f"/{self.settings.bucket}/{self._key('objects', site, object_id)}"
        self._call("PUT", target, (200,), headers={"x-amz-copy-source": source})
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


def _xml_text(data: bytes, tag: str) -> str | None:
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        return None
    found = root.find(tag) if root.tag == "Error" else root.find(f".//{tag}")
    return found.text if found is not None else None
