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


HEAVY_STACKS = ("torch", "opacus", "tenseal", "flwr", "mlflow")


def heavy_stacks_loaded(code: str) -> list[str]:
    """Which of :data:`HEAVY_STACKS` a fresh interpreter has imported after running ``code``."""
    import subprocess
    import sys

    probe = f"{code}\nimport sys\nprint(','.join(m for m in {HEAVY_STACKS!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120, check=True)
    return [name for name in result.stdout.strip().split(",") if name]


def test_cli_starts_without_the_heavy_stacks() -> None:
    """Building both CLIs loads no torch, TenSEAL, Flower or MLflow: every command starts fast."""
    assert heavy_stacks_loaded(
        "from fedcodec.shared.cli_runner import build_parser\n"
        "from fedcodec.client import commands as c\n"
        "from fedcodec.server import commands as s\n"
        "build_parser('fedcodec', '', c); build_parser('fedcodec-server', '', s)") == []


def test_codec_registry_loads_without_torch() -> None:
    """Every codec is registered (the hyperprior's too) without importing torch: only coding
    with ``neural-lossy`` needs it. Before, each ``fedcodec`` command that built a codec, and
    each worker process, spent 1.5-2 s importing it."""
    assert "torch" not in heavy_stacks_loaded(
        "from fedcodec.shared.codecs import codec_names, get_codec\n"
        "assert 'neural-lossy' in codec_names() and 'neural-roi' in codec_names()\n"
        "get_codec('neural'); get_codec('neural:mode=lossy,bpp=1'); get_codec('neural-lossy')")


def test_client_app_loads_without_torch() -> None:
    """The deployment engine starts a fresh ClientApp process for every message and three of
    SecAgg+'s four stages never train: loading the app must not import torch (or Opacus), which
    cost each of those processes seconds (torch comes in only when a round trains)."""
    loaded = heavy_stacks_loaded("import fedcodec.client.federated.client_app")
    assert not {"torch", "opacus", "tenseal", "mlflow"} & set(loaded), loaded
