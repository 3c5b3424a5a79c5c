"""The federation's command-line set-up: site keys, the coordinator's folder, run overrides."""

from __future__ import annotations

import stat
import tomllib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fedcodec.client.cli import main as fedcodec
from fedcodec.client.federated.supernode import supernode_command
from fedcodec.server.cli import main as fedcodec_server
from fedcodec.server.federated.federation_config import FederationConfig
from fedcodec.server.federated.superlink import FederationDir, run_command
from fedcodec.shared.errors import FedcodecError


def test_join_keygen_writes_an_ec_key_pair_once(tmp_path, capsys):
    keys = tmp_path / "keys"
    assert fedcodec(["join", "keygen", "--keys", str(keys)]) == 0
    private = keys / "supernode.key"
    public = serialization.load_ssh_public_key((keys / "supernode.pub").read_bytes())
    loaded = serialization.load_ssh_private_key(private.read_bytes(), None)
    assert public.curve.name == "secp384r1"
    assert loaded.public_key().public_numbers() == public.public_numbers()
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert fedcodec(["join", "keygen", "--keys", str(keys)]) == 2
    assert "already exist" in capsys.readouterr().err
    assert fedcodec(["join", "--keys", str(keys)]) == 2
    assert "join needs --superlink, --root-cert, --data-dir" in capsys.readouterr().err


def test_supernode_command_points_at_the_sites_folder_only(tmp_path):
    data = tmp_path / "dicom"
    data.mkdir()
    cmd = supernode_command("10.0.0.1:9093", tmp_path / "ca.pem", tmp_path / "k", data, "st-a",
                            tmp_path / "state", 9555, target_epsilon=3.0)
    node_config = cmd[cmd.index("--node-config") + 1]
    assert node_config == (f'data-dir="{data.resolve()}" site="st-a" '
                           f'state-dir="{(tmp_path / "state").resolve()}" target-epsilon=3.0')
    assert "--insecure" not in cmd and cmd[cmd.index("--superlink") + 1] == "10.0.0.1:9093"
    with pytest.raises(FedcodecError, match="does not exist"):
        supernode_command("h:1", tmp_path / "ca.pem", tmp_path / "k", tmp_path / "nope", "x",
                          tmp_path / "s", 1)


def test_federation_init_writes_tls_material_and_the_flwr_connection(tmp_path, capsys):
    fed_dir = tmp_path / "fed"
    assert fedcodec_server(["federation", "init", "--dir", str(fed_dir),
                            "--address", "127.0.0.1:9093"]) == 0
    fed = FederationDir(fed_dir)
    cert = x509.load_pem_x509_certificate((fed.tls_dir / "server.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    config = tomllib.loads((fed.flwr_home / "config.toml").read_text())
    assert config["superlink"]["default"] == "fedcodec"
    assert config["superlink"]["fedcodec"]["address"] == "127.0.0.1:9093"
    assert config["superlink"]["fedcodec"]["root-certificates"] == str(fed.ca_cert.resolve())
    cmd = run_command(fed, tmp_path, {"num-server-rounds": 4, "unit": "slice", "secagg": True})
    overrides = cmd[cmd.index("--run-config") + 1]
    assert f'checkpoint-dir="{fed.server_dir.resolve()}"' in overrides
    assert 'num-server-rounds=4 unit="slice" secagg=true' in overrides


def test_pyproject_run_config_matches_the_server_defaults():
    """The app's declared config and the dataclass defaults must not drift apart."""
    from conftest import REPO

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    assert declared["components"]["serverapp"] == "fedcodec.server.federated.server_app:app"
    assert declared["components"]["clientapp"] == "fedcodec.client.federated.client_app:app"
    config = FederationConfig.from_run_config(declared["config"])
    defaults = FederationConfig()
    for name in ("secagg", "update_clip", "min_fit_clients", "central_dp_noise", "hidden"):
        assert getattr(config, name) == getattr(defaults, name), name
    assert declared["config"]["unit"] == "patient" and declared["config"]["secagg"] is True


def test_rounds_adds_to_the_checkpoint_total_rounds_is_a_total(tmp_path, capsys):
    import numpy as np

    from fedcodec.server.commands.federation import planned_total_rounds
    from fedcodec.server.federated.checkpoint import Checkpoint, save_checkpoint

    fed = FederationDir(tmp_path / "fed")
    assert planned_total_rounds(fed, {}, None, None) is None  # the run config's total applies
    assert planned_total_rounds(fed, {}, 4, None) == 4         # fresh federation
    save_checkpoint(fed.server_dir / "checkpoint.npz", Checkpoint(3, [np.zeros(2, np.float32)]))
    assert planned_total_rounds(fed, {}, 2, None) == 5         # 2 more than the 3 it has
    assert "federation has 3 round(s); running 2 more (num-server-rounds = 5)" in \
        capsys.readouterr().out
    assert planned_total_rounds(fed, {}, None, 5) == 5         # resume to a total
    with pytest.raises(FedcodecError, match="already has 3 round"):
        planned_total_rounds(fed, {}, None, 3)
    with pytest.raises(FedcodecError, match="--rounds must be at least 1"):
        planned_total_rounds(fed, {}, 0, None)
    with pytest.raises(SystemExit):  # one or the other (argparse: usage + exit 2)
        fedcodec_server(["federation", "run", "--dir", str(tmp_path / "fed"), "--rounds", "1",
                         "--total-rounds", "2"])
