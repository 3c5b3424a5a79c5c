"""The committed gRPC stubs in shared/rpc are exactly what protos/generate.py makes today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO

from fedcodec.shared.rpc import storage_pb2, storage_pb2_grpc


def _generate(out_dir: Path) -> list[Path]:
    """Run protos/generate.py in a child process.

    grpc_tools' protoc and tenseal each carry their own protobuf runtime; loaded into one
    process they abort it (a pthread mutex assertion), so the generator never runs in-process.
    """
    result = subprocess.run(
        [sys.executable, str(REPO / "protos" / "generate.py"), "--out", str(out_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    return [Path(line) for line in result.stdout.split()]


def test_committed_stubs_are_current(tmp_path: Path) -> None:
    written = _generate(tmp_path)
    names = sorted(p.name for p in written)
    assert {"storage_pb2.py", "storage_pb2_grpc.py", "storage_pb2.pyi", "__init__.py"} <= set(names)
    committed = REPO / "shared" / "rpc"
    stale = [n for n in names if (committed / n).read_bytes() != (tmp_path / n).read_bytes()]
    assert not stale, f"stale stubs {stale}: run `python protos/generate.py` and commit shared/rpc"
    extra = sorted(
        p.name for p in committed.glob("*_pb2*.py*") if p.name not in names
    )
    assert not extra, f"stubs without a .proto: {extra}"


def test_stubs_import_as_a_package() -> None:
    text = (REPO / "shared" / "rpc" / "storage_pb2_grpc.py").read_text()
    assert "from . import storage_pb2 as storage__pb2" in text
    assert "\nimport storage_pb2" not in text
    assert storage_pb2_grpc.StorageStub is not None
    fields = storage_pb2.PutMetadata.DESCRIPTOR.fields_by_name
    assert set(fields) == {"object_id", "namespace", "size", "sha256", "replace"}
    methods = storage_pb2.DESCRIPTOR.services_by_name["Storage"].methods_by_name
    assert set(methods) == {"Put", "Get", "List", "Delete", "Share", "Head"}
    assert methods["Put"].client_streaming and methods["Get"].server_streaming
