"""``fedcodec store``: put, get, list, remove and share encrypted objects on the storage service."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path

from fedcodec.client.store.connection import StoreClient
from fedcodec.client.store.receipt_store import ReceiptStore, default_state_dir
from fedcodec.shared.errors import FedcodecError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "store", help="encrypted object storage (the service never sees keys or plaintext)"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--service", default=os.environ.get("FEDCODEC_STORE_SERVICE"),
        help="HOST:PORT of the storage service (env FEDCODEC_STORE_SERVICE)",
    )
    common.add_argument(
        "--tls-dir", type=Path, default=os.environ.get("FEDCODEC_TLS_DIR"),
        help="folder with site.pem, site.key, ca.pem (env FEDCODEC_TLS_DIR)",
    )
    common.add_argument("--timeout", type=float, default=600.0, help="seconds per call")
    common.add_argument(
        "--state-dir", type=Path, default=None,
        help="the site's state folder, where receipts are kept (env FEDCODEC_STATE_DIR; "
        "default $FEDCODEC_HOME/SITE)",
    )
    keyed = argparse.ArgumentParser(add_help=False)
    keyed.add_argument(
        "--keyring", type=Path, default=os.environ.get("FEDCODEC_KEYRING"),
        help="the site keyring folder (env FEDCODEC_KEYRING; default: the keyring of the "
        "certificate's site under $FEDCODEC_HOME/keys)",
    )
    actions = parser.add_subparsers(dest="store_action", metavar="ACTION", required=True)

    put = actions.add_parser("put", parents=[common, keyed], help="encrypt and upload a file")
    put.add_argument("file", type=Path)
    put.add_argument("--id", dest="object_id", help="object id (default: the file name)")
    put.add_argument("--codec", help="codec label for the header (default: fcz for .fcz files)")
    put.add_argument(
        "--allow-identified", action="store_true",
        help="upload a study whose DICOM headers are not de-identified (refused otherwise)",
    )
    put.set_defaults(func=_put)

    get = actions.add_parser("get", parents=[common, keyed], help="download and decrypt")
    get.add_argument("object_id")
    get.add_argument("-o", "--output", type=Path, required=True)
    get.add_argument("--owner", default="", help="owning site of an object shared with you")
    get.set_defaults(func=_get)

    ls = actions.add_parser("ls", parents=[common], help="list this site's objects")
    ls.add_argument("--shared", action="store_true", help="objects other sites shared with you")
    ls.add_argument("--prefix", default="")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_ls)

    rm = actions.add_parser("rm", parents=[common], help="delete an object of this site")
    rm.add_argument("object_id")
    rm.set_defaults(func=_rm)

    share = actions.add_parser(
        "share", parents=[common, keyed],
        help="let another site read and decrypt an object (its public key must be imported)",
    )
    share.add_argument("object_id")
    share.add_argument("--with", dest="peer", required=True, metavar="SITE")
    share.add_argument("--revoke", action="store_true", help="take the grant back")
    share.set_defaults(func=_share)

    rewrap = actions.add_parser(
        "rewrap", parents=[common, keyed],
        help="re-wrap objects under the current KEK (after `fedcodec keys rotate`)",
    )
    rewrap.add_argument("object_ids", nargs="*", metavar="ID")
    rewrap.add_argument("--all", action="store_true", help="every object not on the current KEK")
    rewrap.set_defaults(func=_rewrap)

    verify = actions.add_parser(
        "verify", parents=[common],
        help="prove every object this site holds a receipt for is stored intact (exit 1 if not)",
    )
    verify.add_argument(
        "--quick", action="store_true", help="compare the service's listing only (no downloads)"
    )
    verify.set_defaults(func=_verify)


def _client(args: argparse.Namespace) -> StoreClient:
    if not args.service:
        raise FedcodecError("no storage service given (--service HOST:PORT)")
    if not args.tls_dir:
        raise FedcodecError("no TLS folder given (--tls-dir DIR)")
    return StoreClient(args.service, args.tls_dir, timeout=args.timeout)


def _receipts(args: argparse.Namespace, client: StoreClient) -> ReceiptStore:
    """The site's receipts: ``--state-dir``, else :func:`default_state_dir` of its site."""
    return ReceiptStore(args.state_dir or default_state_dir(client.site), client.site)


