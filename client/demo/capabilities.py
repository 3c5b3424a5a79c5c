"""Is a component there and working? One cheap check each, so a step that cannot run says why.

Each check returns None when the component is usable, else ``"<component> not available
(<reason>)"``. Checks import and exercise the smallest real thing (a 16x16 round trip for a
codec); they never fake a result.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache

import numpy as np


def _missing_module(name: str) -> str | None:
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:
        return f"{name}: {exc}"
    return None if found is not None else f"{name} is not installed"


def _importable(name: str) -> str | None:
    try:
        importlib.import_module(name)
    except Exception as exc:  # any import failure means the component cannot be used
        return f"import {name}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    return None


@cache
def codec_problem(spec: str) -> str | None:
    """None when ``spec`` is registered and round-trips a 32x32 12-bit image."""
    from fedcodec.shared.codecs import codec_names, get_codec

    name = spec.partition(":")[0]
    try:
        if name not in codec_names():
            return f"codec {name} not available (not registered)"
        codec = get_codec(spec)
        image = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 13) % 4096
        decoded = np.asarray(codec.decode(codec.encode(image, 12)))
    except Exception as exc:
        text = " ".join(str(exc).split())[:200]
        return f"codec {name} not available ({type(exc).__name__}: {text})"
    if decoded.shape != image.shape:
        return f"codec {name} not available (round trip gave shape {decoded.shape})"
    return None


def federated_problem() -> str | None:
    """Flower (with Ray), Opacus and both federated apps are installed and importable.

    The shipped ``neural`` weights are not needed: the federation trains from scratch."""
    for module in ("flwr", "ray", "opacus", "mlflow"):
        reason = _missing_module(module)
        if reason:
            return f"federated training not available ({reason})"
    for module in ("fedcodec.client.federated.client_app", "fedcodec.server.federated.server_app"):
        reason = _missing_module(module)
        if reason:
            return f"federated training not available ({reason})"
    for module in ("fedcodec.client.federated.client_app", "fedcodec.client.federated.site_round"):
        reason = _importable(module)
        if reason:
            return f"federated training not available ({reason})"
    return None


def analysis_problem() -> str | None:
    """TenSEAL, the site's analysis client, the service module and ``neural-lossy`` latents."""
    reason = _missing_module("tenseal") or _missing_module("fedcodec.server.analysis.service")
    if reason:
        return f"encrypted analysis not available ({reason})"
    for module in ("fedcodec.client.analysis.site", "fedcodec.client.analysis.training",
                   "fedcodec.shared.analysis.heads"):
        reason = _importable(module)
        if reason:
            return f"encrypted analysis not available ({reason})"
    return codec_problem("neural-lossy")


def storage_problem() -> str | None:
    for module in ("fedcodec.client.store.transfer", "fedcodec.shared.crypto.keyring"):
        reason = _importable(module)
        if reason:
            return f"encrypted storage not available ({reason})"
    reason = _missing_module("fedcodec.server.storage.listener")
    return f"storage service not available ({reason})" if reason else None
