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