def _keyring(args: argparse.Namespace, client: StoreClient):
    """``--keyring``, else the keyring of the certificate's site in ``$FEDCODEC_HOME/keys``."""
    from fedcodec.shared.crypto.keyring import SiteKeyring
    from fedcodec.shared.crypto.keyring_location import resolve_keyring_path

    return SiteKeyring.open(resolve_keyring_path(site=client.site, path=args.keyring))


def _put(args: argparse.Namespace) -> int:
    from fedcodec.client.store.transfer import put_file

    with _client(args) as client:
        keyring = _keyring(args, client)
        info = put_file(
            client, keyring, args.file, object_id=args.object_id, codec=args.codec,
            receipts=_receipts(args, client), allow_identified=args.allow_identified,
        )
    receipt = f", receipt at log seq {info.receipt.receipt.log_seq}" if info.receipt else ""
    print(f"stored {info.owner}/{info.object_id}: {info.size} bytes, sha256 {info.sha256[:16]}..., "
          f"keys {','.join(info.key_ids)}{receipt}")
    return 0


def _get(args: argparse.Namespace) -> int:
    from fedcodec.client.store.transfer import get_file

    with _client(args) as client:
        keyring = _keyring(args, client)
        header = get_file(
            client, keyring, args.object_id, args.output, owner=args.owner,
            receipts=_receipts(args, client),
        )
    print(f"wrote {args.output} ({header.site}/{header.object_id}, codec {header.codec})")
    return 0


def _ls(args: argparse.Namespace) -> int:
    with _client(args) as client:
        objects = client.list(shared_with_me=args.shared, prefix=args.prefix)
    if args.json:
        print(json.dumps([o.to_json() for o in objects], indent=2))
        return 0
    if not objects:
        print("(no objects shared with this site)" if args.shared else "(no objects)")
    for o in objects:
        created = dt.datetime.fromtimestamp(o.created_unix_ms / 1000, dt.timezone.utc)
        shared = f"  shared with {','.join(o.shared_with)}" if o.shared_with else ""
        print(f"{o.owner}/{o.object_id}\t{o.size}\t{created:%Y-%m-%d %H:%M}\t"
              f"{','.join(o.key_ids)}{shared}")
    return 0


def _rm(args: argparse.Namespace) -> int:
    with _client(args) as client:
        info = client.delete(args.object_id)
        if info.receipt is not None:
            _receipts(args, client).record(info.receipt)
    print(f"deleted {info.owner}/{info.object_id}")
    return 0


def _share(args: argparse.Namespace) -> int:
    from fedcodec.client.store.transfer import share_object

    with _client(args) as client:
        keyring = _keyring(args, client)
        info = share_object(
            client, keyring, args.object_id, args.peer, revoke=args.revoke,
            receipts=_receipts(args, client),
        )
    verb = "revoked" if args.revoke else "shared"
    print(f"{verb} {info.owner}/{info.object_id} with {args.peer}; readers now: "
          f"{','.join(info.shared_with) or '(owner only)'}")
    return 0


def _rewrap(args: argparse.Namespace) -> int:
    from fedcodec.client.store.transfer import rewrap_object

    with _client(args) as client:
        keyring = _keyring(args, client)
        ids = list(args.object_ids)
        if args.all:
            ids += [o.object_id for o in client.list()
                    if keyring.current_kek_id not in o.key_ids and o.object_id not in ids]
        if not ids:
            raise FedcodecError("nothing to rewrap: give object ids or --all")
        for object_id in ids:
            info = rewrap_object(client, keyring, object_id, _receipts(args, client))
            print(f"rewrapped {info.owner}/{info.object_id}: keys {','.join(info.key_ids)}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from fedcodec.client.store.receipt_verify import verify_receipts

    with _client(args) as client:
        report = verify_receipts(client, _receipts(args, client), download=not args.quick)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1
