"""Run the demo: choose steps, check capabilities, run each, summarise, report, stop services.

A step whose component is missing prints ``skipped: <component> not available (<reason>)`` and
the report says so; a step that fails is reported as failed with its one-line error, and steps
that need its results are skipped (never run on half-made inputs). Every service a step starts
is a context manager inside that step, so it is stopped before the next step begins; the runner
checks that again at the end.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from fedcodec.client.demo.capabilities import (
    analysis_problem,
    codec_problem,
    federated_problem,
    storage_problem,
)
from fedcodec.client.demo.context import (
    FAILED,
    OK,
    SKIPPED,
    DemoConfig,
    DemoContext,
    DemoStep,
    StepOutcome,
)
from fedcodec.client.demo.report import print_summary, write_report
from fedcodec.client.demo.step_analysis import analyse_encrypted
from fedcodec.client.demo.step_benchmark import run_codec_benchmark
from fedcodec.client.demo.step_compress import compress_modes
from fedcodec.client.demo.step_data import prepare_data, private_folder
from fedcodec.client.demo.step_federated import train_federated
from fedcodec.client.demo.step_storage import store_encrypted
from fedcodec.client.demo.tracking import log_demo_run
from fedcodec.shared.errors import FedcodecError
from rich.console import Console

for _key, _value in (("FLWR_TELEMETRY_ENABLED", "0"), ("RAY_USAGE_STATS_ENABLED", "0"),
                     ("MLFLOW_DISABLE_TELEMETRY", "true"),
                     ("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")):
    os.environ.setdefault(_key, _value)


def demo_steps() -> list[DemoStep]:
    """Every step, in order. ``needs``: steps whose results this one uses."""
    return [
        DemoStep("data", "Embedded MRI: three sites and a de-identified study", prepare_data),
        DemoStep("benchmark", "Benchmark: classical and learned codecs on the embedded MRI",
                 run_codec_benchmark),
        DemoStep("federated", "Federated training with differential privacy", train_federated,
                 lambda ctx: federated_problem(), needs=("data",)),
        DemoStep("compress", "Compress the study: lossless, near-lossless, lossy",
                 compress_modes, needs=("data",)),
        DemoStep("storage", "Encrypt and store in the storage service", store_encrypted,
                 lambda ctx: storage_problem(), needs=("compress",)),
        DemoStep("analysis", "Encrypted compressed-domain classification", analyse_encrypted,
                 lambda ctx: analysis_problem(), needs=("compress",)),
    ]


STEP_NAMES = tuple(step.name for step in demo_steps())


def select_steps(names: tuple[str, ...] | None) -> list[DemoStep]:
    """The chosen steps plus everything they need, in demo order."""
    steps = demo_steps()
    if names is None:
        return steps
    by_name = {step.name: step for step in steps}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise FedcodecError(f"unknown demo step {unknown[0]!r}; steps: {', '.join(STEP_NAMES)}")
    wanted: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name not in wanted:
            wanted.add(name)
            pending += by_name[name].needs
    return [step for step in steps if step.name in wanted]


def run_step(ctx: DemoContext, step: DemoStep, outcomes: dict[str, StepOutcome]) -> StepOutcome:
    """Run one step unless a prerequisite did not succeed or a component is missing."""
    start = time.perf_counter()
    blocked = [n for n in step.needs if n in outcomes and outcomes[n].status != OK]
    reason = (f"needs step {blocked[0]}, which {outcomes[blocked[0]].status}" if blocked
              else step.unavailable(ctx))
    if reason:
        ctx.console.print(f"[yellow]skipped: {reason}")
        return StepOutcome(SKIPPED, f"skipped: {reason}", seconds=time.perf_counter() - start)
    try:
        outcome = step.run(ctx)
    except FedcodecError as exc:
        ctx.console.print(f"[red]failed: {exc}")
        outcome = StepOutcome(FAILED, f"failed: {exc}")
    except Exception as exc:  # a broken component fails its step, not the whole demo
        if os.environ.get("FEDCODEC_DEBUG") == "1":
            raise
        text = " ".join(str(exc).split())[:300]
        ctx.console.print(f"[red]failed: {type(exc).__name__}: {text}")
        outcome = StepOutcome(FAILED, f"failed: {type(exc).__name__}: {text}")
    outcome.seconds = time.perf_counter() - start
    ctx.console.print(f"step {outcome.status} in {outcome.seconds:.1f} s")
    return outcome


def check_services_stopped(ctx: DemoContext) -> list[str]:
    """Names of services still running (should be none: each step stops its own)."""
    running = []
    for service in ctx.results.get("services", []):
        if service.running():
            service.stop()
            running.append(service.name)
    return running


@dataclass
class DemoRun:
    """What a finished demo produced (tests and callers inspect it)."""

    outcomes: dict[str, StepOutcome]
    report: Path
    results: dict = field(default_factory=dict)
    """The steps' shared results: containers, storage root, started services, run ids."""
    mlflow_run_id: str | None = None

    @property
    def failed(self) -> bool:
        return any(o.status == FAILED for o in self.outcomes.values())


def run_demo(config: DemoConfig, console: Console | None = None) -> DemoRun:
    """Run the chosen steps, print the summary table, write ``report.md``."""
    console = console or Console()
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    private_folder(out / "keys")
    ctx = DemoContext(config, console)
    steps = select_steps(config.steps)
    outcomes: dict[str, StepOutcome] = {}
    try:
        for number, step in enumerate(steps, 1):
            console.rule(f"[bold]{number}/{len(steps)} {step.title}")
            outcomes[step.name] = run_step(ctx, step, outcomes)
    finally:
        left = check_services_stopped(ctx)
    if left:
        raise FedcodecError(f"services were still running after the demo: {', '.join(left)}")
    run_id = None
    try:
        run_id = log_demo_run(ctx, outcomes)
    except Exception as exc:  # tracking is a convenience; the report must still be written
        console.print(f"[yellow]MLflow logging failed: {type(exc).__name__}: {exc}")
    report = write_report(ctx, steps, outcomes, run_id)
    console.rule("[bold]summary")
    print_summary(console, steps, outcomes)
    console.print(f"report: {report}")
    # a command to paste: never wrapped, whatever the terminal width (rich wraps by default)
    console.print(f"MLflow: mlflow ui --backend-store-uri {ctx.mlflow_uri}", soft_wrap=True)
    return DemoRun(outcomes, report, ctx.results, run_id)


__all__ = ["STEP_NAMES", "DemoConfig", "DemoRun", "codec_problem", "run_demo", "select_steps"]
