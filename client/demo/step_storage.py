"""Demo step ``storage``: the study's ``.fcz`` encrypted at its site, stored, fetched, audited.

The storage service is the real one (``fedcodec-server storage serve``, mutual TLS with a demo
CA) started on 127.0.0.1 with an ephemeral port and stopped when the step ends, whatever
happens. The checks are the platform's promises: the service root holds no plaintext byte run
of the container, the download decrypts to the same bytes, the service's signed receipt verifies
(``store verify``), another site is refused, and the hash-chained audit log verifies.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from fedcodec.client.demo.context import OK, DemoContext, StepOutcome
from fedcodec.client.demo.embedded_sites import DEMO_SITES
from fedcodec.client.demo.services import ServiceProcess, make_demo_pki, run_server_cli
from fedcodec.client.demo.step_data import STUDY_SITE, site_keyring
from fedcodec.client.store.connection import StoreAccessDenied, StoreClient
from fedcodec.client.store.receipt_store import ReceiptStore
from fedcodec.client.store.receipt_verify import verify_receipts
from fedcodec.client.store.transfer import get_file, put_file
from fedcodec.shared.errors import FedcodecError

OWNER = STUDY_SITE
"""The site whose study the demo stores (its data are the demo study's acquisition)."""
OBJECT_ID = "demo-study.fcz"
PROBE_BYTES = 48


def plaintext_probes(data: bytes, count: int = 16) -> list[bytes]:
    """Byte runs spread over ``data`` (start, end and between) that ciphertext must not hold."""
    if len(data) <= PROBE_BYTES:
        return [data]
    step = max(1, (len(data) - PROBE_BYTES) // (count - 1))
    return [data[i : i + PROBE_BYTES] for i in range(0, len(data) - PROBE_BYTES + 1, step)][:count]


def plaintext_leaks(root: Path, data: bytes) -> list[str]:
    """Files under ``root`` containing any probe of ``data`` (empty = no plaintext stored)."""
    probes = plaintext_probes(data)
    leaks = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        content = path.read_bytes()
        if any(probe in content for probe in probes):
            leaks.append(str(path.relative_to(root)))
    return leaks


def store_encrypted(ctx: DemoContext) -> StepOutcome:
    fcz: Path | None = ctx.results.get("stored_fcz")
    if fcz is None:
        raise FedcodecError("no lossless container of the study to store (compress step)")
    plain = fcz.read_bytes()
    sites = [site.name for site in DEMO_SITES]
    keyrings = {site: site_keyring(ctx.out / "keys", site) for site in sites}
    tls = make_demo_pki(ctx.out / "pki", sites)
    ctx.results["tls"] = tls
    root = ctx.out / "storage"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    fetched = ctx.out / "storage-roundtrip" / fcz.name
    fetched.unlink(missing_ok=True)
    service = ServiceProcess("storage", ["storage", "serve", "--root", str(root), "--tls-dir",
                                         str(tls["server"]), "--port", "0"],
                             ctx.out / "logs" / "storage.log")
    with service:
        ctx.results.setdefault("services", []).append(service)
        ctx.console.print(f"storage service (pid {service.pid}) on {service.address}, mutual TLS")
        start = time.perf_counter()
        with StoreClient(service.address, tls[OWNER]) as client:
            receipts = ReceiptStore(ctx.out / "state" / OWNER, OWNER)
            shutil.rmtree(receipts.folder, ignore_errors=True)  # a new service, a new key
            info = put_file(client, keyrings[OWNER], fcz, object_id=OBJECT_ID, receipts=receipts)
            put_seconds = time.perf_counter() - start
            start = time.perf_counter()
            header = get_file(client, keyrings[OWNER], OBJECT_ID, fetched, receipts=receipts)
            get_seconds = time.perf_counter() - start
            listed = [o.object_id for o in client.list()]
            verified = verify_receipts(client, receipts)
        if not verified.ok or info.receipt is None:
            raise FedcodecError(f"store verify failed: {(verified.problems or ['no receipt'])[0]}")
        receipt = info.receipt.receipt
        refused = ""
        with StoreClient(service.address, tls["site-a"]) as other:
            try:
                other.get_bytes(OBJECT_ID, OWNER)
            except StoreAccessDenied as exc:
                refused = str(exc)
        if not refused:
            raise FedcodecError("site-a could read site-c's object: isolation broken")
    ctx.console.print(f"storage service stopped (pid {service.pid})")
    same = fetched.read_bytes() == plain
    if not same:
        raise FedcodecError("the downloaded study does not decrypt to the uploaded bytes")
    leaks = plaintext_leaks(root, plain)
    if leaks:
        raise FedcodecError(f"plaintext of the study found in the storage root: {leaks[0]}")
    audit = json.loads(run_server_cli(["audit", "--root", str(root), "--json"]))
    if not audit["ok"]:
        raise FedcodecError(f"storage audit failed: {audit['problems'][:1]}")
    ctx.results.update(storage_root=root, fetched_fcz=fetched)
    section = [
        f"`{fcz.name}` ({len(plain)} bytes) envelope-encrypted with {OWNER}'s keyring "
        f"(`keys/{OWNER}/`, AES-256-GCM frames, data key wrapped by KEK "
        f"`{keyrings[OWNER].current_kek_id}`, "
        f"envelope codec label `{header.codec}`"
        f") and uploaded over mutual TLS (demo CA in `pki/`) to a storage service started "
        f"for this step on {service.address} (root `storage/`), then stopped.", "",
        "| check | result |", "| --- | --- |",
        f"| stored object | `{info.owner}/{info.object_id}`, {info.size} bytes of ciphertext, "
        f"{info.algorithm} |",
        f"| plaintext in storage root | none of {len(plaintext_probes(plain))} "
        f"{PROBE_BYTES}-byte runs of the .fcz found in any file |",
        f"| download + decrypt | identical to the upload ({len(plain)} bytes) |",
        f"| another site (site-a) reads it | refused: {refused} |",
        f"| audit (`fedcodec-server audit`) | ok: {audit['audit_log']['entries']} log entries, "
        f"{audit['objects_checked']} object(s) verified |",
        f"| receipt (kept in `state/{OWNER}/receipts/`) | signed by the service key "
        f"`{receipt.key_id}`: log seq {receipt.log_seq}; `store verify`: "
        f"{len(verified.verified)} object(s) present and intact |",
        f"| put / get | {put_seconds * 1000:.0f} ms / {get_seconds * 1000:.0f} ms |",
        f"| objects listed for {OWNER} | {', '.join(listed)} |",
    ]
    summary = (f"{info.size} B ciphertext stored, no plaintext, decrypts identical, "
               f"audit ok ({audit['audit_log']['entries']} entries)")
    metrics = {"ciphertext_bytes": info.size, "put_ms": put_seconds * 1000,
               "get_ms": get_seconds * 1000, "audit_entries": audit["audit_log"]["entries"]}
    return StepOutcome(OK, summary, section, [], metrics)
