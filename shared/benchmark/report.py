"""Everything a finished run writes to its output folder, in one call."""

from __future__ import annotations

from pathlib import Path

from fedcodec.shared.benchmark.plots import plot_rate_distortion
from fedcodec.shared.benchmark.records import BenchResult
from fedcodec.shared.benchmark.results_files import write_results_csv, write_results_json


def write_report(result: BenchResult, out_dir: str | Path, *, plots: bool = True) -> list[Path]:
    """Write ``results.json``, ``results.csv`` and (unless ``plots`` is false) the R-D PNGs."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from fedcodec.shared.errors import FedcodecError

        raise FedcodecError(f"cannot create output folder {out}: {exc.strerror}") from None
    written = [write_results_json(result, out / "results.json"),
               write_results_csv(result, out / "results.csv")]
    if plots:
        written += plot_rate_distortion(result, out)
    return written
