"""``fedcodec join``: take part in a federation as a hospital site.

    fedcodec join keygen --keys KEYS          (send KEYS/supernode.pub to the coordinator)
    fedcodec join --superlink HOST:PORT --root-cert ca.pem --keys KEYS \
                  --data-dir /pacs/export --site st-elsewhere [--state-dir DIR] [policy flags]
    fedcodec join --check --data-dir /pacs/export [--state-dir DIR] [policy flags]

Surveys the folder first (refused when missing, empty, unreadable or without an MR image; other
modalities and unreadable files are skipped and counted per reason) and prints the site's summary
(patients, studies, MR series, slices, skipped); stores the site's privacy policy
(``site-policy.toml`` in the state folder: the flags change it, a run can only tighten it); then
starts this site's SuperNode over TLS with node authentication, pointed at its own DICOM folder,
in the foreground (SIGTERM / Ctrl-C stop it and the processes it started). ``--check`` stops
after the survey and the policy. Pixels, headers and the privacy accountant stay in
``--data-dir`` / ``--state-dir``; only masked model updates and the scalars the policy allows
leave (docs/guide-hospital-site.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("join", help="join a federated training run as a site")
    parser.add_argument("action", nargs="?", choices=("keygen",), help="keygen: create node keys")
    parser.add_argument("--keys", type=Path, help="folder of the SuperNode key pair (not for --check)")
    parser.add_argument("--superlink", help="the coordinator's host:port")
    parser.add_argument("--root-cert", type=Path, help="the federation CA certificate (ca.pem)")
    parser.add_argument("--data-dir", type=Path, help="this site's DICOM folder")
    parser.add_argument("--site", help="this site's name (default: the folder name)")
    parser.add_argument("--state-dir", type=Path, help="accountant + cache (default: ~/.fedcodec/SITE)")
    parser.add_argument("--check", action="store_true",
                        help="survey the folder and store the policy, do not start the SuperNode")
    policy = parser.add_argument_group("site privacy policy (stored in STATE/site-policy.toml; "
                                       "a run may tighten it, never loosen it)")
    policy.add_argument("--target-epsilon", type=float,
                        help="largest ε this site accepts (default 8); a run asking more is refused")
    policy.add_argument("--max-delta", type=float, help="largest δ this site accepts (default 1e-5)")
    policy.add_argument("--unit", choices=("patient", "study", "series", "slice"),
                        help="finest privacy unit this site accepts (default patient)")
    policy.add_argument("--min-patients", type=int,
                        help="fewest patients for patient-level training (default 2000, see "
                             "docs/guide-hospital-site.md)")
    policy.add_argument("--metrics",
                        help="comma list of optional metrics this site may report ('none' for "
                             "none; default heldout_bpp,train_loss,update_norm,sample_rate,"
                             "noise_multiplier)")
    policy.add_argument("--allow-no-dp", action="store_const", const=False, dest="dp",
                        help="accept runs without DP-SGD (default: refused)")
    policy.add_argument("--require-dp", action="store_const", const=True, dest="dp")
    policy.add_argument("--allow-no-secagg", action="store_const", const=False, dest="secagg",
                        help="accept rounds without SecAgg+ (default: refused)")
    policy.add_argument("--require-secagg", action="store_const", const=True, dest="secagg")
    parser.add_argument("--port", type=int, default=9094, help="local ClientApp API port")
    parser.add_argument("--force", action="store_true", help="keygen: replace existing keys")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fedcodec.client.federated.supernode import (
        create_node_keys,
        supernode_command,
        supernode_env,
    )
    from fedcodec.client.federated.site_policy import policy_path
    from fedcodec.shared.errors import FedcodecError
    from fedcodec.shared.supervise import run_supervised

    if args.action == "keygen":
        if args.keys is None:
            raise FedcodecError("join keygen needs --keys")
        _, public = create_node_keys(args.keys, force=args.force)
        print(f"SuperNode public key: {public} (send it to the coordinator)")
        return 0
    needed = ("data_dir",) if args.check else ("superlink", "root_cert", "keys", "data_dir")
    missing = [f"--{n.replace('_', '-')}" for n in needed if getattr(args, n) is None]
    if missing:
        raise FedcodecError(f"join needs {', '.join(missing)}")
    if not args.check:  # --check needs no keys; a SuperNode needs its key, not readable by others
        from fedcodec.client.federated.supernode import PRIVATE_KEY
        from fedcodec.shared.crypto.private_files import read_private_key_file

        read_private_key_file(args.keys / PRIVATE_KEY, what="SuperNode private key")
    site = args.site or args.data_dir.resolve().name
    state = args.state_dir or Path.home() / ".fedcodec" / site
    policy = site_survey_and_policy(args, site, state)
    if args.check:
        return 0
    cmd = supernode_command(args.superlink, args.root_cert, args.keys, args.data_dir, site, state,
                            args.port)
    print(f"site {site}: starting the SuperNode ({policy_path(state)} applies to every round)",
          flush=True)
    # SIGTERM / Ctrl-C stop the SuperNode and the superexec / ClientApp processes it started
    return run_supervised(cmd, supernode_env(state))


def site_survey_and_policy(args: argparse.Namespace, site: str, state: Path):
    """Survey the folder (refusing an unusable one), store and print the policy and the summary."""
    from fedcodec.client.federated.site_policy import (
        SiteRefusal,
        changed_policy,
        check_units,
        policy_path,
        save_policy,
    )
    from fedcodec.client.federated.site_survey import read_mr_series, save_survey

    metrics = None
    if args.metrics is not None:
        metrics = () if args.metrics.strip().lower() == "none" else tuple(
            m.strip() for m in args.metrics.split(",") if m.strip())
    # validate the flags first (fast), survey the folder, and only then write anything
    policy = changed_policy(state, unit=args.unit, dp=args.dp, secagg=args.secagg,
                            max_epsilon=args.target_epsilon, max_delta=args.max_delta,
                            min_patients=args.min_patients, metrics=metrics)
    _, survey = read_mr_series(args.data_dir, site)
    save_policy(state, policy)
    save_survey(state, survey)
    print(survey.summary())
    print(f"site policy ({policy_path(state)}): {policy.describe()}")
    try:  # the plan's reference recipe (fedcodec privacy plan defaults)
        check_units(policy, site, "patient", survey.patients,
                    {"num-server-rounds": 50, "local-steps": 20, "batch-units": 64.0})
    except SiteRefusal as refusal:
        print(f"warning: {refusal}")
    return policy
