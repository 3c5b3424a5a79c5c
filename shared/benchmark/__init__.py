"""Benchmark codecs on real slices: one run, every codec, every slice, every pixel checked.

>>> from fedcodec.shared.sources import read_stacks
>>> from fedcodec.shared.benchmark import run_benchmark, write_report
>>> stacks, skipped = read_stacks("/data/dicom")
>>> result = run_benchmark(stacks, ["jpegls", "jpegls:tau=2", "j2k:ratio=16"])
>>> write_report(result, "out/bench")   # results.json, results.csv, rd_psnr.png, rd_ssim.png
"""

from fedcodec.shared.benchmark.records import BenchResult, CodecSummary, SliceRecord
from fedcodec.shared.benchmark.report import write_report
from fedcodec.shared.benchmark.results_files import results_document
from fedcodec.shared.benchmark.run import (
    DEFAULT_CODECS,
    LOSSY_POINTS,
    NEURAL_LOSSY_POINTS,
    GuaranteeViolation,
    run_benchmark,
)
from fedcodec.shared.benchmark.table import print_summary_table, summary_table

__all__ = [
    "DEFAULT_CODECS",
    "LOSSY_POINTS",
    "NEURAL_LOSSY_POINTS",
    "BenchResult",
    "CodecSummary",
    "GuaranteeViolation",
    "SliceRecord",
    "print_summary_table",
    "results_document",
    "run_benchmark",
    "summary_table",
    "write_report",
]
