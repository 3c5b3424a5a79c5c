"""``fedcodec-server federation``: set up, run and drive the federated training coordinator.

    fedcodec-server federation init  --dir FED --address 203.0.113.5:9093 [--host NAME] [--ip IP]
    fedcodec-server federation start --dir FED [--host 0.0.0.0] [--port 9093] [--health-address A]
    fedcodec-server federation register --dir FED SITE.pub [--name SITE]    (idempotent)
    fedcodec-server federation status --dir FED                            (SuperNodes, reachability)
    fedcodec-server federation run --dir FED [--rounds N | --total-rounds T] [-c key=value ...]
    fedcodec-server federation simulate --supernodes N --run-config RUN.json   (one machine, Ray)

``init`` writes the CA and SuperLink certificate (give each site ``FED/tls/ca.pem``); ``start``
runs the SuperLink with TLS and SuperNode authentication in the foreground (SIGTERM / SIGINT stop
it and the helpers it spawned; ``--health-address`` adds the gRPC health service); ``register``
admits a site's SuperNode public key (a key already registered is reported, not an error);
``status`` asks the SuperLink over TLS which SuperNodes it knows, by site name; ``run`` submits
the app (``flwr run``), checkpointing to ``FED/server``: ``--rounds N`` adds N rounds to what the
federation already has, ``--total-rounds T`` resumes an interrupted run up to T rounds in all
(``-c num-server-rounds=T`` is the same total). A run whose round could not aggregate (after
``round-retries``) exits non-zero and registers no model.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from fedcodec.shared.errors import FedcodecError

REPO = Path(__file__).resolve().parents[2]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("federation", help="federated training coordinator (Flower)")
    actions = parser.add_subparsers(dest="federation_action", metavar="ACTION", required=True)

    init = actions.add_parser("init", help="CA, SuperLink certificate and flwr connection")
    init.add_argument("--dir", type=Path, required=True, help="the federation folder")
    init.add_argument("--address", required=True, help="host:port sites and flwr dial")
    init.add_argument("--host", action="append", help="DNS name in the certificate (repeatable)")
    init.add_argument("--ip", action="append", help="IP address in the certificate (repeatable)")
    init.add_argument("--force", action="store_true", help="replace existing certificates")
    init.set_defaults(func=_init)

    start = actions.add_parser("start", help="run the SuperLink (TLS + SuperNode auth)")
    start.add_argument("--dir", type=Path, required=True)
    start.add_argument("--host", default="0.0.0.0")
    start.add_argument("--port", type=int, default=9093)
    start.add_argument("--health-address", default=None,
                       help="host:port of the gRPC health service (grpc.health.v1, no TLS; off "
                            "by default; bind it where only your orchestrator can reach it)")
    start.add_argument("--stop-grace", type=float, default=20.0,
                       help="seconds the SuperLink gets to stop after SIGTERM before SIGKILL")
    start.set_defaults(func=_start)

    status = actions.add_parser("status", help="is the SuperLink up, which SuperNodes it knows")
    status.add_argument("--dir", type=Path, required=True)
    status.add_argument("--timeout", type=float, default=60.0)
    status.set_defaults(func=_status)

    reg = actions.add_parser("register", help="admit a site's SuperNode public key")
    reg.add_argument("public_key", type=Path)
    reg.add_argument("--dir", type=Path, required=True)
    reg.add_argument("--name", default="")
    reg.set_defaults(func=_register)

    run = actions.add_parser("run", help="submit the federated training run (flwr run)")
    run.add_argument("--dir", type=Path, required=True)
    rounds = run.add_mutually_exclusive_group()
    rounds.add_argument("--rounds", type=int,
                        help="rounds to run *in addition to* those the federation's checkpoint "
                             "already holds (a fresh federation: N rounds in all)")
    rounds.add_argument("--total-rounds", type=int,
                        help="train until the federation has this many rounds in all (resume an "
                             "interrupted run to its original target)")
    run.add_argument("-c", "--config", action="append", default=[],
                     help="run config override key=value (see [tool.flwr.app.config])")
    run.add_argument("--app", type=Path, default=REPO, help="the app folder (pyproject.toml)")
    run.set_defaults(func=_run)

    sim = actions.add_parser("simulate", help="run a whole federation on this machine (Ray)")
    sim.add_argument("--supernodes", type=int, required=True, help="number of simulated sites")
    sim.add_argument("--run-config", type=Path, required=True,
                     help="JSON run config (keys of [tool.flwr.app.config])")
    sim.add_argument("--cpus", type=int, default=2, help="CPUs Ray may use")
    sim.add_argument("--server-app", default=None, help="ServerApp factory module:attribute")
    sim.add_argument("--client-app", default=None, help="ClientApp factory module:attribute")
    sim.set_defaults(func=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    import json

    from fedcodec.server.federated import simulation

    simulation.quiet_flower_environment()
    try:
        config = json.loads(args.run_config.read_text())
    except (OSError, ValueError) as exc:
        raise FedcodecError(f"cannot read run config {args.run_config}: {exc}") from None
    simulation.run(args.server_app or simulation.SERVER_APP_FACTORY,
                   args.client_app or simulation.CLIENT_APP_FACTORY,
                   args.supernodes, config, args.cpus)
    return 0


def _init(args: argparse.Namespace) -> int:
    from fedcodec.server.federated.superlink import init_federation

    host = args.address.rsplit(":", 1)[0]
    ips = tuple(args.ip or (["127.0.0.1"] if host in ("127.0.0.1", "localhost") else []))
    hosts = tuple(args.host or (["localhost"] if not ips or host == "localhost" else []))
    if host not in hosts + ips:
        hosts += (host,) if not host.replace(".", "").isdigit() else ()
        ips += (host,) if host.replace(".", "").isdigit() else ()
    fed = init_federation(args.dir, args.address, hosts, ips, args.force)
    print(f"federation ready in {fed.root}; give sites {fed.ca_cert}")
    return 0


def _start(args: argparse.Namespace) -> int:
    from fedcodec.server.federated.superlink import FederationDir, flower_env, superlink_command
    from fedcodec.shared.supervise import run_supervised

    fed = FederationDir(args.dir)
    if not (fed.tls_dir / "server.pem").exists():
        raise FedcodecError(f"{fed.root} has no SuperLink certificate: run `federation init` first")
    from fedcodec.shared.crypto.private_files import read_private_key_file

    read_private_key_file(fed.tls_dir / "server.key", what="TLS private key")
    cmd = superlink_command(fed, args.host, args.port, args.health_address)
    print(f"SuperLink: https://{args.host}:{args.port} (Fleet, Control and Runtime API; TLS, "
          f"registered SuperNodes only); database {fed.root / 'superlink.db'}", flush=True)
    if args.health_address:
        print(f"health: grpc.health.v1 on {args.health_address} (no TLS)", flush=True)
    print(f"check: fedcodec-server federation status --dir {fed.root}; stop: Ctrl-C or SIGTERM",
          flush=True)
    return run_supervised(cmd, flower_env(fed.flwr_home), grace=args.stop_grace)


def _register(args: argparse.Namespace) -> int:
    from fedcodec.server.federated.superlink import FederationDir, register_supernode

    print(register_supernode(FederationDir(args.dir), args.public_key, args.name))
    return 0


def _status(args: argparse.Namespace) -> int:
    from fedcodec.server.federated.superlink import FederationDir, site_names, supernode_status

    fed = FederationDir(args.dir)
    nodes = supernode_status(fed, args.timeout)
    names = site_names(fed)
    print(f"SuperLink reachable ({fed.flwr_home / 'config.toml'}); {len(nodes)} SuperNode(s)")
    for node in nodes:
        node_id = str(node.get("node-id"))
        print(f"  {names.get(node_id, '(unnamed)'):<20} node {node_id}  {node.get('status')}  "
              f"online since {node.get('online-at')}  (registered {node.get('created-at')})")
    return 0


def _parse_value(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip('"')


def planned_total_rounds(fed, config: dict, more: int | None, total: int | None) -> int | None:
    """``num-server-rounds`` (a total: the ServerApp resumes from its checkpoint and runs what is
    left) for ``--rounds N`` (N more than the checkpoint holds) or ``--total-rounds T``."""
    from fedcodec.server.federated.checkpoint import load_checkpoint

    for flag, value in (("--rounds", more), ("--total-rounds", total)):
        if value is not None and value < 1:
            raise FedcodecError(f"{flag} must be at least 1, not {value}")
    if more is None and total is None:
        return None
    folder = Path(str(config.get("checkpoint-dir") or fed.server_dir))
    checkpoint = load_checkpoint(folder / "checkpoint.npz")
    done = checkpoint.round if checkpoint else 0
    if more is not None:
        print(f"federation has {done} round(s); running {more} more (num-server-rounds = "
              f"{done + more})", flush=True)
        return done + more
    if total <= done:
        raise FedcodecError(f"the federation already has {done} round(s) (--total-rounds "
                            f"{total}); use --rounds N to add rounds")
    print(f"federation has {done} round(s); running {total - done} more to reach {total}",
          flush=True)
    return total


def _run(args: argparse.Namespace) -> int:
    from fedcodec.server.federated.checkpoint import load_checkpoint
    from fedcodec.server.federated.superlink import FederationDir, flower_env, run_command

    config = {}
    for item in args.config:
        if "=" not in item:
            raise FedcodecError(f"run config override {item!r} is not key=value")
        key, value = item.split("=", 1)
        config[key.strip()] = _parse_value(value.strip())
    fed = FederationDir(args.dir)
    total = planned_total_rounds(fed, config, args.rounds, args.total_rounds)
    if total is not None:
        config["num-server-rounds"] = total
    code = subprocess.call(run_command(fed, args.app, config), env=flower_env(fed.flwr_home))
    if code != 0:
        return code
    # `flwr run --stream` exits 0 even when the ServerApp failed: check what the run produced
    expected = int(config.get("num-server-rounds") or _app_default(args.app, "num-server-rounds", 3))
    folder = Path(str(config.get("checkpoint-dir") or fed.server_dir))
    checkpoint = load_checkpoint(folder / "checkpoint.npz")
    done = checkpoint.round if checkpoint else 0
    if done < expected:
        raise RunIncomplete(f"the federation stopped at round {done} of {expected} (a round that "
                            f"could not aggregate, see the log above and the MLflow run's "
                            f"refusals); no model was registered; rerun to resume")
    return 0


class RunIncomplete(FedcodecError):
    """``federation run`` finished with fewer rounds than asked."""

    exit_code = 1


def _app_default(app: Path, key: str, default):
    """A value of the app's ``[tool.flwr.app.config]`` (the run config's defaults)."""
    import tomllib

    try:
        table = tomllib.loads((Path(app) / "pyproject.toml").read_text())
        return table["tool"]["flwr"]["app"]["config"].get(key, default)
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return default
