"""docker/: the Dockerfile and compose file, validated without a Docker engine.

No Docker engine runs where these tests run, so they read the files the way Docker would and
check what a build or ``docker compose up`` relies on:

- the Dockerfile: base image pinned to an exact tag or digest, every target running as a
  non-root user, the same pinned dependency set as ``make install`` (pyproject + lock, ``pip
  check``), the telemetry/runtime-install switches, no secret copied in, every COPY source
  present;
- every command the images and the compose file run (ENTRYPOINT + CMD, ``command:``,
  healthchecks) parses with the real argument parser of the program it names: ``fedcodec`` and
  ``fedcodec-server`` (built in-process with ``build_parser``), Flower's ``flower-superlink`` /
  ``flower-supernode``, and ``fedcodec-healthcheck``. A ``fedcodec``/``fedcodec-server``
  subcommand that does not exist yet is an **xfail naming the command** (other helpers are
  writing federation/join/privacy/analysis), and becomes a real check once it exists;
- compose: services, builds, networks, healthchecks, non-root users, read-only DICOM mounts, one
  keyring volume per site, and TLS: ``docker/make-certs.sh`` is run for real (it calls
  ``fedcodec-server pki``) and every certificate or key compose mounts must exist in the layout
  it produced, with the right names in the certificates and never the CA key;
- the health probe itself, against a real gRPC health server and the real storage service;
- the wheel the images install holds every data file of the source tree.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from fedcodec.shared.cli_runner import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
TARGETS = ("coordinator", "site", "storage", "analysis")
SITES = ("site-a", "site-b", "site-c")
REQUIRED_ENV = {
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "FLWR_TELEMETRY_ENABLED": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
PENDING = "being written by another helper (issue 7); this check runs once it exists"


# --- reading a Dockerfile --------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    """The image or stage name after FROM, with build args resolved."""
    instructions: list[tuple[str, str]] = field(default_factory=list)


def _logical_lines(text: str) -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    return lines


def _substitute(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m[1] or m[2], m[0]), value)


def parse_dockerfile(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """(global build args, stages in order)."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            match = re.fullmatch(
                r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE
            )
            assert match, f"cannot read FROM {rest!r}"
            base = _substitute(match[1], global_args)
            stages.append(Stage(match[2] or f"stage{len(stages)}", base))
        elif keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            global_args[name] = default.strip('"')
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, rest))
    return global_args, stages


def _exec_form(rest: str) -> list[str]:
    value = json.loads(rest)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), rest
    return value


def _env_pairs(rest: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(rest))


@dataclass
class Target:
    """What a final image inherits through its chain of stages."""

    name: str
    chain: list[Stage]
    env: dict[str, str]
    user: str | None
    entrypoint: list[str]
    cmd: list[str]
    healthcheck: list[str]
    external_base: str


def resolve_target(stages: list[Stage], name: str) -> Target:
    by_name = {s.name: s for s in stages}
    chain = [by_name[name]]
    while chain[-1].base in by_name:
        chain.append(by_name[chain[-1].base])
    chain.reverse()
    env: dict[str, str] = {}
    user = None
    entrypoint: list[str] = []
    cmd: list[str] = []
    healthcheck: list[str] = []
    for stage in chain:
        for keyword, rest in stage.instructions:
            if keyword == "ENV":
                env.update(_env_pairs(rest))
            elif keyword == "USER":
                user = rest
            elif keyword == "ENTRYPOINT":
                entrypoint, cmd = _exec_form(rest), []  # a new ENTRYPOINT resets CMD
            elif keyword == "CMD":
                cmd = _exec_form(rest)
            elif keyword == "HEALTHCHECK":
                match = re.search(r"\bCMD\s+(\[.*\])\s*$", rest)
                assert match, f"HEALTHCHECK must use the exec form: {rest}"
                healthcheck = _exec_form(match[1])
    return Target(name, chain, env, user, entrypoint, cmd, healthcheck, chain[0].base)


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE)


@pytest.fixture(scope="module")
def targets(dockerfile) -> dict[str, Target]:
    _, stages = dockerfile
    return {name: resolve_target(stages, name) for name in TARGETS}


# --- reading the compose file ---------------------------------------------------------------


def interpolate(text: str, environment: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}``."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match[1], match[2], match[3] or ""
        value = environment.get(name)
        if op == ":-":
            return value if value else arg
        if op == ":?":
            if not value:
                raise AssertionError(f"compose needs {name}: {arg}")
            return value
        return value or ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", replace, text)


