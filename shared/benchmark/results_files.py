"""The files a benchmark run leaves behind: ``results.json`` and ``results.csv``.

``results.json`` is the contract other tools read::

    {"provenance": {"input", "fedcodec_version", "codec_models", "machine", "date_utc", ...},
     "slices": N, "pixels": P,
     "summary": [{"codec", "lossless", "max_error_bound", "bpp", "psnr", "ssim", "max_abs_error",
                  "encode_ms", "decode_ms", ... extra fields}, ...],
     "records": [{ the same fields for one slice, plus "slice_id" }, ...]}

``codec`` is the spec as given (``"jpegls:tau=2"``); summary entries are in the order codecs were
given, records in codec order then slice order (one per slice per codec). Field meanings are in
:mod:`fedcodec.shared.benchmark.records`.

JSON has no Infinity or NaN, so a non-finite number is written as ``null``: the PSNR of a
bit-exact slice (a lossless codec's every record), and the summary PSNR of a codec with no inexact
slice. ``exact_slices`` and ``max_abs_error == 0`` say which case it is. ``results.csv`` holds the
records with the same columns; there an infinite PSNR is written ``inf`` (which CSV readers parse
as a float) and a missing value as an empty cell.

Files are written to a temporary name and renamed, so a failed run never leaves half a file.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fedcodec.shared.atomic_files import write_atomic
from fedcodec.shared.benchmark.records import BenchResult

CONTRACT_FIELDS = (
    "codec", "lossless", "max_error_bound", "bpp", "psnr", "ssim", "max_abs_error",
    "encode_ms", "decode_ms",
)
"""The fields every summary entry and record carries (records add ``slice_id``)."""


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _ordered(entry: dict[str, Any], first: tuple[str, ...]) -> dict[str, Any]:
    """Contract fields first, in contract order, then the extras."""
    head = {k: _json_value(entry[k]) for k in first}
    return head | {k: _json_value(v) for k, v in entry.items() if k not in head}


def results_document(result: BenchResult) -> dict[str, Any]:
    """The ``results.json`` content as plain JSON-valid Python."""
    provenance = {"provenance": result.provenance} if result.provenance else {}
    return {
        **provenance,
        "slices": result.slices,
        "pixels": result.pixels,
        "summary": [_ordered(asdict(s), CONTRACT_FIELDS) for s in result.summaries],
        "records": [_ordered(asdict(r), ("slice_id", *CONTRACT_FIELDS)) for r in result.records],
    }


def write_results_json(result: BenchResult, path: Path) -> Path:
    text = json.dumps(results_document(result), indent=1, allow_nan=False)
    write_atomic(path, (text + "\n").encode())
    return path


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def write_results_csv(result: BenchResult, path: Path) -> Path:
    """The records, one row each, columns in the order of ``results.json`` records."""
    rows = [asdict(r) for r in result.records]
    first = ("slice_id", *CONTRACT_FIELDS)
    columns = [*first, *(k for k in (rows[0] if rows else {}) if k not in first)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _csv_cell(row[k]) for k in columns} for row in rows)
    write_atomic(path, buffer.getvalue().encode())
    return path
