"""Shared set-up for the storage tests (no tests here): a throw-away CA, site keyrings, a service.

Everything is real: certificates from ``fedcodec.server.pki``, keyrings and envelope encryption
from ``fedcodec.shared.crypto``, a mutual-TLS gRPC listener on 127.0.0.1. Nothing is mocked, so
the identity and isolation rules the tests check are the ones production runs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fedcodec.client.store.connection import StoreClient
from fedcodec.server import pki
from fedcodec.server.storage.limits import StorageLimits
from fedcodec.server.storage.listener import RunningStorage, start_storage_server
from fedcodec.shared.crypto import envelope
from fedcodec.shared.crypto.keyring import SiteKeyring

LISTENING = re.compile(r"listening on [\d.]+:(\d+)")


@dataclass
class Federation:
    """A CA, the service's TLS folder, and per-site TLS folders and keyrings under ``base``."""

    base: Path
    ca_dir: Path
    server_tls: Path
    site_tls: dict[str, Path] = field(default_factory=dict)
    keyrings: dict[str, SiteKeyring] = field(default_factory=dict)

    def add_site(self, site: str) -> None:
        self.site_tls[site] = self.base / f"tls-{site}"
        pki.issue_site(self.ca_dir, self.site_tls[site], site)
        self.keyrings[site] = SiteKeyring.create(self.base / f"keyring-{site}", site)

    def client(self, site: str, port: int, **options: object) -> StoreClient:
        return StoreClient(f"127.0.0.1:{port}", self.site_tls[site], timeout=30.0, **options)

    def sealed(self, site: str, object_id: str, plaintext: bytes) -> bytes:
        """``plaintext`` encrypted by ``site``'s keyring as object ``object_id``."""
        return envelope.encrypt_bytes(
            plaintext, self.keyrings[site], object_id=object_id, codec="test"
        )


def make_federation(base: Path, sites: tuple[str, ...] = ("a", "b")) -> Federation:
    fed = Federation(base, base / "ca", base / "tls-server")
    pki.init_ca(fed.ca_dir)
    pki.issue_server(fed.ca_dir, fed.server_tls)
    for site in sites:
        fed.add_site(site)
    return fed


@contextmanager
def running_service(
    fed: Federation, root: Path, limits: StorageLimits = StorageLimits()
) -> Iterator[RunningStorage]:
    """The service in this process on a free loopback port, stopped on exit."""
    running = start_storage_server(root, fed.server_tls, host="127.0.0.1", port=0, limits=limits)
    try:
        yield running
    finally:
        running.stop(grace=1.0)


class ServiceProcess:
    """``fedcodec-server storage serve`` as a child process (for crash and load tests).

    Its output goes to a file, not a pipe, so a chatty server can never block on a full pipe.
    """

    def __init__(
        self, root: Path, tls_dir: Path, log: Path, *, extra: tuple[str, ...] = ()
    ) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRPC_VERBOSITY": "ERROR"}
        self.log = log
        self._start = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "fedcodec.server.cli", "storage", "serve",
                    "--root", str(root), "--tls-dir", str(tls_dir), "--port", "0", *extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.port = self._wait_for_port(timeout=30.0)

    def output(self) -> str:
        """What this process printed (the log may hold earlier runs before it)."""
        return self.log.read_bytes()[self._start :].decode(errors="replace")

    def _wait_for_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING.findall(self.output())
            if match:
                return int(match[-1])
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise AssertionError("storage service did not start:\n" + self.output())

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (the crash the recovery must survive)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM: graceful stop (SIGKILL if it does not stop in 10 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
