"""``fedcodec deid IN_DIR -o OUT_DIR``: de-identified copies of a DICOM folder.

The UID mapping is keyed by the site keyring's de-identification key (DESIGN.md: one keyring per
site), found the way ``fedcodec keys`` and ``fedcodec store`` find it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from fedcodec.shared.atomic_files import write_atomic
from fedcodec.shared.errors import FedcodecError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "deid",
        help="de-identify a DICOM folder (PS3.15 Basic Profile) before anything leaves the site",
        description=(
            "Write de-identified copies of every DICOM file under IN_DIR into the new folder "
            "OUT_DIR (all or nothing). UIDs are replaced with a mapping keyed by the site "
            "keyring's de-identification key, so the same study always gets the same new UIDs."
        ),
    )
    parser.add_argument("input", type=Path, metavar="IN_DIR")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR")
    parser.add_argument("--site", help="site name (keyring in $FEDCODEC_HOME/keys/SITE)")
    parser.add_argument(
        "--keyring", type=Path, default=os.environ.get("FEDCODEC_KEYRING"), metavar="DIR",
        help="keyring directory (env FEDCODEC_KEYRING; default: the only keyring under "
        "$FEDCODEC_HOME/keys, or --site's)",
    )
    parser.add_argument("--key-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--create-key", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--retain-safe-private",
        action="store_true",
        help="keep checked numeric private tags (mosaic tiles, b-values, gradients, scale slope)",
    )
    parser.add_argument(
        "--pseudonymize-patient-id",
        action="store_true",
        help="replace Patient ID with a keyed pseudonym instead of emptying it",
    )
    parser.add_argument(
        "--basic-only",
        action="store_true",
        help="apply only the PS3.15 table (keep unlisted names, dates and UIDs)",
    )
    parser.add_argument(
        "--allow-burned-in",
        action="store_true",
        help="pass through images marked Burned In Annotation = YES (pixels are never cleaned)",
    )
    parser.add_argument("--report", type=Path, help="write the audit counts as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def site_deid_key(site: str | None, keyring_dir: Path | None) -> bytes:
    """The de-identification key of the site keyring ``--site`` / ``--keyring`` name."""
    from fedcodec.shared.crypto.keyring import SiteKeyring
    from fedcodec.shared.crypto.keyring_location import resolve_keyring_path

    return SiteKeyring.open(resolve_keyring_path(site, keyring_dir)).deid_key_bytes()


def run(args: argparse.Namespace) -> int:
    from fedcodec.shared.deid import DeidOptions, deidentify_folder

    if args.key_file is not None or args.create_key:
        raise FedcodecError(
            "--key-file/--create-key were removed: the key lives in the site keyring now; "
            "import an existing key file once with `fedcodec keys add-deid-key --from FILE`"
        )
    key = site_deid_key(args.site, args.keyring)
    options = DeidOptions(
        retain_safe_private=args.retain_safe_private,
        pseudonymize_patient_id=args.pseudonymize_patient_id,
        strict_unlisted=not args.basic_only,
        allow_burned_in_annotation=args.allow_burned_in,
    )
    result = deidentify_folder(
        args.input, args.output, uid_key=key, options=options, progress=not args.quiet
    )
    for skipped in result.skipped:
        print(f"skipped {skipped.path}: {skipped.reason}")
    for warning in sorted(set(result.report.warnings)):
        print(f"warning: {warning}")
    print(
        f"de-identified {len(result.written)} files into {args.output} "
        f"({len(result.skipped)} skipped)"
    )
    print(result.report.summary())
    if args.report:
        _write_json(args.report, result.report.to_dict() | {"files": len(result.written)})
    return 0


def _write_json(path: Path, payload: dict) -> None:
    try:
        write_atomic(path, json.dumps(payload, indent=1).encode())
    except OSError as exc:
        raise FedcodecError(f"cannot write report {path}: {exc.strerror}") from None
