"""Where a site's keyring lives when the user does not give a path.

Default: ``$FEDCODEC_HOME/keys/<site>/`` with ``FEDCODEC_HOME`` defaulting to ``~/.fedcodec``.
When neither a path nor a site is given and exactly one keyring exists there, that one is used,
so a single-site machine needs no flags.
"""

from __future__ import annotations

import os
from pathlib import Path

from fedcodec.shared.crypto.keyring import METADATA_FILE, validate_site_name
from fedcodec.shared.errors import FedcodecError


def keys_root() -> Path:
    """The folder holding one keyring directory per site."""
    home = os.environ.get("FEDCODEC_HOME")
    return (Path(home) if home else Path.home() / ".fedcodec").expanduser() / "keys"


def resolve_keyring_path(site: str | None = None, path: Path | None = None) -> Path:
    """The keyring directory for an explicit ``path``, a ``site`` name, or the only one present."""
    if path is not None:
        return Path(path).expanduser()
    root = keys_root()
    if site is not None:
        return root / validate_site_name(site)
    found = sorted(p for p in root.glob("*") if (p / METADATA_FILE).is_file())
    if len(found) == 1:
        return found[0]
    if not found:
        raise FedcodecError(
            f"no keyring under {root}; create one with: fedcodec keys init --site NAME"
        )
    names = ", ".join(p.name for p in found)
    raise FedcodecError(f"several keyrings under {root} ({names}); choose one with --site")
