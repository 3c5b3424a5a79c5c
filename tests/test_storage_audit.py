"""Must-show: the audit chain catches edits, deletions, reordering and truncation; the audit
command re-checks every stored object and prints the inventory."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from test_storage_support import Federation

from fedcodec.server.audit.log import AuditLog, verify_chain
from fedcodec.server.audit.report import audit_storage, render_text
from fedcodec.server.cli import main as server_main
from fedcodec.server.storage.errors import AccessDenied
from fedcodec.server.storage.root import open_storage, storage_paths
from fedcodec.server.storage.service import PutMetadata
from fedcodec.shared.crypto.keyring import SiteKeyring


@pytest.fixture()
def log(tmp_path: Path) -> tuple[Path, list[tuple[int, str]]]:
    anchors: list[tuple[int, str]] = []
    audit = AuditLog(tmp_path / "audit.jsonl", anchor=lambda seq, h: anchors.append((seq, h)))
    for i in range(6):
        audit.append(site="a", action="put", outcome="ok", owner="a", object_id=f"o{i}", key_id="k")
    audit.close()
    return tmp_path / "audit.jsonl", anchors


def _rewrite(path: Path, lines: list[str]) -> None:
    path.write_text("".join(lines))


def test_intact_chain_verifies_and_matches_its_anchor(log) -> None:
    path, anchors = log
    report = verify_chain(path, anchors[-1])
    assert report.ok and report.entries == 6 and report.head == anchors[-1]
    first = json.loads(path.read_text().splitlines()[0])
    assert first["prev_hash"] == "0" * 64 and first["seq"] == 1


def test_edited_entry_is_detected(log) -> None:
    path, anchors = log
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"site":"a"', '"site":"b"')
    _rewrite(path, lines)
    assert verify_chain(path, anchors[-1]).problems == [
        "line 3: seq 3 content does not match its hash (edited)"
    ]


def test_edited_entry_with_recomputed_hash_breaks_the_next_link(log) -> None:
    path, anchors = log
    lines = path.read_text().splitlines(keepends=True)
    entry = json.loads(lines[2])
    entry["outcome"] = "denied"
    body = {k: v for k, v in entry.items() if k != "entry_hash"}
    entry["entry_hash"] = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    lines[2] = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
    _rewrite(path, lines)
    problems = verify_chain(path, anchors[-1]).problems
    assert problems == [
        "line 4: seq 4 does not link to the previous entry "
        "(an entry before it was changed, removed or reordered)"
    ]


def test_deleted_entry_is_detected(log) -> None:
    path, anchors = log
    lines = path.read_text().splitlines(keepends=True)
    del lines[2]
    _rewrite(path, lines)
    problems = verify_chain(path, anchors[-1]).problems
    assert problems[0] == "line 3: seq 4 follows 2 (entries removed or reordered)"
    assert "line 3: seq 4 does not link" in problems[1]


def test_reordered_entries_are_detected(log) -> None:
    path, anchors = log
    lines = path.read_text().splitlines(keepends=True)
    lines[1], lines[2] = lines[2], lines[1]
    _rewrite(path, lines)
    problems = verify_chain(path, anchors[-1]).problems
    assert "line 2: seq 3 follows 1 (entries removed or reordered)" in problems
    assert "line 3: seq 2 follows 3 (entries removed or reordered)" in problems


def test_removed_tail_is_caught_by_the_anchor(log) -> None:
    path, anchors = log
    lines = path.read_text().splitlines(keepends=True)
    _rewrite(path, lines[:-2])
    assert verify_chain(path).ok  # the chain alone cannot see a cut tail ...
    assert verify_chain(path, anchors[-1]).problems == [  # ... the anchor can
        "anchored entry seq 6 is missing: the log ends at seq 4 (entries at the end were removed)"
    ]


def test_forged_appended_entries_are_caught_by_the_anchor(log) -> None:
    path, anchors = log
    audit = AuditLog(path)  # no anchor: written outside the service
    audit.append(site="a", action="delete", outcome="ok")
    audit.append(site="a", action="delete", outcome="ok")
    audit.close()
    assert verify_chain(path, anchors[-1]).problems == [
        "2 entries follow the anchored head seq 6 (appended outside the service?)"
    ]


def test_torn_or_garbage_lines_are_reported(log) -> None:
    path, anchors = log
    with open(path, "a") as handle:
        handle.write('{"seq": 7, "ti')
    problems = verify_chain(path, anchors[-1]).problems
    assert problems[0] == "line 7: incomplete last line (not newline-terminated)"


@pytest.fixture()
def stored(tmp_path: Path) -> tuple[Path, Federation]:
    fed = Federation(tmp_path, tmp_path / "ca", tmp_path / "tls")
    for site in ("a", "b"):
        fed.keyrings[site] = SiteKeyring.create(tmp_path / f"keyring-{site}", site)
    service, _ = open_storage(tmp_path / "root")
    for site, object_id, size in (("a", "a1", 1000), ("a", "a2", 3000), ("b", "b1", 500)):
        blob = fed.sealed(site, object_id, bytes(size))
        meta = PutMetadata(object_id, "", len(blob), hashlib.sha256(blob).digest())
        service.put(site, meta, [blob])
    service.list("b")
    service.share("a", "a1", "b")
    with pytest.raises(AccessDenied):
        service.get("b", "a", "a2")  # denied, and audited
    service.close()
    return tmp_path / "root", fed


def test_audit_report_inventories_a_healthy_root(stored) -> None:
    root, fed = stored
    report = audit_storage(root)
    assert report.ok, report.problems
    assert report.objects_checked == 3 and report.chain.entries == 6
    ka, kb = fed.keyrings["a"].current_kek_id, fed.keyrings["b"].current_kek_id
    assert set(report.key_ids) == {ka, kb}
    assert report.key_ids[ka]["objects"] == 2 and report.key_ids[ka]["sites"] == ["a"]
    assert report.key_ids[ka]["age_days"] >= 0
    sizes = {site: row["bytes"] for site, row in report.sites.items()}
    objects = storage_paths(root)["objects"]
    assert sizes == {
        "a": (objects / "a/a1").stat().st_size + (objects / "a/a2").stat().st_size,
        "b": (objects / "b/b1").stat().st_size,
    }
    assert report.sites["a"]["shared"] == 1
    assert list(report.algorithms) == ["AES-256-GCM-STREAM/HKDF-SHA256/AES-KW/X25519"]
    text = render_text(report)
    assert "audit: OK" in text and f"{ka}: 2 objects" in text


def test_audit_report_finds_damaged_foreign_and_missing_objects(stored) -> None:
    root, _ = stored
    objects = storage_paths(root)["objects"]
    data = bytearray((objects / "a/a2").read_bytes())
    data[-40] ^= 1
    (objects / "a/a2").write_bytes(bytes(data))
    (objects / "b/b1").write_bytes(b"plaintext where ciphertext should be")
    (objects / "b/stray").write_bytes(b"dropped in by hand")
    (objects / "a/a1").unlink()
    problems = audit_storage(root).problems
    assert "a/a1: indexed but its bytes are missing" in problems
    size = len(data)
    assert (
        f"a/a2: stored bytes do not match the index (size {size} vs {size}, sha256 differs)"
        in problems
    )
    assert (
        "b/b1: not a well-formed encrypted object: not an encrypted fedcodec object "
        "(bad magic bytes)" in problems
    )
    assert "b/stray: stored but not in the index" in problems


def test_audit_command_exit_codes_and_json(stored, capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = stored
    assert server_main(["audit", "--root", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["audit_log"]["entries"] == 6 and report["objects_checked"] == 3
    log = storage_paths(root)["audit"]
    lines = log.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace('"outcome":"ok"', '"outcome":"denied"')
    log.write_text("".join(lines))
    assert server_main(["audit", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM: audit log: line 1: seq 1 content does not match its hash (edited)" in out
    # the log no longer acknowledges that put, so the cross-check flags the row as well
    assert "PROBLEM: a/a1: in the index but the log has no acknowledged put of it" in out
    assert "audit: FAILED (2 problems)" in out
    assert server_main(["audit", "--root", str(root / "nope")]) == 2
    assert "no storage index" in capsys.readouterr().err
