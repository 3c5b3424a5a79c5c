"""StorageService rules without a network: checks before commit, namespaces, shares, recovery.

The caller's site is passed in directly here (the servicer takes it from the TLS certificate;
test_storage_isolation.py checks that path). Objects are real envelope-encrypted objects.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from test_storage_support import Federation

from fedcodec.server import pki
from fedcodec.server.audit.log import verify_chain
from fedcodec.server.storage.errors import (
    AccessDenied,
    InvalidObject,
    ObjectExists,
    ObjectMissing,
    StoredDataCorrupt,
    TooLarge,
    Unauthenticated,
)
from fedcodec.server.storage.identity import site_from_auth_context
from fedcodec.server.storage.index import ObjectIndex
from fedcodec.server.storage.limits import StorageLimits
from fedcodec.server.storage.root import open_storage, storage_paths
from fedcodec.server.storage.service import PutMetadata, StorageService
from fedcodec.shared.crypto import envelope
from fedcodec.shared.crypto.keyring import SiteKeyring
from fedcodec.shared.errors import FedcodecError

LIMITS = StorageLimits(max_object_bytes=4 << 20, chunk_bytes=64 << 10, max_message_bytes=1 << 20)


@pytest.fixture()
def fed(tmp_path: Path) -> Federation:
    fed = Federation(tmp_path, tmp_path / "ca", tmp_path / "tls-server")
    for site in ("a", "b"):
        fed.keyrings[site] = SiteKeyring.create(tmp_path / f"keyring-{site}", site)
    return fed


@pytest.fixture()
def service(tmp_path: Path):
    service, report = open_storage(tmp_path / "root", limits=LIMITS)
    assert report.clean
    yield service
    service.close()


def _put(service: StorageService, site: str, object_id: str, blob: bytes, **meta) -> object:
    fields = {"namespace": "", "size": len(blob), "sha256": hashlib.sha256(blob).digest(), **meta}
    chunks = [blob[i : i + 50_000] for i in range(0, len(blob), 50_000)]
    return service.put(site, PutMetadata(object_id, **fields), chunks)


def _read(service: StorageService, site: str, object_id: str, owner: str = "") -> bytes:
    _, stream = service.get(site, owner, object_id)
    return b"".join(stream)


def _audit(tmp_path: Path) -> list[dict]:
    lines = (tmp_path / "root" / "audit" / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _leftovers(tmp_path: Path) -> list[str]:
    found = (tmp_path / "root/objects").rglob("*")
    return sorted(str(p.relative_to(tmp_path)) for p in found if p.is_file())


def test_put_get_round_trip_records_header_facts(fed, service, tmp_path) -> None:
    blob = fed.sealed("a", "study1", os.urandom(300_000))
    record = _put(service, "a", "study1", blob)
    header = envelope.read_header(blob)
    assert record.size == len(blob) and record.sha256 == hashlib.sha256(blob).hexdigest()
    assert record.key_ids == header.key_ids == (fed.keyrings["a"].current_kek_id,)
    assert record.algorithm == header.algorithm and record.format_version == 1
    assert _read(service, "a", "study1") == blob
    entries = _audit(tmp_path)
    assert [(e["site"], e["action"], e["outcome"], e["object_id"]) for e in entries] == [
        ("a", "put", "ok", "study1"),
        ("a", "get", "ok", "study1"),
    ]
    assert entries[0]["key_id"] == fed.keyrings["a"].current_kek_id


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": 1}, "received more than the declared 1 bytes"),
        ({"size_delta": 7}, "declared"),
        ({"sha256": b"\0" * 32}, "sha256 of the received bytes does not match"),
        ({"sha256": b"\0" * 5}, "sha256 must be 32 bytes"),
    ],
)
def test_size_and_hash_are_checked_before_commit(fed, service, tmp_path, change, message) -> None:
    blob = fed.sealed("a", "x", b"payload" * 1000)
    meta = {k: v for k, v in change.items() if k != "size_delta"}
    meta.setdefault("size", len(blob) + change.get("size_delta", 0))
    with pytest.raises(InvalidObject, match=message):
        _put(service, "a", "x", blob, **meta)
    assert _audit(tmp_path)[-1]["outcome"] == "invalid"
    assert service.list("a").records == []
    assert _leftovers(tmp_path) == []


def test_only_well_formed_encrypted_objects_of_the_callers_site_are_accepted(fed, service) -> None:
    with pytest.raises(InvalidObject, match="not a well-formed encrypted object: .*magic"):
        _put(service, "a", "plain", b"DICM plaintext that must never be stored" * 10)
    with pytest.raises(InvalidObject, match="encrypted for site 'b', not the caller's site 'a'"):
        _put(service, "a", "x", fed.sealed("b", "x", b"data"))
    with pytest.raises(InvalidObject, match="header names id 'y', not 'x'"):
        _put(service, "a", "x", fed.sealed("a", "y", b"data"))
    damaged = bytearray(fed.sealed("a", "x", b"data"))
    damaged[30] ^= 1
    with pytest.raises(InvalidObject, match="checksum"):
        _put(service, "a", "x", bytes(damaged))


@pytest.mark.parametrize("object_id", ["../etc/passwd", ".tmp-x", "a/b", "", "x" * 129, "-rf"])
def test_object_ids_cannot_escape_the_namespace(fed, service, object_id) -> None:
    with pytest.raises(InvalidObject, match="invalid object id"):
        _put(service, "a", object_id, b"irrelevant")


def test_ids_are_written_once_and_limits_hold(fed, service) -> None:
    blob = fed.sealed("a", "x", b"one")
    _put(service, "a", "x", blob)
    with pytest.raises(ObjectExists, match="already exists"):
        _put(service, "a", "x", fed.sealed("a", "x", b"two"))
    assert _read(service, "a", "x") == blob
    with pytest.raises(TooLarge, match="exceeds the limit"):
        _put(service, "a", "big", b"", size=LIMITS.max_object_bytes + 1)
    big = fed.sealed("a", "y", os.urandom(LIMITS.max_message_bytes + 1))
    with pytest.raises(TooLarge, match="chunk of"):
        service.put("a", PutMetadata("y", "", len(big), hashlib.sha256(big).digest()), [big])


def test_namespaces_are_private_and_denial_does_not_reveal_existence(
    fed, service, tmp_path
) -> None:
    secret = fed.sealed("b", "secret", b"b's data")
    _put(service, "b", "secret", secret)
    refusals = []
    for object_id in ("secret", "never-existed"):
        with pytest.raises(AccessDenied) as caught:
            service.get("a", "b", object_id)
        refusals.append(str(caught.value).replace(object_id, "ID"))
    assert refusals[0] == refusals[1] == "site 'a' may not read b/ID"
    with pytest.raises(AccessDenied, match="may not list in namespace 'b'"):
        service.list("a", owner="b")
    with pytest.raises(AccessDenied, match="may not delete in namespace 'b'"):
        service.delete("a", "b", "secret")
    with pytest.raises(AccessDenied, match="may not write in namespace 'b'"):
        _put(service, "a", "x", fed.sealed("a", "x", b"d"), namespace="b")
    with pytest.raises(ObjectMissing, match="no object 'secret' in namespace 'a'"):
        service.get("a", "", "secret")  # its own namespace: NOT_FOUND is honest there
    assert service.list("a").records == []
    assert _read(service, "b", "secret") == secret  # untouched by a's attempts
    denied = [e for e in _audit(tmp_path) if e["outcome"] == "denied"]
    assert [(e["site"], e["action"], e["owner"]) for e in denied] == [
        ("a", "get", "b"), ("a", "get", "b"), ("a", "list", "b"), ("a", "delete", "b"),
        ("a", "put", "b"),
    ]


def test_share_grants_read_only_and_goes_away_with_revoke_or_delete(fed, service) -> None:
    blob = fed.sealed("a", "study", b"shared study")
    _put(service, "a", "study", blob)
    with pytest.raises(ObjectMissing, match="unknown site 'b'"):
        service.share("a", "study", "b")
    service.list("b")  # b connects once: now a known site
    with pytest.raises(InvalidObject, match="cannot share an object with itself"):
        service.share("a", "study", "a")
    assert service.share("a", "study", "b").shared_with == ("b",)
    assert _read(service, "b", "study", owner="a") == blob
    shared = service.list("b", shared_with_me=True).records
    assert [(r.site, r.object_id, r.shared_with) for r in shared] == [("a", "study", ())]
    with pytest.raises(AccessDenied):
        service.delete("b", "a", "study")
    with pytest.raises(ObjectMissing):
        service.share("b", "study", "a")  # share always means the caller's own namespace
    service.share("a", "study", "b", revoke=True)
    with pytest.raises(AccessDenied):
        service.get("b", "a", "study")
    service.share("a", "study", "b")
    service.delete("a", "", "study")
    with pytest.raises(AccessDenied):
        service.get("b", "a", "study")
    assert service.list("b", shared_with_me=True).records == []


def test_list_pages_and_prefix(fed, service) -> None:
    for i in range(5):
        _put(service, "a", f"s{i}", fed.sealed("a", f"s{i}", b"x"))
    _put(service, "a", "other", fed.sealed("a", "other", b"x"))
    seen, token = [], ""
    while True:
        page = service.list("a", prefix="s", page_size=2, page_token=token)
        seen += [r.object_id for r in page.records]
        token = page.next_token
        if not token:
            break
    assert seen == ["s0", "s1", "s2", "s3", "s4"]


def test_replace_may_change_key_slots_only(fed, service) -> None:
    a, b = fed.keyrings["a"], fed.keyrings["b"]
    a.import_peer("b", b.public_key_bytes())
    blob = fed.sealed("a", "x", b"content")
    _put(service, "a", "x", blob)
    shared = envelope.replace_header(blob, envelope.share(blob, a, "b"))
    record = _put(service, "a", "x", shared, replace=True)
    assert len(record.key_ids) == 2 and record.sha256 == hashlib.sha256(shared).hexdigest()
    assert envelope.decrypt_bytes(_read(service, "a", "x"), b)[1] == b"content"
    with pytest.raises(InvalidObject, match="must keep the encrypted content"):
        _put(service, "a", "x", fed.sealed("a", "x", b"content"), replace=True)
    with pytest.raises(ObjectMissing, match="to replace"):
        _put(service, "a", "new", fed.sealed("a", "new", b"c"), replace=True)


def test_damaged_stored_bytes_are_reported_not_served_silently(fed, service, tmp_path) -> None:
    _put(service, "a", "x", fed.sealed("a", "x", os.urandom(10_000)))
    path = storage_paths(tmp_path / "root")["objects"] / "a" / "x"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoredDataCorrupt, match="does not match its index hash"):
        _read(service, "a", "x")
    assert _audit(tmp_path)[-1]["outcome"] == "data_loss"


def test_one_process_per_root(service, tmp_path) -> None:
    with pytest.raises(FedcodecError, match="in use by another process"):
        open_storage(tmp_path / "root")


def test_recovery_repairs_every_crash_leftover(fed, tmp_path) -> None:
    root = tmp_path / "root"
    service, _ = open_storage(root, limits=LIMITS)
    keep = fed.sealed("a", "keep", b"acknowledged")
    _put(service, "a", "keep", keep)
    _put(service, "a", "lost", fed.sealed("a", "lost", b"bytes vanish"))
    a, b = fed.keyrings["a"], fed.keyrings["b"]
    a.import_peer("b", b.public_key_bytes())
    swapped = fed.sealed("a", "swap", b"s")
    _put(service, "a", "swap", swapped)
    service.close()
    objects = root / "objects" / "a"
    (objects / ".tmp-deadbeef").write_bytes(b"half an upload")  # (a) crash mid-upload
    (objects / "orphan").write_bytes(fed.sealed("a", "orphan", b"never acked"))  # (b)
    (objects / "lost").unlink()  # (c)
    with open(root / "audit" / "audit.jsonl", "a") as log:  # (d) crash mid-append
        log.write('{"seq": 99, "trunc')
    new_version = envelope.replace_header(swapped, envelope.share(swapped, a, "b"))  # (f)
    index = ObjectIndex(root / "index.sqlite3")
    record = index.get("a", "swap")
    index.begin_replace(
        replace(record, sha256=hashlib.sha256(new_version).hexdigest(), size=len(new_version))
    )
    index.close()
    (objects / "swap").write_bytes(new_version)  # the rename happened, the index update did not

    service, report = open_storage(root, limits=LIMITS)
    try:
        assert report.removed_temporaries == ["objects/a/.tmp-deadbeef"]
        assert [q.split(" ->")[0] for q in report.quarantined] == ["a/orphan"]
        assert report.missing_files == ["a/lost"]
        assert report.replacements == ["replacement of a/swap interrupted by a crash: completed"]
        assert any("incomplete last line" in r for r in report.audit_repairs)
        assert sorted(r.object_id for r in service.list("a").records) == ["keep", "swap"]
        assert _read(service, "a", "keep") == keep
        assert _read(service, "a", "swap") == new_version
        assert sorted(p.name for p in objects.iterdir()) == ["keep", "swap"]
        assert list((root / "quarantine" / "a").iterdir())
    finally:
        service.close()
    chain = verify_chain(root / "audit" / "audit.jsonl")
    assert chain.ok, chain.problems
    outcomes = [e["outcome"] for e in _audit(tmp_path) if e["action"] == "recover"]
    assert sorted(outcomes) == ["data_loss", "repaired", "repaired", "repaired"]


def test_interrupted_replacement_rolls_back_when_the_file_was_not_swapped(fed, tmp_path) -> None:
    root = tmp_path / "root"
    service, _ = open_storage(root, limits=LIMITS)
    blob = fed.sealed("a", "x", b"v1")
    _put(service, "a", "x", blob)
    service.close()
    index = ObjectIndex(root / "index.sqlite3")
    # the crash came before the rename: the journal names a version that never reached disk
    index.begin_replace(replace(index.get("a", "x"), sha256="0" * 64, size=1))
    index.close()
    service, report = open_storage(root, limits=LIMITS)
    try:
        assert report.replacements == ["replacement of a/x interrupted by a crash: rolled back"]
        assert _read(service, "a", "x") == blob
        assert service.index.pending_replaces() == []
    finally:
        service.close()


def test_site_identity_comes_only_from_a_verified_client_certificate(tmp_path) -> None:
    pki.init_ca(tmp_path / "ca")
    pki.issue_site(tmp_path / "ca", tmp_path / "site", "ge")
    pki.issue_server(tmp_path / "ca", tmp_path / "server")
    site_pem = (tmp_path / "site" / "site.pem").read_bytes()
    server_pem = (tmp_path / "server" / "server.pem").read_bytes()
    tls = {"transport_security_type": [b"ssl"]}
    assert site_from_auth_context({**tls, "x509_pem_cert": [site_pem]}) == "ge"
    with pytest.raises(Unauthenticated, match="requires mutual TLS"):
        site_from_auth_context({"x509_pem_cert": [site_pem]})
    with pytest.raises(Unauthenticated, match="no client certificate"):
        site_from_auth_context(tls)
    with pytest.raises(Unauthenticated, match="not a site certificate"):
        site_from_auth_context({**tls, "x509_pem_cert": [server_pem]})
