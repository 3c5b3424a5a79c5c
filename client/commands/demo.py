"""``fedcodec demo``: what fedcodec does, on MRI that ships with its dependencies (no download).

The demo is a list of steps run in order; each step is a plain function taking the output folder.
For now it benchmarks the classical codecs on the embedded MRI and writes results and plots to
``out/demo``; later steps (federated training, encrypted storage, analysis) append to the list.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from fedcodec.shared.benchmark import (
    DEFAULT_CODECS,
    LOSSY_POINTS,
    print_summary_table,
    run_benchmark,
    write_report,
)
from fedcodec.shared.demo_data import demo_stacks

DEMO_CODECS = [*DEFAULT_CODECS, *LOSSY_POINTS]
"""The bench defaults plus lossy JPEG 2000 / JPEG XL points for the rate-distortion curves."""


@dataclass(frozen=True)
class DemoStep:
    """One titled step of the demo; ``run(out_dir, console)`` does the work."""

    title: str
    run: Callable[[Path, Console], None]


def benchmark_embedded_mri(out_dir: Path, console: Console) -> None:
    """Benchmark lossless, near-lossless and lossy codecs on the embedded MRI."""
    stacks, _ = demo_stacks()
    slices = sum(s.volume.shape[0] for s in stacks)
    console.print(f"{len(stacks)} stacks, {slices} slices from pydicom-data, pydicom and dipy")
    result = run_benchmark(stacks, DEMO_CODECS, progress=True)
    print_summary_table(result, console)
    target = out_dir / "benchmark"
    written = write_report(result, target)
    console.print(f"wrote {', '.join(p.name for p in written)} to {target}")


def demo_steps() -> list[DemoStep]:
    return [DemoStep("Benchmark classical codecs on embedded MRI", benchmark_embedded_mri)]


def run_demo(out_dir: Path, console: Console | None = None) -> None:
    """Run every demo step in order, writing under ``out_dir``."""
    console = console or Console()
    steps = demo_steps()
    for number, step in enumerate(steps, 1):
        console.rule(f"[bold]{number}/{len(steps)} {step.title}")
        started = time.perf_counter()
        step.run(out_dir, console)
        console.print(f"step done in {time.perf_counter() - started:.1f} s")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the demo on embedded MRI (no download)")
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    parser.set_defaults(func=lambda args: run_demo(args.out))
