"""``fedcodec keys init|rotate|list|export-public|import-peer|add-deid-key``: the site keyring.

Thin: the work is in ``fedcodec.shared.crypto``. Secret keys are never printed; only ids, dates,
public keys and fingerprints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keys", help="create, rotate and list the site keyring; exchange public keys with peers"
    )
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)

    def with_location(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--site", help="site name (keyring in $FEDCODEC_HOME/keys/SITE)")
        sub.add_argument("--keyring", type=Path, metavar="DIR", help="keyring directory")
        return sub

    init = with_location(actions.add_parser("init", help="create a new keyring for a site"))
    init.set_defaults(func=run_init)
    rotate = with_location(
        actions.add_parser("rotate", help="new current KEK; the old one is kept, retired")
    )
    rotate.set_defaults(func=run_rotate)
    listing = with_location(actions.add_parser("list", help="KEKs, identity key and peers"))
    listing.set_defaults(func=run_list)
    export = with_location(
        actions.add_parser("export-public", help="write this site's public key file for peers")
    )
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    export.set_defaults(func=run_export)
    peer = with_location(
        actions.add_parser("import-peer", help="pin a peer site's public key (from export-public)")
    )
    peer.add_argument("public_key_file", type=Path, metavar="FILE")
    peer.add_argument(
        "--replace", action="store_true", help="replace a different key already pinned for it"
    )
    peer.set_defaults(func=run_import_peer)
    deid = with_location(
        actions.add_parser(
            "add-deid-key",
            help="give a keyring made before de-identification keys existed one",
            description=(
                "Keyrings made by `keys init` already hold a de-identification key. An older "
                "keyring gets a new random one, or, with --from, the key of the file an older "
                "`fedcodec deid --key-file` used, so studies keep mapping to the same new UIDs."
            ),
        )
    )
    deid.add_argument(
        "--from", dest="legacy_key_file", type=Path, metavar="KEY_FILE",
        help="import this legacy de-identification key file (then delete it)",
    )
    deid.set_defaults(func=run_add_deid_key)


def _open(args: argparse.Namespace):
    from fedcodec.shared.crypto.keyring import SiteKeyring
    from fedcodec.shared.crypto.keyring_location import resolve_keyring_path

    return SiteKeyring.open(resolve_keyring_path(args.site, args.keyring))


def run_init(args: argparse.Namespace) -> int:
    from fedcodec.shared.crypto.keyring import SiteKeyring
    from fedcodec.shared.crypto.keyring_location import resolve_keyring_path
    from fedcodec.shared.errors import FedcodecError

    if not args.site:
        raise FedcodecError("keys init needs --site NAME")
    keyring = SiteKeyring.create(resolve_keyring_path(args.site, args.keyring), args.site)
    print(f"created keyring for site {keyring.site} in {keyring.path}")
    print(f"  current KEK   {keyring.current_kek_id}")
    print(f"  identity key  {keyring.identity_id} (X25519)")
    print(f"  de-id key     {keyring.deid_key_id} (UID mapping, never rotated)")
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    keyring = _open(args)
    previous = keyring.current_kek_id
    new = keyring.rotate()
    print(f"site {keyring.site}: current KEK is now {new}; {previous} is retired (kept)")
    print("  rewrap existing objects to move them to the new KEK")
    print("  the de-identification key is not rotated: UIDs keep mapping the same way")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from fedcodec.shared.crypto.kdf import public_key_fingerprint

    keyring = _open(args)
    print(f"site {keyring.site}  keyring {keyring.path}  created {keyring.created_at}")
    print("KEKs:")
    for record in keyring.kek_records:
        retired = f"  retired {record.retired_at}" if record.retired_at else ""
        print(f"  {record.kek_id}  {record.status:<8} created {record.created_at}{retired}")
    print(f"identity: {keyring.identity_id}  X25519")
    print(f"  fingerprint {public_key_fingerprint(keyring.public_key_bytes())}")
    if keyring.deid_key_id:
        print(f"de-identification: {keyring.deid_key_id}  created {keyring.deid_key_created_at}")
    else:
        print("de-identification: none (add one with: fedcodec keys add-deid-key)")
    print("peers:" if keyring.peer_records else "peers: none")
    for peer in keyring.peer_records:
        print(f"  {peer.site}  {peer.key_id}  imported {peer.imported_at}")
        print(f"    fingerprint {peer.fingerprint}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from fedcodec.shared.crypto.private_files import write_private_file
    from fedcodec.shared.crypto.public_key_file import public_key_document

    keyring = _open(args)
    document = public_key_document(keyring)
    if args.output is None:
        sys.stdout.write(document)
        return 0
    write_private_file(args.output, document.encode("utf-8"))
    print(f"wrote public key of site {keyring.site} ({keyring.identity_id}) to {args.output}")
    return 0


def run_import_peer(args: argparse.Namespace) -> int:
    from fedcodec.shared.crypto.public_key_file import parse_public_key_document
    from fedcodec.shared.errors import FedcodecError

    keyring = _open(args)
    try:
        text = args.public_key_file.read_bytes()
    except OSError as exc:
        raise FedcodecError(f"cannot read {args.public_key_file}: {exc.strerror}") from None
    published = parse_public_key_document(text, source=str(args.public_key_file))
    record = keyring.import_peer(published.site, published.public_key, replace=args.replace)
    print(f"site {keyring.site}: pinned peer {record.site} key {record.key_id}")
    print(f"  fingerprint {record.fingerprint} (compare it with {record.site} out of band)")
    return 0


def run_add_deid_key(args: argparse.Namespace) -> int:
    keyring = _open(args)
    key_id = keyring.add_deid_key(args.legacy_key_file)
    source = f"imported from {args.legacy_key_file}" if args.legacy_key_file else "new"
    print(f"site {keyring.site}: de-identification key {key_id} ({source})")
    if args.legacy_key_file:
        print(f"  the keyring holds it now: delete {args.legacy_key_file} once it is backed up")
    return 0
