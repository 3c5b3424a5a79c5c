"""The demo's ``report.md`` (one section per step, figures, MLflow links) and summary table."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

from fedcodec.client.demo.context import FAILED, OK, SKIPPED, DemoContext, DemoStep, StepOutcome
from fedcodec.shared.atomic_files import write_atomic
from rich import box
from rich.console import Console
from rich.table import Table

STATUS_STYLE = {OK: "green", SKIPPED: "yellow", FAILED: "red"}


def summary_table(steps: list[DemoStep], outcomes: dict[str, StepOutcome]) -> Table:
    table = Table(title="fedcodec demo", box=box.SIMPLE_HEAD)
    table.add_column("step", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("key numbers")
    table.add_column("s", justify="right", no_wrap=True)
    for step in steps:
        outcome = outcomes.get(step.name)
        if outcome is None:
            continue
        style = STATUS_STYLE.get(outcome.status, "")
        table.add_row(step.name, f"[{style}]{outcome.status}[/]", outcome.summary,
                      f"{outcome.seconds:.1f}")
    return table


def print_summary(
    console: Console, steps: list[DemoStep], outcomes: dict[str, StepOutcome]
) -> None:
    if console.width < 110:
        console = Console(width=110, file=console.file)
    console.print(summary_table(steps, outcomes))


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU ({cpu}), Python {platform.python_version()}"


def write_report(ctx: DemoContext, steps: list[DemoStep], outcomes: dict[str, StepOutcome],
                 demo_run_id: str | None) -> Path:
    """``OUT/report.md``: summary, then every step's section (figures linked relative)."""
    out = ctx.out
    lines = [
        "# fedcodec demo report", "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {machine_line()}; "
        f"{'quick run (`--quick`)' if ctx.quick else 'full run'}. Data: MRI shipped inside "
        "pydicom-data, pydicom and dipy (nothing downloaded). Timings are wall clock on a "
        "machine that may be shared.", "",
        "| step | status | key numbers | seconds |", "| --- | --- | --- | ---: |",
        *[f"| {s.name} | {outcomes[s.name].status} | {outcomes[s.name].summary} | "
          f"{outcomes[s.name].seconds:.1f} |" for s in steps if s.name in outcomes],
        "",
    ]
    for number, step in enumerate(steps, 1):
        outcome = outcomes.get(step.name)
        if outcome is None:
            continue
        lines += [f"## {number}. {step.title}", ""]
        if outcome.status != OK:
            lines += [f"**{outcome.summary}**", ""]
        lines += [*outcome.section, ""] if outcome.section else []
        for figure in outcome.figures:
            lines += [f"![{figure.stem}]({os.path.relpath(figure, out)})", ""]
    lines += ["## MLflow", "",
              f"Tracking store: `{ctx.mlflow_uri}`. Browse it with:", "", "```console",
              f"mlflow ui --backend-store-uri {ctx.mlflow_uri}", "```", ""]
    runs = []
    if demo_run_id:
        runs.append(f"- demo run `{demo_run_id}` (experiment `fedcodec-demo`): "
                    f"http://127.0.0.1:5000/#/experiments/{_experiment_of(ctx, demo_run_id)}"
                    f"/runs/{demo_run_id}")
    if ctx.results.get("federated_run"):
        run_id = ctx.results["federated_run"]
        runs.append(f"- federated training run `{run_id}` (experiment "
                    f"`fedcodec-demo-federated`): http://127.0.0.1:5000/#/experiments/"
                    f"{_experiment_of(ctx, run_id)}/runs/{run_id}")
    lines += runs or ["- no run was logged"]
    path = out / "report.md"
    write_atomic(path, ("\n".join(lines) + "\n").encode())
    return path


def _experiment_of(ctx: DemoContext, run_id: str) -> str:
    import mlflow

    return mlflow.MlflowClient(ctx.mlflow_uri).get_run(run_id).info.experiment_id
