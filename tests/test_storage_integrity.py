"""Must-show (issue 14): what someone with write access to the storage disk can no longer hide.

Swapped objects are refused by ``store get`` before anything is written; every acknowledged put
comes with a receipt signed by the service, and ``store verify`` / ``fedcodec-server audit``
catch a rolled-back index (even after a restart), an object deleted together with its index row,
and an audit log re-chained without the service's key. Structurally broken objects are refused
at put and reported by ``audit``. Everything runs the real service, CLI and files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_storage_support import Federation, make_federation, running_service

from fedcodec.client.cli import main
from fedcodec.client.store.receipt_store import ReceiptStore
from fedcodec.server.audit.log import AuditEntry
from fedcodec.server.audit.report import audit_storage
from fedcodec.server.cli import main as server_main
from fedcodec.server.storage.listener import RunningStorage
from fedcodec.server.storage.root import storage_paths
from fedcodec.server.storage.signing import SIGNING_PUB
from fedcodec.shared.crypto import envelope
from fedcodec.shared.errors import FedcodecError


@pytest.fixture()
def fed(tmp_path: Path) -> Federation:
    return make_federation(tmp_path, ("a",))


def _args(fed: Federation, running: RunningStorage, *, keyring: bool = True) -> list[str]:
    args = [
        "--service", f"127.0.0.1:{running.port}", "--tls-dir", str(fed.site_tls["a"]),
        "--state-dir", str(fed.base / "state-a"),
    ]
    return args + (["--keyring", str(fed.base / "keyring-a")] if keyring else [])


def _one_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith("fedcodec: error: "), err
    return err[0].removeprefix("fedcodec: error: ")


def _put(fed: Federation, running: RunningStorage, tmp: Path, object_id: str, data: bytes) -> None:
    source = tmp / f"{object_id}.bin"
    source.write_bytes(data)
    assert main(["store", "put", str(source), "--id", object_id, *_args(fed, running)]) == 0


def _verify(fed: Federation, running: RunningStorage, capsys) -> tuple[int, str]:
    code = main(["store", "verify", *_args(fed, running, keyring=False)])
    return code, capsys.readouterr().out


def _swap_rows_and_files(root: Path, site: str, first: str, second: str) -> None:
    folder = storage_paths(root)["objects"] / site
    (folder / first).rename(folder / "swap.tmp")
    (folder / second).rename(folder / first)
    (folder / "swap.tmp").rename(folder / second)
    db = sqlite3.connect(storage_paths(root)["index"])
    with db:
        for old, new in ((first, "swap.tmp"), (second, first), ("swap.tmp", second)):
            db.execute("UPDATE objects SET object_id=? WHERE site=? AND object_id=?",
                       (new, site, old))
    db.close()


@pytest.fixture()
def two_studies(fed: Federation, tmp_path: Path) -> Iterator[tuple[Path, dict[str, bytes]]]:
    root = tmp_path / "root"
    plain = {"study-0001": b"first study " * 5000, "study-0002": b"second study " * 4000}
    with running_service(fed, root) as running:
        for object_id, data in plain.items():
            _put(fed, running, tmp_path, object_id, data)
    yield root, plain


@pytest.mark.parametrize("with_receipts", [True, False])
def test_get_refuses_objects_swapped_on_disk_and_writes_nothing(
    fed: Federation, two_studies, tmp_path: Path, capsys, with_receipts: bool
) -> None:
    root, _ = two_studies
    _swap_rows_and_files(root, "a", "study-0001", "study-0002")
    if not with_receipts:  # another machine of the site: the header alone still tells
        shutil.rmtree(fed.base / "state-a")
    out = tmp_path / "got.bin"
    with running_service(fed, root) as running:
        code = main(["store", "get", "study-0001", "-o", str(out), *_args(fed, running)])
        message = _one_error(capsys, code)
    assert code == 2
    assert "a/study-0001" in message and "a/study-0002" in message, message
    assert message.startswith("integrity error: asked for a/study-0001")
    assert not out.exists() and not list(tmp_path.glob(".got.bin.*"))
    # the service's own audit sees the same thing
    report = audit_storage(root)
    assert "a/study-0001: header names a/study-0002" in report.problems


def test_receipts_are_signed_and_verify_proves_every_object(
    fed: Federation, two_studies, capsys
) -> None:
    root, _ = two_studies
    store = ReceiptStore(fed.base / "state-a", "a")
    kept = {s.receipt.object_id: s for s in store.all()}
    assert set(kept) == {"study-0001", "study-0002"}
    receipt = kept["study-0001"].receipt
    assert receipt.action == "put" and receipt.site == "a" and receipt.log_seq > 0
    log = [json.loads(line) for line in storage_paths(root)["audit"].read_text().splitlines()]
    entry = log[receipt.log_seq - 1]
    assert (entry["action"], entry["object_id"], entry["entry_hash"]) == (
        "put", "study-0001", receipt.chain_head)
    stored = (storage_paths(root)["objects"] / "a" / "study-0001").read_bytes()
    assert receipt.sha256 == hashlib.sha256(stored).hexdigest()
    with running_service(fed, root) as running:
        code, out = _verify(fed, running, capsys)
    assert code == 0 and "verify: OK" in out and "ok a/study-0002" in out, out
    # a receipt edited at the site no longer verifies
    path = store.folder / "study-0001.json"
    body = json.loads(path.read_text())
    body["receipt"]["log_seq"] += 1
    path.write_text(json.dumps(body))
    with pytest.raises(FedcodecError, match="signature does not verify"):
        store.all()


def test_object_deleted_with_its_index_row_fails_verify_and_audit(
    fed: Federation, two_studies, capsys
) -> None:
    root, _ = two_studies
    (storage_paths(root)["objects"] / "a" / "study-0002").unlink()
    db = sqlite3.connect(storage_paths(root)["index"])
    with db:
        db.execute("DELETE FROM objects WHERE object_id='study-0002'")
    db.close()
    report = audit_storage(root)
    assert not report.ok
    assert any(p.startswith("a/study-0002: acknowledged put at log seq") and "file is gone" in p
               for p in report.problems), report.problems
    with running_service(fed, root) as running:
        code, out = _verify(fed, running, capsys)
        assert code == 1 and "a/study-0002: receipted at log seq" in out, out
        # a deletion by the site itself is an audited event with a receipt: verify stays green
        rm = main(["store", "rm", "study-0001", *_args(fed, running, keyring=False)])
        assert rm == 0
    entries = [json.loads(line) for line in storage_paths(root)["audit"].read_text().splitlines()]
    assert entries[-1]["action"] == "delete" and entries[-1]["outcome"] == "ok"
    kept = ReceiptStore(fed.base / "state-a", "a")
    assert kept.latest("study-0001") is None  # its receipt is now the deletion's
    assert [p for p in audit_storage(root).problems if "study-0001" in p] == []


def test_index_rollback_and_restart_is_reported_never_hidden(
    fed: Federation, tmp_path: Path, capsys
) -> None:
    root = tmp_path / "root"
    fed.add_site("b")
    with running_service(fed, root) as running:
        _put(fed, running, tmp_path, "old", b"kept before the backup" * 100)
        _put(fed, running, tmp_path, "gone", b"deleted after the backup" * 100)
        with fed.client("b", running.port) as peer, fed.client("a", running.port) as owner:
            peer.list()  # b is a known site
            owner.share("old", "b")
    backup = tmp_path / "index-backup.sqlite3"
    source = sqlite3.connect(storage_paths(root)["index"])
    target = sqlite3.connect(backup)
    source.backup(target)
    source.close()
    target.close()
    with running_service(fed, root) as running:
        _put(fed, running, tmp_path, "new", b"acknowledged after the backup" * 100)
        _put(fed, running, tmp_path, "altered", b"acknowledged, then altered on disk" * 100)
        assert main(["store", "rm", "gone", *_args(fed, running, keyring=False)]) == 0
        with fed.client("a", running.port) as owner:
            owner.share("old", "b", revoke=True)
    altered = storage_paths(root)["objects"] / "a" / "altered"
    data = bytearray(altered.read_bytes())
    data[-40] ^= 1  # inside the final frame's tag: same structure, other bytes
    altered.write_bytes(bytes(data))
    index = storage_paths(root)["index"]
    for suffix in ("-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, index)  # roll the index back, then restart the service
    with running_service(fed, root) as running:
        lines = running.recovery.lines()
        assert any(line.startswith("INDEX ROLLBACK") for line in lines), lines
        assert any(line.startswith("RESTORED the index row of an acknowledged object") and
                   "a/new" in line for line in lines), lines
        assert any("acknowledged object had no index row, quarantined: a/altered" in line
                   for line in lines), lines
        assert any("stale index row of a deleted object: a/gone" in line for line in lines)
        code, out = _verify(fed, running, capsys)
        assert code == 1 and "ok a/new" in out, out
        assert "a/altered: receipted at log seq" in out and "ok a/old" in out, out
    assert server_main(["audit", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    rollback_seq = next(int(line.split("log seq ")[1].split(" ")[0]) for line in out.splitlines()
                        if "(rollback)" in line)
    assert "PROBLEM: a/altered: acknowledged put at log seq" in out, out
    assert "PROBLEM: a/old: shared with ['b'] in the index, [] by the log" in out, out
    assert "quarantined file(s)" in out
    # once the operator has looked into the alarms, the remaining damage still fails the audit
    reviewed = audit_storage(root, reviewed_through=rollback_seq + 10)
    assert not any(p.startswith("recovery at log seq") for p in reviewed.problems)
    assert any(p.startswith("a/altered: acknowledged put") for p in reviewed.problems)


def test_audit_log_rechained_without_the_key_fails_audit(
    fed: Federation, two_studies, capsys
) -> None:
    root, _ = two_studies
    pinned = fed.server_tls / SIGNING_PUB
    assert server_main(["audit", "--root", str(root), "--service-key", str(pinned)]) == 0
    capsys.readouterr()
    path = storage_paths(root)["audit"]
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    entries[0]["detail"] = "rewritten"
    prev = "0" * 64
    lines = []
    for data in entries:  # a careful forger: every hash and link recomputed
        data["prev_hash"] = prev
        entry = AuditEntry(**{**data, "entry_hash": ""})
        data["entry_hash"] = prev = entry.computed_hash()
        lines.append(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")
    path.write_text("".join(lines))
    db = sqlite3.connect(storage_paths(root)["index"])
    with db:
        db.execute("UPDATE audit_head SET entry_hash=?", (prev,))
    db.close()
    assert server_main(["audit", "--root", str(root), "--service-key", str(pinned)]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM: audit log: audit head seq" in out and "without the service's key" in out
    # a forger who also replaces the copy of the public key in the root is caught by the pin
    other = fed.base / "other.key"
    from fedcodec.server.storage.signing import ServiceSigner

    forger = ServiceSigner(other)
    forger.publish(root)
    db = sqlite3.connect(storage_paths(root)["index"])
    with db:
        db.execute("UPDATE audit_head SET signature=?", (forger.sign_head(len(entries), prev),))
    db.close()
    assert server_main(["audit", "--root", str(root)]) == 0  # the root's own copy is fooled
    capsys.readouterr()
    assert server_main(["audit", "--root", str(root), "--service-key", str(pinned)]) == 1


def test_truncated_and_padded_objects_are_refused_at_put_and_reported_by_audit(
    fed: Federation, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    blob = fed.sealed("a", "obj", os.urandom(3 * 1024 * 1024))
    with running_service(fed, root) as running, fed.client("a", running.port) as client:
        for name in ("cut", "pad"):
            sealed = fed.sealed("a", name, b"x")
            bad = sealed[:-1] if name == "cut" else sealed + b"extra"
            refused = "INVALID_ARGUMENT.*(truncated|after its final)"
            with pytest.raises(FedcodecError, match=refused):
                client.put_bytes(name, bad)
        client.put_bytes("obj", blob)
    stored = storage_paths(root)["objects"] / "a" / "obj"
    cut = blob[: len(blob) - 1000]
    stored.write_bytes(cut)
    db = sqlite3.connect(storage_paths(root)["index"])
    with db:  # even with the index made to agree, the structure gives it away
        db.execute("UPDATE objects SET size=?, sha256=? WHERE object_id='obj'",
                   (len(cut), hashlib.sha256(cut).hexdigest()))
    db.close()
    problems = audit_storage(root).problems
    assert any(p.startswith("a/obj: not a well-formed encrypted object: truncated")
               for p in problems), problems


def test_get_of_a_shared_object_checks_the_owner_too(fed: Federation, tmp_path: Path) -> None:
    """The owner named by the header must be the one asked for (not just the id)."""
    from fedcodec.client.store.delivery_check import IntegrityError, check_delivered

    header = envelope.read_header(fed.sealed("a", "x", b"data"))
    check_delivered(header, site="a", object_id="x")
    with pytest.raises(IntegrityError, match="asked for b/x but the service delivered a/x"):
        check_delivered(header, site="b", object_id="x")


def test_client_refuses_forged_receipts_and_a_new_service_key(tmp_path: Path) -> None:
    """A receipt must verify, say what was sent, and come from the pinned key."""
    from fedcodec.client.store.connection import checked_receipt
    from fedcodec.server.storage.servicer import receipt_message
    from fedcodec.server.storage.signing import ServiceSigner

    signer = ServiceSigner(tmp_path / "k1.key")
    signed = signer.receipt("put", "a", "x", 10, "ab" * 32, "cd" * 32, 7, "ef" * 32)
    message = receipt_message(signed)
    assert checked_receipt(message, action="put", site="a", object_id="x", sha256="ab" * 32)
    with pytest.raises(FedcodecError, match="not put a/y"):
        checked_receipt(message, action="put", site="a", object_id="y", sha256="ab" * 32)
    with pytest.raises(FedcodecError, match="with the sent sha256"):
        checked_receipt(message, action="put", site="a", object_id="x", sha256="00" * 32)
    forged = type(message)(payload=message.payload.replace(b'"log_seq":7', b'"log_seq":9'),
                           signature=message.signature, public_key=message.public_key)
    with pytest.raises(FedcodecError, match="signature does not verify"):
        checked_receipt(forged, action="put", site="a", object_id="x", sha256="ab" * 32)
    store = ReceiptStore(tmp_path / "state", "a")
    store.record(signed)
    other = ServiceSigner(tmp_path / "k2.key").receipt(
        "put", "a", "z", 1, "ab" * 32, "cd" * 32, 8, "ef" * 32)
    with pytest.raises(FedcodecError, match="not the pinned"):
        store.record(other)
    with pytest.raises(FedcodecError, match="not 'a'"):
        store.record(signer.receipt("put", "b", "x", 1, "ab" * 32, "cd" * 32, 9, "ef" * 32))
    assert store.latest("x").log_seq == 7


def test_signing_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    from fedcodec.server.storage.signing import ServiceSigner

    key = tmp_path / "k.key"
    ServiceSigner(key)
    key.chmod(0o644)
    with pytest.raises(FedcodecError, match="readable by group or others"):
        ServiceSigner(key)


def test_row_dropped_by_recovery_after_its_file_vanished_keeps_failing_audit(
    fed: Federation, two_studies, capsys
) -> None:
    """Recovery removes a row whose bytes are gone; that is never a clean state for audit."""
    root, _ = two_studies
    (storage_paths(root)["objects"] / "a" / "study-0001").unlink()
    with running_service(fed, root) as running:
        assert any("DATA LOSS: index row without stored bytes removed: a/study-0001" in line
                   for line in running.recovery.lines())
    assert server_main(["audit", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "(data_loss): index row without stored bytes removed" in out, out
    assert "PROBLEM: a/study-0001: acknowledged put at log seq 1" in out, out
