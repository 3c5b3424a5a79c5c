"""Specs whose meaning changed: what a container written before the change meant by them.

A container records the spec it was coded with *and* the codec's ``describe()``, whose ``name``
is the registered codec that wrote the streams. When a family route moves (``neural:mode=lossy``
was the hyperprior, ``neural-lossy``; it is now the bounded-error coder, ``neural-bounded``), the
recorded name tells which one an old container needs, so old containers decode as before.
"""

from __future__ import annotations

from typing import Any

from fedcodec.shared.codecs.base import parse_codec_spec

RENAMED_MODES: dict[tuple[str, str, str], str] = {
    # (family, old mode, codec that served it) -> the mode that names that codec now
    ("neural", "lossy", "neural-lossy"): "hyperprior",
}
RETIRED_MODES: frozenset[tuple[str, str, str]] = frozenset({
    # (family, mode, codec that served it): new specs are refused, recorded ones decode with
    # ``archived=1`` (a decoder only)
    ("neural", "hybrid", "neural-lossy"),
    ("neural-lossy", "hybrid", "neural-lossy"),
})


def spec_as_recorded(spec: str, described: dict[str, Any]) -> str:
    """``spec`` rewritten to name the codec ``described`` says wrote the streams, or to build
    a retired mode's decoder (unchanged when nothing was renamed or retired)."""
    family, params = parse_codec_spec(spec)
    old_mode = str(params.get("mode", ""))
    key = (family, old_mode, str(described.get("name", "")))
    new_mode = RENAMED_MODES.get(key)
    if key in RETIRED_MODES:
        params["archived"] = 1
    elif new_mode is None:
        return spec
    else:
        params["mode"] = new_mode
    return family + ":" + ",".join(f"{k}={v}" for k, v in params.items())
