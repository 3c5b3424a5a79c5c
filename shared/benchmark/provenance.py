"""What a benchmark result was measured on: input, software, codec models, machine, date.

A ``results.json`` without these cannot be compared with another one (was it the same data, the
same weights, the same machine?), so ``fedcodec bench`` records them under ``"provenance"``.
"""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path
from typing import Any

from fedcodec.shared.codecs.base import Codec, get_codec


def codec_model_hash(codec: Codec) -> str | None:
    """The weights identity a neural codec reports (``describe()`` key ``model_hash`` or
    ``model_id``, or a ``model_hash`` attribute); None for codecs without a model."""
    described = codec.describe()
    for value in (described.get("model_hash"), described.get("model_id"),
                  getattr(codec, "model_hash", None)):
        if value is not None:
            return str(value)
    return None


def machine() -> dict[str, Any]:
    """Host, CPU and the library versions timings depend on."""
    import numpy

    info: dict[str, Any] = {
        "host": platform.node(),
        "system": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu": _cpu_model() or platform.processor() or "unknown",
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def run_provenance(input_path: Path, codec_specs: list[str], **options: Any) -> dict[str, Any]:
    """The ``provenance`` block of ``results.json``."""
    from fedcodec import __version__

    return {
        "input": str(Path(input_path).resolve()),
        "fedcodec_version": __version__,
        "codec_models": {spec: codec_model_hash(get_codec(spec)) for spec in codec_specs},
        "machine": machine(),
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "options": options,
    }