def load_compose(environment: dict[str, str] | None = None) -> dict[str, Any]:
    return yaml.safe_load(interpolate(COMPOSE.read_text(), environment or {}))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def service_argv(service: dict[str, Any], targets: dict[str, Target]) -> list[str]:
    """What the container runs: compose's entrypoint/command over the image's."""
    target = targets[service["build"]["target"]]
    entrypoint = service.get("entrypoint", target.entrypoint)
    if isinstance(entrypoint, str):
        entrypoint = shlex.split(entrypoint)
    command = service.get("command")
    if command is None:
        command = [] if "entrypoint" in service else target.cmd
    if isinstance(command, str):
        command = shlex.split(command)
    return [*entrypoint, *[str(c) for c in command]]


def _healthcheck_argv(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] == "CMD", "healthcheck must be an exec-form CMD"
    return [str(t) for t in test[1:]]


def _long_running(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("restart") != "no"}


# --- checking an argv against the program's own parser ----------------------------------------


def _healthcheck_module():
    spec = importlib.util.spec_from_file_location("fedcodec_healthcheck", DOCKER / "healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _parser_for(program: str) -> argparse.ArgumentParser:
    if program == "fedcodec":
        from fedcodec.client import commands

        return build_parser("fedcodec", "", commands)
    if program == "fedcodec-server":
        from fedcodec.server import commands

        return build_parser("fedcodec-server", "", commands)
    if program == "flower-superlink":
        from flwr.superlink.cli.flower_superlink import _parse_args_run_superlink

        return _parse_args_run_superlink()
    if program == "flower-supernode":
        from flwr.supernode.cli.flower_supernode import _parse_args_run_supernode

        return _parse_args_run_supernode()
    if program == "fedcodec-healthcheck":
        return _healthcheck_module().build_parser()
    if program == "fedcodec-make-certs":
        parser = argparse.ArgumentParser(prog=program)
        parser.add_argument("certs", nargs="?")
        return parser
    if program == "fedcodec-federation":
        parser = argparse.ArgumentParser(prog=program)
        parser.add_argument("job", choices=("register", "run"))
        parser.add_argument("rest", nargs=argparse.REMAINDER)
        return parser
    raise AssertionError(f"{program!r} is not a program the images provide")


def parse_argv(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` with its program's parser; xfail if a fedcodec subcommand is missing."""
    assert argv, "empty command"
    program, args = Path(argv[0]).name, argv[1:]
    parser = _parser_for(program)
    if program in ("fedcodec", "fedcodec-server") and args:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if args[0] not in sub.choices:
            pytest.xfail(f"`{program} {args[0]}` does not exist yet: {PENDING}")
    try:
        parsed = parser.parse_args(args)
    except SystemExit as exc:
        raise AssertionError(f"{shlex.join(argv)!r} does not parse (exit {exc.code})") from None
    if program == "fedcodec-federation":  # the script's `run` hands its arguments on
        if parsed.job == "register":
            assert not parsed.rest, f"`register` takes no arguments: {argv}"
        else:
            return parse_argv(["fedcodec-server", "federation", "run", "--dir", "/fed",
                               "--app", "/app", *parsed.rest])
    return parsed


def _all_commands() -> list[tuple[str, list[str]]]:
    """Every (where, argv) the Dockerfile and compose file run."""
    _, stages = parse_dockerfile(DOCKERFILE)
    targets = {name: resolve_target(stages, name) for name in TARGETS}
    found = []
    for name, target in targets.items():
        found.append((f"Dockerfile:{name}", [*target.entrypoint, *target.cmd]))
        found.append((f"Dockerfile:{name}:healthcheck", target.healthcheck))
    for name, service in load_compose()["services"].items():
        found.append((f"compose:{name}", service_argv(service, targets)))
        if "healthcheck" in service:
            found.append((f"compose:{name}:healthcheck", _healthcheck_argv(service)))
    return found


COMMANDS = _all_commands()


@pytest.mark.parametrize(("where", "argv"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_every_command_parses_with_its_program(where: str, argv: list[str], capsys) -> None:
    parse_argv(argv)
    assert "error" not in capsys.readouterr().err


def test_a_missing_subcommand_is_reported_by_name() -> None:
    """The xfail path above names the missing command (and is not a silent skip)."""
    with pytest.raises(pytest.xfail.Exception, match="`fedcodec-server no-such-command` does not "
                       "exist yet"):
        parse_argv(["fedcodec-server", "no-such-command", "--x"])
    with pytest.raises(AssertionError, match="does not parse"):
        parse_argv(["fedcodec-server", "storage", "serve", "--no-such-flag"])


# --- the Dockerfile --------------------------------------------------------------------------


def _pinned(image: str) -> bool:
    """``name@sha256:<64 hex>`` (optionally with a tag) or an exact ``X.Y.Z`` tag."""
    if re.search(r"@sha256:[0-9a-f]{64}$", image):
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and re.match(r"^\d+\.\d+\.\d+(-[a-z0-9.-]+)?$", tag)


def test_base_image_is_pinned(dockerfile) -> None:
    global_args, stages = dockerfile
    names = {s.name for s in stages}
    external = {s.base for s in stages if s.base not in names}
    assert external == {global_args["PYTHON_IMAGE"]}
    for image in external:
        assert _pinned(image), f"FROM {image} is not pinned to an exact tag or digest"
    version = re.search(r"python:(\d+\.\d+)\.", global_args["PYTHON_IMAGE"])
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert version and f">={version[1]}" in requires  # the Python the project declares
    assert not _pinned("python:3.11-slim") and not _pinned("python:latest")
    assert _pinned("python:3.11-slim@sha256:" + "a" * 64)


def test_targets_run_as_a_non_root_user(targets: dict[str, Target]) -> None:
    for name, target in targets.items():
        assert target.user is not None, f"{name}: no USER"
        uid = target.user.split(":")[0]
        assert uid not in ("root", "0") and uid.isdigit() and int(uid) >= 1000, (name, uid)
        assert target.chain[-1].name == name and target.chain[0].name == "runtime"


def test_targets_carry_the_required_environment(targets: dict[str, Target]) -> None:
    for name, target in targets.items():
        for key, value in REQUIRED_ENV.items():
            assert target.env.get(key) == value, (name, key)
        assert target.env.get("FLWR_HOME", "").startswith("/var/lib/fedcodec"), name
        assert target.env.get("FEDCODEC_HOME") == "/var/lib/fedcodec"


def test_the_pinned_dependency_set_is_what_gets_installed(dockerfile) -> None:
    _, stages = dockerfile
    build = next(s for s in stages if s.name == "build")
    runs = [rest for keyword, rest in build.instructions if keyword == "RUN"]
    copies = [rest for keyword, rest in build.instructions if keyword == "COPY"]
    assert any("pyproject.toml" in c and "requirements.lock" in c for c in copies)
    project_install = [
        r for r in runs if re.search(r"pip install .*-c requirements\.lock \.(\s|$)", r)
    ]
    assert len(project_install) == 1 and "pip check" in project_install[0]
    assert any("-r /tmp/runtime.lock" in r for r in runs)  # the lock itself, not a re-resolve

    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_pin = next(p for p in pins if p.startswith("torch=="))
    lock = (REPO / "requirements.lock").read_text().split()
    assert torch_pin in lock
    torch_runs = [r for r in runs if '"torch==' in r]
    assert len(torch_runs) == 1 and f'"{torch_pin}"' in torch_runs[0]
    assert "${TORCH_INDEX_URL}" in torch_runs[0] and "-c requirements.lock" in torch_runs[0]
    args = [rest for keyword, rest in build.instructions if keyword == "ARG"]
    assert 'TORCH_INDEX_URL=""' in args  # no index host is written into the image recipe
    assert not re.search(r"https?://", "\n".join(_logical_lines(DOCKERFILE.read_text())))


def test_runtime_copies_only_the_virtualenv_and_the_scripts(dockerfile) -> None:
    _, stages = dockerfile
    runtime = next(s for s in stages if s.name == "runtime")
    copies = [rest for keyword, rest in runtime.instructions if keyword == "COPY"]
    assert copies == [
        "--from=build /opt/venv /opt/venv",
        "docker/healthcheck.py /usr/local/bin/fedcodec-healthcheck",
        "docker/make-certs.sh /usr/local/bin/fedcodec-make-certs",
        "docker/federation.sh /usr/local/bin/fedcodec-federation",
        "--from=build /src/pyproject.toml /opt/fedcodec/app/pyproject.toml",
    ]


def test_no_secret_is_baked_in(dockerfile) -> None:
    _, stages = dockerfile
    for stage in stages:
        for keyword, rest in stage.instructions:
            if keyword in ("COPY", "ADD"):
                for source in shlex.split(rest)[:-1]:
                    assert not re.search(
                        r"(^|/)(certs|keys|keyring|secrets?)(/|$)|\.(key|pem|p12|env)$", source
                    ), f"{keyword} {rest}: looks like key material"
            if keyword in ("ENV", "ARG"):
                names = _env_pairs(rest) if keyword == "ENV" else {rest.split("=")[0]: ""}
                for name in names:
                    assert not re.search(r"KEY|SECRET|PASSWORD|TOKEN", name), name
    rules = [
        line for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "**"  # deny by default; the build names what it needs
    assert "docker/certs/" in rules and not any(r.startswith("!docker/certs") for r in rules)


def test_every_copy_source_exists(dockerfile) -> None:
    _, stages = dockerfile
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    for stage in stages:
        for keyword, rest in stage.instructions:
            if keyword != "COPY" or rest.startswith("--from="):
                continue
            *sources, _ = [p for p in shlex.split(rest) if not p.startswith("--")]
            for source in sources:
                matches = list(REPO.glob(source.rstrip("/")))
                if source != "README*":  # optional: the repository may not have one
                    assert matches, f"COPY {source}: not in the repository"
                assert f"!{source}" in ignore or f"!{source.rstrip('/')}" in ignore or (
                    f"!{source.rstrip('/')}/" in ignore
                ), f"COPY {source} is excluded by docker/Dockerfile.dockerignore"


def test_image_health_checks_use_loopback_or_tls(targets: dict[str, Target]) -> None:
    health = _healthcheck_module()
    for name, target in targets.items():
        args = health.build_parser().parse_args(target.healthcheck[1:])
        assert target.healthcheck[0] == "fedcodec-healthcheck"
        host, port = args.address.rsplit(":", 1)
        assert host == "127.0.0.1", name
        argv = [*target.entrypoint, *target.cmd]
        if args.probe == "grpc-health":
            assert argv[argv.index("--health-server-address") + 1] == args.address
        else:
            assert argv[argv.index("--port") + 1] == port
            assert args.ca.startswith("/run/secrets/tls/")


# --- compose ---------------------------------------------------------------------------------


def test_compose_services_and_builds(compose, dockerfile) -> None:
    services = compose["services"]
    assert set(services) == {
        "coordinator", *SITES, "storage", "analysis", "register-supernodes", "federation-run",
        "pki",
    }
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    _, stages = dockerfile
    stage_names = {s.name for s in stages}
    for name, service in services.items():
        build = service["build"]
        assert (COMPOSE.parent / build["context"]).resolve() == REPO, name
        assert (REPO / build["dockerfile"]).resolve() == DOCKERFILE
        assert build["target"] in stage_names and build["target"] in TARGETS, name
        assert service["image"] == f"fedcodec/{build['target']}:{version}", name
        assert set(build.get("args", {})) <= {"TORCH_INDEX_URL"}
        user = str(service.get("user", ""))
        assert user and user.split(":")[0] not in ("0", "root"), f"{name} runs as {user!r}"
    for name in SITES:
        assert services[name]["build"]["target"] == "site"


COMPOSE_SERVICE_KEYS = {
    "build", "cap_drop", "command", "depends_on", "entrypoint", "environment", "healthcheck",
    "hostname", "image", "network_mode", "networks", "ports", "profiles", "read_only", "restart",
    "secrets", "security_opt", "tmpfs", "user", "volumes", "working_dir",
}
"""Compose-spec service keys this file uses; an unknown key (a typo) would be silently ignored
by some engines, so it fails here."""


def test_compose_uses_only_known_keys(compose) -> None:
    assert set(compose) == {"name", "services", "secrets", "volumes", "networks"} | {
        k for k in compose if k.startswith("x-")
    }
    for name, service in compose["services"].items():
        unknown = set(service) - COMPOSE_SERVICE_KEYS
        assert not unknown, f"{name}: unknown compose keys {sorted(unknown)}"
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"], f"{name} depends on unknown {dependency}"
    for volume_list in (s.get("volumes", []) for s in compose["services"].values()):
        for volume in volume_list:
            source = volume.split(":")[0]
            assert source.startswith(("/", ".")) or source in compose["volumes"], volume


def test_compose_networks_connect_what_must_talk(compose) -> None:
    services = compose["services"]
    declared = set(compose["networks"])
    nets = {n: set(s.get("networks", [])) for n, s in services.items() if "networks" in s}
    assert all(n <= declared for n in nets.values())
    for site in SITES:
        assert nets[site] & nets["coordinator"], site
        assert nets[site] & nets["storage"] and nets[site] & nets["analysis"], site
    assert not nets["coordinator"] & nets["storage"]  # the coordinator never sees the objects
    assert services["pki"]["network_mode"] == "none"


def test_long_running_services_have_healthchecks(compose, targets) -> None:
    health = _healthcheck_module()
    for name, service in _long_running(compose).items():
        argv = _healthcheck_argv(service)
        args = health.build_parser().parse_args(argv[1:])
        command = service_argv(service, targets)
        if args.probe == "grpc-health":
            assert command[command.index("--health-server-address") + 1] == args.address, name
            assert args.address.startswith("127.0.0.1:"), "the plaintext health port stays local"
        else:
            assert args.address == f"127.0.0.1:{command[command.index('--port') + 1]}", name
            assert args.server_name == name  # the name the sites dial
        for key in ("interval", "timeout", "start_period", "retries"):
            assert key in service["healthcheck"], (name, key)
    for site in SITES:
        depends = compose["services"][site]["depends_on"]
        assert depends["coordinator"]["condition"] == "service_healthy"


def _mounted_secrets(service: dict[str, Any]) -> dict[str, str]:
    """target path -> secret name."""
    mounted = {}
    for item in service.get("secrets", []):
        source = item if isinstance(item, str) else item["source"]
        target = source if isinstance(item, str) else item.get("target", source)
        mounted[target if target.startswith("/") else f"/run/secrets/{target}"] = source
    return mounted


TLS_DIR_FILES = {
    "fedcodec-server": ("server.pem", "server.key", "ca.pem"),
    "fedcodec": ("site.pem", "site.key", "ca.pem"),
}


def test_every_tls_path_a_command_uses_is_mounted(compose, targets) -> None:
    for name, service in compose["services"].items():
        if name == "pki":
            continue
        mounted = _mounted_secrets(service)
        for target in mounted.values():
            assert target in compose["secrets"], f"{name}: secret {target} is not declared"
        argv = service_argv(service, targets)
        paths = [a for a in argv if a.startswith("/run/secrets/")]
        if "healthcheck" in service:
            paths += [a for a in _healthcheck_argv(service) if a.startswith("/run/secrets/")]
        folders = [v for v in service.get("environment", {}).values()
                   if str(v).startswith("/run/secrets/")]
        assert paths or folders, f"{name} uses no TLS material"
        for path in paths:
            if "--tls-dir" in argv and path == argv[argv.index("--tls-dir") + 1]:
                for file in TLS_DIR_FILES[Path(argv[0]).name]:
                    assert f"{path}/{file}" in mounted, f"{name}: --tls-dir lacks {file}"
            else:
                assert path in mounted, f"{name}: {path} is not mounted"
        for path in folders:  # a file, or a folder something is mounted into
            assert path in mounted or any(m.startswith(f"{path}/") for m in mounted), (name, path)
        assert "--insecure" not in argv, name


def test_sites_mount_their_own_data_read_only_and_their_own_keyring(compose, targets) -> None:
    from flwr.common.config import parse_config_args

    services = compose["services"]
    keyrings = set()
    coordinator_argv = service_argv(services["coordinator"], targets)
    coordinator_port = coordinator_argv[coordinator_argv.index("--port") + 1]
    for site in SITES:
        service = services[site]
        argv = service_argv(service, targets)
        args = parse_argv(argv)
        assert args.superlink == f"coordinator:{coordinator_port}"
        assert args.root_certificates in _mounted_secrets(service)
        node = parse_config_args([args.node_config])
        assert node["site"] == site
        volumes = [v.split(":") for v in service["volumes"]]
        data = [v for v in volumes if v[1] == node["data-dir"]]
        assert len(data) == 1 and data[0][2:] == ["ro"], f"{site}: DICOM folder not read-only"
        assert data[0][0] == f"./data/{site}"  # default when SITE_X_DICOM is not set
        state = [v for v in volumes if v[1] == node["state-dir"]]
        assert len(state) == 1 and state[0][0] in compose["volumes"]
        keyring = [v for v in volumes if v[1] == "/var/lib/fedcodec/keys"]
        assert len(keyring) == 1 and keyring[0][0] in compose["volumes"], site
        keyrings.add(keyring[0][0])
        assert service["environment"]["FEDCODEC_KEYRING"] == f"/var/lib/fedcodec/keys/{site}"
        mounted = _mounted_secrets(service)
        cert = mounted["/run/secrets/tls/site.pem"]
        assert compose["secrets"][cert]["file"].endswith(f"/{site}/site.pem")
        node_key = mounted[args.auth_supernode_private_key]
        assert compose["secrets"][node_key]["file"].endswith(f"/{site}/supernode.key")
        registered = _mounted_secrets(services["register-supernodes"])
        public = registered[f"/run/secrets/supernodes/{site}.pub"]
        assert compose["secrets"][public]["file"].endswith(f"/{site}/supernode.pub")
        assert service["depends_on"]["register-supernodes"]["condition"] == (
            "service_completed_successfully"
        )
        assert all(not v[0].startswith(("/", ".")) or v[2:] == ["ro"] for v in volumes), (
            f"{site}: a host folder is mounted writable"
        )
    assert len(keyrings) == len(SITES)  # no two sites share a keyring
    with_env = load_compose({"SITE_B_DICOM": "/srv/hospital-b/dicom"})
    assert "/srv/hospital-b/dicom:/data/dicom:ro" in with_env["services"]["site-b"]["volumes"]


SCRIPTS = {
    "fedcodec-make-certs": DOCKER / "make-certs.sh",
    "fedcodec-federation": DOCKER / "federation.sh",
}


def _flags(argv: list[str]) -> set[str]:
    return {a for a in argv if a.startswith("--")}


def test_flower_commands_match_the_federation_commands(compose, targets, tmp_path) -> None:
    """compose runs flower-superlink/-supernode directly (for the loopback health port) with at
    least every flag `fedcodec-server federation start` and `fedcodec join` use, so the two
    ways of running a federation stay the same federation."""
    from fedcodec.client.federated.supernode import supernode_command
    from fedcodec.server.federated.superlink import FederationDir, superlink_command

    ours = service_argv(compose["services"]["coordinator"], targets)
    theirs = superlink_command(FederationDir(tmp_path), "0.0.0.0", 9093)
    assert Path(theirs[0]).name == ours[0] == "flower-superlink"
    assert _flags(theirs) <= _flags(ours), _flags(theirs) - _flags(ours)
    site = service_argv(compose["services"]["site-a"], targets)
    theirs = supernode_command("coordinator:9093", tmp_path / "ca.pem", tmp_path, tmp_path,
                               "site-a", tmp_path / "state", 9094)
    deprecated = {"--auth-supernode-public-key"}  # Flower 1.42 derives it from the private key
    optional = {"--port"}  # the SuperNode's loopback ClientApp API keeps its default (9094)
    assert _flags(theirs) - deprecated - optional <= _flags(site)
    from flwr.common.config import parse_config_args

    node = parse_config_args([theirs[theirs.index("--node-config") + 1]])
    ours_node = parse_config_args([site[site.index("--node-config") + 1]])
    assert set(node) == set(ours_node)


def test_environment_variables_are_ones_the_code_reads(compose, targets) -> None:
    source = "\n".join(
        p.read_text()
        for folder in ("shared", "client", "server")
        for p in (REPO / folder).rglob("*.py")
    )
    for name, service in compose["services"].items():
        program = service_argv(service, targets)[0]
        for key in service.get("environment", {}):
            if key.startswith("FEDCODEC_"):
                assert key in source, f"{name}: {key} is read by nothing"
            elif program in SCRIPTS:
                assert f"${{{key}" in SCRIPTS[program].read_text(), f"{name}: {key} unused"


def test_services_are_hardened(compose) -> None:
    for name, service in _long_running(compose).items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert "privileged" not in service, name
    published = {n: s["ports"] for n, s in compose["services"].items() if "ports" in s}
    assert published == {"coordinator": ["127.0.0.1:9093:9093"]}


# --- TLS: the layout `fedcodec-server pki` produces -------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    """Run docker/make-certs.sh for real, with this checkout's fedcodec-server."""
    folder = tmp_path_factory.mktemp("certs")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    shell = shutil.which("sh")
    assert shell
    result = subprocess.run([shell, str(DOCKER / "make-certs.sh"), str(folder)], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "certificates under" in result.stdout
    return folder


def test_make_certs_commands_parse() -> None:
    """Each `fedcodec-server pki ...` line of the script parses (variables filled in)."""
    script = (DOCKER / "make-certs.sh").read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in script.splitlines() if ln.strip().startswith("fedcodec-server")]
    assert [ln.split()[2] for ln in lines] == ["init-ca", "issue-server", "issue-site"]
    values = {"CERTS": "/certs", "service": "storage", "site": "site-a", "FORCE": ""}
    for line in lines:
        parse_argv(shlex.split(_substitute(line, values)))


def test_compose_tls_files_exist_in_the_pki_layout(certs: Path) -> None:
    compose = load_compose({"FEDCODEC_CERTS": str(certs)})
    for name, secret in compose["secrets"].items():
        path = Path(secret["file"])
        assert path.is_file(), f"secret {name}: {path} was not produced by make-certs.sh"
        assert path.name != "ca.key" and "ca.key" not in secret["file"]
        if path.suffix == ".key":
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    for service in compose["services"].values():
        for target, source in _mounted_secrets(service).items():
            file = Path(compose["secrets"][source]["file"])
            if target.startswith("/run/secrets/supernodes/"):  # one folder of <site>.pub
                assert Path(target).name == f"{file.parent.name}.pub"
            else:
                assert file.name == Path(target).name, (target, file)
    assert not any("supernode.key" in str(p) for p in _mounted_secrets(
        compose["services"]["register-supernodes"]))  # the coordinator gets public keys only


def _names(cert_path: Path) -> tuple[str, set[str]]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = set(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        dns = set()
    return str(cn), dns


def test_certificates_carry_the_names_compose_uses(certs: Path, compose, targets) -> None:
    secrets = load_compose({"FEDCODEC_CERTS": str(certs)})["secrets"]
    for service in ("coordinator", "storage", "analysis"):
        _, dns = _names(Path(secrets[f"{service}_cert"]["file"]))
        assert service in dns, f"{service} certificate lacks DNS name {service}"
    for site in SITES:
        cn, _ = _names(Path(secrets[f"{site.replace('-', '_')}_cert"]["file"]))
        assert cn == site
    # the sites dial coordinator:PORT with the CA compose gives them
    site_argv = service_argv(compose["services"]["site-a"], targets)
    host = site_argv[site_argv.index("--superlink") + 1].rsplit(":", 1)[0]
    assert host in _names(Path(secrets["coordinator_cert"]["file"]))[1]


def test_make_certs_keeps_existing_keys(certs: Path) -> None:
    before = {p: p.read_bytes() for p in certs.rglob("*.key")}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["sh", str(DOCKER / "make-certs.sh"), str(certs)], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert {p: p.read_bytes() for p in certs.rglob("*.key")} == before


# --- the health probe, against real servers ---------------------------------------------------


def test_grpc_health_probe_against_a_real_health_server() -> None:
    from concurrent import futures

    import grpc
    from flwr.supercore.grpc_health.simple_health_servicer import SimpleHealthServicer
    from grpc_health.v1.health_pb2_grpc import add_HealthServicer_to_server

    health = _healthcheck_module()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    add_HealthServicer_to_server(SimpleHealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        assert health.main(["grpc-health", f"127.0.0.1:{port}", "--timeout", "5"]) == 0
    finally:
        server.stop(grace=None)
    assert health.main(["grpc-health", f"127.0.0.1:{port}", "--timeout", "1"]) == 1
    assert health.main(["grpc-health", "no-port-here"]) == 1


def test_tls_probe_against_the_real_storage_service(certs: Path, tmp_path: Path, capsys) -> None:
    from fedcodec.server.storage.listener import start_storage_server

    health = _healthcheck_module()
    tls = certs / "storage"
    running = start_storage_server(tmp_path / "root", tls, host="127.0.0.1", port=0)
    try:
        address = f"127.0.0.1:{running.port}"
        ca = str(tls / "ca.pem")
        assert health.main(["tls", address, "--ca", ca, "--server-name", "storage"]) == 0
        assert health.main(["tls", address, "--ca", ca, "--server-name", "analysis"]) == 1
        assert "certificate not valid for 'analysis'" in capsys.readouterr().err
        other_ca = certs / "site-a" / "site.pem"  # not the CA: verification must fail
        assert health.main(["tls", address, "--ca", str(other_ca), "--server-name",
                            "storage"]) == 1
    finally:
        running.stop(grace=0)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        closed = free.getsockname()[1]
    assert health.main(["tls", f"127.0.0.1:{closed}", "--ca", str(tls / "ca.pem"),
                        "--server-name", "storage", "--timeout", "1"]) == 1
    assert "no TLS service" in capsys.readouterr().err


# --- the Flower commands, run for real over TLS ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Descendants of ``pid`` (read from /proc), so a test ends exactly what it started."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [c for c, p in parents.items() if p == parent]
        found += kids
        frontier += kids
    return found


def _stop(process: subprocess.Popen) -> None:
    descendants = _children(process.pid)
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
    for pid in descendants:  # Flower's SuperExec exits with its parent; make sure
        for _ in range(50):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.2)
        else:
            os.kill(pid, 15)


def _wait_for(condition, seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} within {seconds:.0f} s; log:\n{log.read_text()[-3000:]}")


def test_coordinator_and_site_commands_run_over_tls(certs: Path, tmp_path: Path, targets) -> None:
    """compose's coordinator, register-supernodes and site-a, run as the containers would
    (paths mapped to this machine, ports made free, `coordinator` reached as localhost, which
    its certificate also names): the SuperLink serves TLS with the pki certificates and admits
    only registered SuperNodes; docker/federation.sh registers site-a's public key (twice: it
    is idempotent); the SuperNode then registers over TLS with its node key; both processes
    report SERVING to the health probe."""
    compose = load_compose({"FEDCODEC_CERTS": str(certs)})
    health = _healthcheck_module()
    state = tmp_path / "state"
    state.mkdir()
    port, link_health, node_health, node_port = (_free_port() for _ in range(4))

    def files(spec: dict[str, Any]) -> dict[str, str]:
        return {t: compose["secrets"][s]["file"] for t, s in _mounted_secrets(spec).items()}

    def mapped(service: str) -> list[str]:
        spec = compose["services"][service]
        health_port = link_health if service == "coordinator" else node_health
        argv = []
        for arg in service_argv(spec, targets):
            arg = files(spec).get(arg, arg).replace("/var/lib/fedcodec/state", str(state))
            arg = arg.replace("/data/dicom", str(tmp_path)).replace("0.0.0.0", "127.0.0.1")
            arg = arg.replace("coordinator:9093", f"localhost:{port}")
            arg = arg.replace("127.0.0.1:9099", f"127.0.0.1:{health_port}")
            argv.append(arg)
        if service == "coordinator":
            argv[argv.index("--port") + 1] = str(port)
        else:
            argv += ["--port", str(node_port)]  # the SuperNode's loopback Runtime API
        return argv

    env = {**os.environ, **REQUIRED_ENV, "FLWR_HOME": str(tmp_path / "flwr"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    register = compose["services"]["register-supernodes"]
    keys = tmp_path / "supernodes"
    keys.mkdir()
    for target, file in files(register).items():
        if target.startswith("/run/secrets/supernodes/"):
            shutil.copy(file, keys / Path(target).name)
    register_env = {
        **env, **register["environment"], "SUPERLINK": f"localhost:{port}",
        "ROOT_CERTIFICATES": files(register)[register["environment"]["ROOT_CERTIFICATES"]],
        "SUPERNODE_KEYS": str(keys), "FED": str(tmp_path / "fed"),
    }
    link_log, node_log = tmp_path / "superlink.log", tmp_path / "supernode.log"
    with open(link_log, "wb") as out:
        superlink = subprocess.Popen(mapped("coordinator"), stdout=out, stderr=out, env=env,
                                     cwd=state)
    supernode = None
    try:
        _wait_for(lambda: health.probe_grpc_health(f"127.0.0.1:{link_health}", 2) == "SERVING",
                  60, "the SuperLink did not report SERVING", link_log)
        assert b"https://127.0.0.1" in link_log.read_bytes()  # TLS, not plaintext
        for expected in ("registered site-a", "site-a was already registered"):
            done = subprocess.run(["sh", str(DOCKER / "federation.sh"), *register["command"]],
                                  env=register_env, capture_output=True, text=True, timeout=120,
                                  check=False)
            assert done.returncode == 0, done.stderr
            assert expected in done.stdout.splitlines()
        with open(node_log, "wb") as out:
            supernode = subprocess.Popen(mapped("site-a"), stdout=out, stderr=out, env=env,
                                         cwd=tmp_path)
        _wait_for(lambda: health.probe_grpc_health(f"127.0.0.1:{node_health}", 2) == "SERVING",
                  60, "the SuperNode did not report SERVING", node_log)
        _wait_for(lambda: b"Activated node_id" in link_log.read_bytes(), 60,
                  "the SuperNode did not register with the SuperLink over TLS", node_log)
    finally:
        if supernode is not None:
            _stop(supernode)
        _stop(superlink)


# --- what `pip install .` puts in the image ---------------------------------------------------


def test_the_installed_package_holds_every_data_file(tmp_path: Path) -> None:
    """The images install a wheel, not the checkout: a data file the source tree has (codec
    weights, JSON tables) must be in it, or a feature works here and fails in a container."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "requirements.lock"):
        shutil.copy(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("fedcodec", "shared", "client", "server"):
        shutil.copytree(REPO / folder, source / folder, ignore=ignore)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "--no-index", str(source), "-w", str(tmp_path / "wheel")],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("fedcodec-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    mapping = {
        "shared": "fedcodec/shared",
        "client": "fedcodec/client",
        "server": "fedcodec/server",
        "fedcodec": "fedcodec",
    }
    missing = []
    for folder, package in mapping.items():
        for path in (source / folder).rglob("*"):
            if path.is_file() and path.suffix not in (".py", ".pyc"):
                installed = f"{package}/{path.relative_to(source / folder).as_posix()}"
                if installed not in names:
                    missing.append(installed)
    assert not missing, (
        f"not installed by `pip install .` (add to [tool.setuptools.package-data]): {missing}"
    )
