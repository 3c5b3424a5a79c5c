"""``fedcodec store verify``: prove the service still holds every object this site was receipted.

For each kept receipt of a put or replacement the object must be listed with the receipted
SHA-256 and, downloaded, hash to it and carry a header naming this site, its id and the
receipted content (a full download per object; ``--quick`` trusts the listing). The service's
signed audit head must be signed by the pinned key and be at or past every receipt's log
position: a head behind a receipt means the log was rolled back. What it cannot see: objects
uploaded from another machine (their receipts are there, not here), and a rollback to a state
after the last receipt this site holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fedcodec.client.store.connection import StoreClient
from fedcodec.client.store.delivery_check import check_delivered, peek_header
from fedcodec.client.store.receipt_store import ReceiptStore
from fedcodec.shared.errors import FedcodecError


@dataclass
class VerifyReport:
    """What ``store verify`` checked and found; ``ok`` only without problems."""

    site: str
    head_seq: int = 0
    receipts: int = 0
    verified: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unreceipted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [f"site {self.site}: {self.receipts} receipts, service log head seq {self.head_seq}"]
        out += [f"ok {name}" for name in self.verified]
        out += [f"note: {name} is stored but this site holds no receipt for it"
                for name in self.unreceipted]
        out += [f"PROBLEM: {problem}" for problem in self.problems]
        out.append("verify: OK" if self.ok else f"verify: FAILED ({len(self.problems)} problems)")
        return out


def verify_receipts(
    client: StoreClient, receipts: ReceiptStore, *, download: bool = True
) -> VerifyReport:
    """Check the service against every receipt in ``receipts`` (see the module docstring)."""
    report = VerifyReport(client.site)
    head = client.head()
    receipts.check_key(head.public_key, "the service's audit head")
    report.head_seq = head.seq
    kept = [signed.receipt for signed in receipts.all()]
    report.receipts = len(kept)
    newest = max((r.log_seq for r in kept), default=0)
    if head.seq < newest:
        report.problems.append(
            f"the service's audit log ends at seq {head.seq}, before this site's receipt at seq "
            f"{newest}: the log was rolled back"
        )
    listed = {o.object_id: o for o in client.list()}
    for receipt in kept:
        name = f"{receipt.site}/{receipt.object_id}"
        stored = listed.pop(receipt.object_id, None)
        if receipt.action == "delete":
            if stored is not None:
                report.problems.append(
                    f"{name}: deleted at log seq {receipt.log_seq} but listed again"
                )
            continue
        if stored is None:
            report.problems.append(
                f"{name}: receipted at log seq {receipt.log_seq} but the service does not list "
                "it (deleted outside this site, or rolled back)"
            )
            continue
        if stored.sha256 != receipt.sha256:
            report.problems.append(
                f"{name}: the service lists another version than the one receipted at log seq "
                f"{receipt.log_seq} (rolled back, or changed outside this site)"
            )
            continue
        if download:
            try:
                _download_and_check(client, receipt.object_id, receipts)
            except FedcodecError as exc:
                report.problems.append(f"{name}: {exc}")
                continue
        report.verified.append(name)
    report.unreceipted = sorted(f"{client.site}/{object_id}" for object_id in listed)
    return report


def _download_and_check(client: StoreClient, object_id: str, receipts: ReceiptStore) -> None:
    """Download the whole object: header checked against the receipt, bytes against its hash."""
    info, chunks = client.get_blob(object_id)
    header, chunks = peek_header(chunks)
    try:
        check_delivered(header, site=client.site, object_id=object_id, sha256=info.sha256,
                        receipt=receipts.latest(object_id))
    except BaseException:
        getattr(chunks, "close", lambda: None)()
        raise
    for _ in chunks:  # the stream raises at its end unless size and SHA-256 match
        pass
