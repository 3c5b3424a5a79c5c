"""The mutual-TLS pieces both services and both clients share (server/tls.py, client/site_tls.py).

The services' end-to-end behaviour (identity, isolation, refused certificates) is in
test_storage_pki.py and test_analysis_service.py; this checks the shared functions directly.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from fedcodec.client.site_tls import check_site_certificate, site_channel
from fedcodec.server import pki
from fedcodec.server.tls import ListenerOptions, server_credentials, start_tls_server
from fedcodec.shared.errors import FedcodecError, UnknownNameError

OPTIONS = ListenerOptions(max_workers=2, max_message_bytes=1 << 20, thread_name_prefix="t")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pki")
    pki.init_ca(root / "ca")
    pki.issue_server(root / "ca", root / "server")
    pki.issue_site(root / "ca", root / "site", "site-a")
    return {"server": root / "server", "site": root / "site"}


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="missing TLS file.*server.pem.*pki issue-server"):
        server_credentials(tmp_path)
    with pytest.raises(UnknownNameError, match="missing TLS file.*site.pem.*pki issue-site"):
        check_site_certificate(tmp_path)


def test_listener_and_site_channel_handshake(tls: dict[str, Path]) -> None:
    server, port = start_tls_server(lambda s: None, server_credentials(tls["server"]), OPTIONS,
                                    host="127.0.0.1", port=0)
    try:
        site, channel = site_channel(f"localhost:{port}", tls["site"], max_message_bytes=1 << 20)
        assert site == "site-a" and check_site_certificate(tls["site"])[0] == "site-a"
        with channel:
            grpc.channel_ready_future(channel).result(timeout=20)  # mutual TLS handshake done
        with pytest.raises(FedcodecError, match=f"cannot listen on 127.0.0.1:{port}"):
            start_tls_server(lambda s: None, server_credentials(tls["server"]), OPTIONS,
                             host="127.0.0.1", port=port)
    finally:
        server.stop(None).wait()
