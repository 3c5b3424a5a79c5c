"""Encrypted transfers: what ``fedcodec store put/get/share`` do between keyring and service.

Keys never leave the site. ``put_file`` encrypts with the site keyring (envelope encryption) into
a temporary spool first, because the service wants the ciphertext's size and SHA-256 before the
bytes (it checks both before committing); the spool holds ciphertext only. ``get_file`` decrypts
as it downloads into a temporary file beside the output and renames it into place only when
every frame verified, so a wrong key, a tampered object or a broken connection never leaves a
partial output.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from fedcodec.client.store.connection import StoreClient, StoredObjectInfo
from fedcodec.client.store.delivery_check import check_delivered, peek_header
from fedcodec.client.store.identified_study import refuse_identified
from fedcodec.client.store.receipt_store import ReceiptStore
from fedcodec.shared.atomic_files import atomic_output
from fedcodec.shared.crypto import envelope
from fedcodec.shared.crypto.keyring import SiteKeyring
from fedcodec.shared.errors import FedcodecError

SPOOL_IN_MEMORY = 32 * 1024 * 1024
READ_BYTES = 1024 * 1024
CONTAINER_SUFFIX = ".fcz"


def _read_chunks(handle: BinaryIO, size: int = READ_BYTES) -> Iterator[bytes]:
    while chunk := handle.read(size):
        yield chunk


def _spool(chunks: Iterator[bytes]) -> tuple[tempfile.SpooledTemporaryFile, int, bytes]:
    """Write ``chunks`` to a spool; return it rewound, with size and SHA-256."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - returned
    digest, size = hashlib.sha256(), 0
    try:
        for chunk in chunks:
            spool.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool, size, digest.digest()


def default_codec(source: Path) -> tuple[str, str]:
    """Codec label and content type recorded in the envelope header for ``source``."""
    if source.suffix == CONTAINER_SUFFIX:
        return "fcz", "application/x-fcz"
    return "none", "application/octet-stream"


def put_file(
    client: StoreClient,
    keyring: SiteKeyring,
    source: Path,
    *,
    object_id: str | None = None,
    codec: str | None = None,
    receipts: ReceiptStore | None = None,
    allow_identified: bool = False,
) -> StoredObjectInfo:
    """Encrypt ``source`` for this site and upload it as ``object_id`` (default: file name).

    Refuses a study whose DICOM headers are not de-identified unless ``allow_identified``;
    keeps the service's receipt in ``receipts``.
    """
    source = Path(source)
    if not allow_identified:
        refuse_identified(source)
    if keyring.site != client.site:
        raise FedcodecError(
            f"keyring is for site {keyring.site!r} but the TLS certificate is for {client.site!r}"
        )
    object_id = object_id or source.name
    label, content_type = default_codec(source)
    try:
        handle = open(source, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise FedcodecError(f"file not found: {source}") from None
    with handle:
        sealed = envelope.encrypt_object(
            _read_chunks(handle), keyring, object_id=object_id, codec=codec or label,
            content_type=content_type,
        )
        spool, size, sha = _spool(sealed)
    with spool:
        info = client.put_blob(object_id, spool, size, sha)
    _keep_receipt(receipts, info)
    return info


def _keep_receipt(receipts: ReceiptStore | None, info: StoredObjectInfo) -> None:
    if receipts is not None and info.receipt is not None:
        receipts.record(info.receipt)


def _open_checked(
    client: StoreClient, object_id: str, owner: str, receipts: ReceiptStore | None
) -> tuple[StoredObjectInfo, envelope.ObjectHeader, Iterator[bytes]]:
    """Start a download and check the delivered header against what was asked (and receipted)."""
    info, chunks = client.get_blob(object_id, owner)
    header, chunks = peek_header(chunks)
    site = owner or client.site
    receipt = receipts.latest(object_id) if receipts is not None and site == client.site else None
    try:
        check_delivered(header, site=site, object_id=object_id, sha256=info.sha256,
                        receipt=receipt)
    except BaseException:
        getattr(chunks, "close", lambda: None)()
        raise
    return info, header, chunks


def get_file(
    client: StoreClient,
    keyring: SiteKeyring,
    object_id: str,
    out: Path,
    *,
    owner: str = "",
    receipts: ReceiptStore | None = None,
) -> envelope.ObjectHeader:
    """Download, verify and decrypt ``object_id`` into ``out`` (atomically); return its header.

    The delivered object's header must name the site and id asked for (and match the site's
    receipt, when it holds one) before anything is written: see :mod:`.delivery_check`.
    """
    out = Path(out)
    _, _, chunks = _open_checked(client, object_id, owner, receipts)
    header, frames = envelope.decrypt_object(chunks, keyring)
    with atomic_output(out) as handle:
        for plain in frames:
            handle.write(plain)
    return header


def _rewrite_header(
    client: StoreClient,
    object_id: str,
    change: Callable[[envelope.ObjectHeader], envelope.ObjectHeader],
    receipts: ReceiptStore | None = None,
) -> StoredObjectInfo:
    """Download an own object, swap its header for ``change(header)``, upload as a replacement."""
    _, header, chunks = _open_checked(client, object_id, "", receipts)
    spool, _, _ = _spool(chunks)
    with spool:
        new_header = change(header)
        rewritten, size, sha = _spool(envelope.stream_with_header(_read_chunks(spool), new_header))
    with rewritten:
        info = client.put_blob(object_id, rewritten, size, sha, replace=True)
    _keep_receipt(receipts, info)
    return info


def _header_of(
    client: StoreClient, object_id: str, receipts: ReceiptStore | None = None
) -> envelope.ObjectHeader:
    """The public header of an own object (reads only as far as the header)."""
    _, header, chunks = _open_checked(client, object_id, "", receipts)
    getattr(chunks, "close", lambda: None)()
    return header


def share_object(
    client: StoreClient,
    keyring: SiteKeyring,
    object_id: str,
    peer: str,
    *,
    revoke: bool = False,
    receipts: ReceiptStore | None = None,
) -> StoredObjectInfo:
    """Let ``peer`` read and decrypt an object of this site (or stop letting it).

    Two steps: the object's header gains (or loses) a key slot for the peer's pinned X25519 key
    (the service only sees the replaced ciphertext), and the service grants (or revokes) the
    peer read access. Revoking cannot take back a copy the peer already downloaded.
    """
    if revoke:
        info = client.share(object_id, peer, revoke=True)
        if not any(slot.site == peer for slot in _header_of(client, object_id, receipts).slots):
            return info  # the peer never got a key slot: nothing to take out
        return _rewrite_header(
            client, object_id, lambda h: envelope.unshare(h, keyring, peer), receipts
        )
    _rewrite_header(client, object_id, lambda h: envelope.share(h, keyring, peer), receipts)
    return client.share(object_id, peer)


def rewrap_object(
    client: StoreClient,
    keyring: SiteKeyring,
    object_id: str,
    receipts: ReceiptStore | None = None,
) -> StoredObjectInfo:
    """Re-wrap an own object's data key under the keyring's current KEK (after a rotation).

    Only the header changes (the service checks that the content stays the same); the object
    then opens with the new KEK, and the retired KEK can eventually be dropped.
    """
    return _rewrite_header(client, object_id, lambda h: envelope.rewrap(h, keyring), receipts)
