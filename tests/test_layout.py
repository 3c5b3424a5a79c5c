"""The layout rules of DESIGN.md that a test can check: imports between sides, packaging."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIDES = {"shared": "fedcodec.shared", "client": "fedcodec.client", "server": "fedcodec.server"}
FORBIDDEN = {
    "shared": ("fedcodec.client", "fedcodec.server"),
    "client": ("fedcodec.server",),
    "server": ("fedcodec.client",),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_sides_import_only_what_they_may() -> None:
    offenders = []
    for side, banned in FORBIDDEN.items():
        for path in (REPO / side).rglob("*.py"):
            for name in _imports(path):
                if name.startswith(banned) or name.split(".")[0] in ("client", "server", "shared"):
                    offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_every_package_folder_is_packaged() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {"fedcodec"}
    for side, package in SIDES.items():
        for init in (REPO / side).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / side)
            found.add(".".join([package, *rel.parts]) if rel.parts else package)
    assert found == listed, f"missing: {sorted(found - listed)}; stale: {sorted(listed - found)}"


def test_cli_starts_without_the_heavy_stacks() -> None:
    """Building both CLIs loads no torch, TenSEAL, Flower or MLflow: every command starts fast."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from fedcodec.shared.cli_runner import build_parser\n"
        "from fedcodec.client import commands as c\n"
        "from fedcodec.server import commands as s\n"
        "build_parser('fedcodec', '', c); build_parser('fedcodec-server', '', s)\n"
        "print(sorted(m for m in ('torch', 'tenseal', 'flwr', 'mlflow') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def test_codec_registry_loads_without_torch() -> None:
    """Every codec is registered (the hyperprior's too) without importing torch: only coding
    with ``neural-lossy`` needs it. Before, each ``fedcodec`` command that built a codec, and
    each worker process, spent 1.5-2 s importing it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from fedcodec.shared.codecs import codec_names, get_codec\n"
        "assert 'neural-lossy' in codec_names() and 'neural-roi' in codec_names()\n"
        "get_codec('neural'); get_codec('neural:mode=lossy,bpp=1'); get_codec('neural-lossy')\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "False"


def test_client_app_loads_without_torch() -> None:
    """The deployment engine starts a fresh ClientApp process for every message and three of
    SecAgg+'s four stages never train: loading the app must not import torch (or Opacus), which
    cost each of those processes seconds (torch comes in only when a round trains)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import fedcodec.client.federated.client_app\n"
        "print(sorted(m for m in ('torch', 'opacus', 'tenseal', 'mlflow') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "[]"
