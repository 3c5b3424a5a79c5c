"""Generate the committed gRPC stubs in ``shared/rpc/`` from the ``.proto`` files here.

Run ``python protos/generate.py`` after editing a ``.proto``; ``tests/test_protos.py`` regenerates
into a temporary folder and fails when the committed stubs differ. protoc writes top-level imports
(``import storage_pb2``) that only work with ``shared/rpc`` on ``sys.path``; they are rewritten to
package-relative imports so the stubs work as ``fedcodec.shared.rpc``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = PROTO_DIR.parent / "shared" / "rpc"
INIT_TEXT = '"""gRPC stubs generated from protos/ by protos/generate.py (do not edit by hand)."""\n'
_TOP_LEVEL_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


def generate(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    """Write ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` for every proto into ``out_dir``."""
    protos = sorted(PROTO_DIR.glob("*.proto"))
    from grpc_tools import protoc  # build-time tool: imported only when generating

    out_dir.mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).resolve().parent / "_proto")
    for proto in protos:
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_DIR}",
                f"-I{include}",
                f"--python_out={out_dir}",
                f"--pyi_out={out_dir}",
                f"--grpc_python_out={out_dir}",
                str(proto),
            ]
        )
        if status != 0:
            raise SystemExit(f"protoc failed on {proto.name} (exit {status})")
    written = []
    for path in sorted(out_dir.glob("*_pb2*.py*")):
        text = path.read_text()
        fixed = _TOP_LEVEL_IMPORT.sub(r"from . import \1 as \2", text)
        if fixed != text:
            path.write_text(fixed)
        written.append(path)
    init = out_dir / "__init__.py"
    init.write_text(INIT_TEXT)
    written.append(init)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
