"""A round with two sites in Flower's deployment engine on 127.0.0.1: a SuperLink with TLS and
SuperNode authentication, one authenticated SuperNode per site (each pointed at its own DICOM
folder by --node-config), ``flwr run`` of the fedcodec app with SecAgg+ and patient-level DP.
A third SuperNode with an unregistered key runs alongside and must be kept out.

One round, not two (each costs about a minute of the suite's 15): rounds after the first are
covered in this engine by the hospital guide (its second ``federation run`` adds a round to the
same federation, resuming from the checkpoint) and within one run by the Ray simulation tests.

Every process is started here with a bounded timeout and killed at the end (including the
``flower-superexec`` helpers Flower detaches, found by the unique ports given to them).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, require_shared_data

from fedcodec.client.federated.site_policy import SitePolicy, save_policy
from fedcodec.client.federated.supernode import create_node_keys, supernode_command, supernode_env
from fedcodec.server.federated.superlink import (
    flower_env,
    init_federation,
    register_supernode,
    run_command,
    superlink_command,
)

SITES = ("ge", "toshiba")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"SuperLink exited early:\n{log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    pytest.fail(f"SuperLink did not listen on {port} within {timeout}s")


def _helpers_using(ports: list[int]) -> list[int]:
    """PIDs of processes whose command line names one of our ports (detached superexecs)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "flower-superexec" in cmd and any(f":{p}" in cmd for p in ports):
            pids.append(int(entry.name))
    return pids


def _stop(processes: list[subprocess.Popen], ports: list[int]) -> None:
    for p in processes:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)  # each was started in its own session
    for p in processes:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)
    for pid in _helpers_using(ports):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.shared_data
@pytest.mark.slow(120)
@pytest.mark.timeout(600)
def test_one_round_two_sites_tls_node_auth(tmp_path):
    import mlflow

    from fedcodec.server.federated.checkpoint import load_checkpoint
    from fedcodec.shared.privacy import PrivacyAccountant

    data = require_shared_data("dicom")
    port = _free_port()
    fed = init_federation(tmp_path / "federation", f"127.0.0.1:{port}")
    processes: list[subprocess.Popen] = []
    ports = [port]
    try:
        link_log = tmp_path / "superlink.log"
        processes.append(subprocess.Popen(
            superlink_command(fed, "127.0.0.1", port), env=flower_env(fed.flwr_home),
            stdout=link_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True))
        _wait_for_port(port, processes[0], link_log)
        for site in SITES:
            keys = tmp_path / site / "keys"
            _, public = create_node_keys(keys)
            register_supernode(fed, public, name=site)
            node_port = _free_port()
            ports.append(node_port)
            state = tmp_path / site / "state"
            # the site's own policy: one or two patients here (the default minimum is 2000)
            save_policy(state, SitePolicy(min_patients=1))
            processes.append(subprocess.Popen(
                supernode_command(f"127.0.0.1:{port}", fed.ca_cert, keys, data / site, site, state,
                                  node_port),
                env=supernode_env(state), stdout=(tmp_path / f"{site}.log").open("w"),
                stderr=subprocess.STDOUT, start_new_session=True))
        # a SuperNode whose key the coordinator never registered must not get in
        rogue_keys = tmp_path / "rogue" / "keys"
        create_node_keys(rogue_keys)
        rogue_port = _free_port()
        ports.append(rogue_port)
        rogue_log = tmp_path / "rogue.log"
        processes.append(subprocess.Popen(
            supernode_command(f"127.0.0.1:{port}", fed.ca_cert, rogue_keys, data / "philips",
                              "philips", tmp_path / "rogue" / "state", rogue_port),
            env=supernode_env(tmp_path / "rogue" / "state"), stdout=rogue_log.open("w"),
            stderr=subprocess.STDOUT, start_new_session=True))
        config = {"num-server-rounds": 1, "unit": "patient", "target-epsilon": 8.0,
                  "local-steps": 3, "batch-units": 2.0, "pixels-per-unit": 16,
                  "pixels-per-group": 16, "max-slices": 2, "log-model": False,
                  "round-timeout": 300.0,
                  # the gate's evaluate stage (a third ClientApp process per site and round)
                  # has its own tests (test_federated_gate_simulation, the hospital guide)
                  "promotion-gate": False}
        run = subprocess.run(run_command(fed, REPO, config), env=flower_env(fed.flwr_home),
                             capture_output=True, text=True, timeout=480, check=False)
        output = run.stdout + run.stderr
        assert run.returncode == 0, output[-3000:]
        assert "Run finished 1 round(s)" in output, output[-3000:]
        assert "Secure aggregation completed" in output

        # the coordinator asks for slice-level DP: both sites refuse (their policy says patient);
        # the run stops and `federation run` exits non-zero (no retry here, to keep it short)
        cli = [str(Path(sys.executable).parent / "fedcodec-server"), "federation", "run",
               "--dir", str(fed.root), "--app", str(REPO), "--rounds", "1"]
        for key, value in {**config, "unit": "slice", "round-timeout": 60.0,
                           "round-retries": 0}.items():
            cli += ["-c", f"{key}={value}"]
        refused = subprocess.run(cli, env=flower_env(fed.flwr_home), capture_output=True,
                                 text=True, timeout=480, check=False)
        assert refused.returncode == 1, (refused.stdout + refused.stderr)[-3000:]
        assert "the federation stopped at round 1 of 2" in refused.stderr
    finally:
        _stop(processes, ports)

    link = link_log.read_text()
    assert "https://127.0.0.1" in link  # TLS on the SuperLink's API
    checkpoint = load_checkpoint(fed.server_dir / "checkpoint.npz")
    assert checkpoint is not None and checkpoint.round == 1
    for site in SITES:
        acc = PrivacyAccountant(tmp_path / site / "state" / "privacy-patient.json", "patient",
                                8.0, 1e-5)
        assert len(acc.history) == 1 and 0 < acc.epsilon <= 8.0
    client = mlflow.MlflowClient(f"sqlite:///{fed.server_dir / 'mlflow.db'}")
    for site in SITES:
        history = client.get_metric_history(checkpoint.mlflow_run_id, f"{site}/epsilon_patient")
        assert [m.step for m in history] == [1]
    for site in SITES:  # each site kept its refusals
        assert "unit=slice" in (tmp_path / site / "state" / "refusals.jsonl").read_text()
    for site in SITES:  # ... and the coordinator logged them in the federation's MLflow run
        assert client.get_metric_history(checkpoint.mlflow_run_id, f"{site}/refused")
    # the unregistered SuperNode never took part
    assert not client.get_metric_history(checkpoint.mlflow_run_id, "philips/epsilon_patient")
    assert not (tmp_path / "rogue" / "state" / "privacy-patient.json").exists()
    assert "Received successfully" not in rogue_log.read_text()
