"""Demo step ``federated``: three simulated sites train the ``neural`` codec with DP-SGD.

The simulation runs in a child process (`fedcodec-server federation simulate`): Flower's
engine with Ray, SecAgg+ and each site's Opacus accountant, exactly the apps a deployment runs.
The privacy unit is the *slice*: every embedded acquisition is one patient, so patient-level DP
would protect a single unit per site; every ε below says so. Results are read back from where
the run put them: the MLflow run (per-site metrics per round) and the federated codec weights.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fedcodec.client.demo.context import OK, DemoContext, StepOutcome
from fedcodec.client.demo.plots import plot_federated_curves
from fedcodec.client.demo.tracking import ensure_experiment
from fedcodec.client.federated.site_policy import SitePolicy, save_policy
from fedcodec.shared.errors import FedcodecError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

EXPERIMENT = "fedcodec-demo-federated"
REGISTERED_MODEL = "fedcodec-demo-neural"
UNIT = "slice"
TARGET_EPSILON = 8.0
SIMULATION_TIMEOUT = 1800.0
ROUND_LINE = re.compile(r"\[ROUND (\d+)\]")


def run_config(ctx: DemoContext, sites: dict[str, Path], rounds: int) -> dict[str, Any]:
    """The federation's recipe for the demo (the same keys as ``[tool.flwr.app.config]``)."""
    root = ctx.out / "federated"
    quick = ctx.quick
    return {
        "num-server-rounds": rounds, "sites": ",".join(sites),
        "data-root": str(next(iter(sites.values())).parent.resolve()),
        "state-root": str((root / "sites").resolve()),
        "checkpoint-dir": str((root / "server").resolve()),
        "unit": UNIT, "target-epsilon": TARGET_EPSILON, "delta": 1e-5, "accountant": "rdp",
        "dp": True, "local-steps": 3 if quick else 10, "batch-units": 2.0,
        "pixels-per-unit": 32 if quick else 64, "pixels-per-group": 32 if quick else 64,
        "max-slices": 6 if quick else 16, "holdout-fraction": 0.25, "lr": 0.002,
        "min-fit-clients": len(sites), "min-available-clients": len(sites),
        "round-timeout": 600.0, "secagg": True, "mlflow-uri": ctx.mlflow_uri,
        "mlflow-experiment": EXPERIMENT, "register-model": REGISTERED_MODEL,
        "log-model": not quick, "run-name": "demo-federated", "seed": 0,
        # the demo trains from scratch and publishes its last round (the step reads its weights)
        "initial-weights": "none", "promotion-gate": False,
    }


def _stop_group(process: subprocess.Popen) -> None:
    """Stop the simulation and everything it started (Ray workers share its process group)."""
    if process.poll() is None:
        for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue


def simulate(ctx: DemoContext, config: dict[str, Any], supernodes: int) -> float:
    """Run the simulation with a progress bar over rounds; return its wall time."""
    root = ctx.folder("federated")
    config_file = root / "run-config.json"
    config_file.write_text(json.dumps(config, indent=1))
    log_file = root / "simulation.log"
    env = {**os.environ, "FLWR_HOME": str((root / "flwr").resolve()),
           "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "fedcodec.server.cli", "federation", "simulate",
               "--supernodes", str(supernodes), "--run-config", str(config_file),
               "--cpus", str(min(2, os.cpu_count() or 1))]
    start = time.perf_counter()
    rounds = int(config["num-server-rounds"])
    with log_file.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
        try:
            with Progress(TextColumn("federated rounds"), BarColumn(),
                          TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                          console=ctx.console, disable=not ctx.config.progress,
                          transient=True) as bar:
                task = bar.add_task("", total=rounds)
                while process.poll() is None:
                    if time.perf_counter() - start > SIMULATION_TIMEOUT:
                        raise FedcodecError(f"federated simulation took over "
                                            f"{SIMULATION_TIMEOUT:.0f} s (log: {log_file})")
                    text = log_file.read_text(errors="replace")
                    started = [int(n) for n in ROUND_LINE.findall(text)]
                    bar.update(task, completed=max(0, max(started, default=0) - 1))
                    time.sleep(1.0)
                bar.update(task, completed=rounds)
        finally:
            _stop_group(process)
    if process.returncode != 0:
        tail = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
        raise FedcodecError(f"federated simulation failed (exit {process.returncode}): "
                            f"{tail[-1][:200] if tail else 'no output'} (log: {log_file})")
    return time.perf_counter() - start


def read_federated_run(uri: str, sites: list[str]) -> tuple[str, dict[str, dict[str, list]]]:
    """(run id, per site: metric -> [(round, value)]) of the newest demo federation run."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise FedcodecError("the federated run logged nothing to MLflow")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                              max_results=1)
    if not runs:
        raise FedcodecError("the federated run logged nothing to MLflow")
    run_id = runs[0].info.run_id
    curves: dict[str, dict[str, list]] = {}
    for site in sites:
        curves[site] = {}
        for metric in (f"epsilon_{UNIT}", "heldout_bpp", "train_loss"):
            history = client.get_metric_history(run_id, f"{site}/{metric}")
            curves[site][metric] = sorted((m.step, m.value) for m in history)
    return run_id, curves


def train_federated(ctx: DemoContext) -> StepOutcome:
    sites: dict[str, Path] = ctx.results["sites"]
    rounds = ctx.config.rounds or (1 if ctx.quick else 3)
    root = ctx.out / "federated"
    for stale in ("server", "sites", "flwr"):  # a fresh federation: no resume, fresh budgets
        shutil.rmtree(root / stale, ignore_errors=True)
    config = run_config(ctx, sites, rounds)
    for name in sites:  # each demo site's own policy: it accepts slice-level DP (one patient each)
        save_policy(root / "sites" / name, SitePolicy(unit=UNIT, min_patients=1))
    ctx.console.print(f"{len(sites)} sites ({', '.join(sites)}), {rounds} round(s), DP-SGD "
                      f"(Opacus, unit {UNIT}, target ε {TARGET_EPSILON}, δ 1e-5), SecAgg+, "
                      f"MLflow {ctx.mlflow_uri}")
    ensure_experiment(ctx, EXPERIMENT)
    seconds = simulate(ctx, config, len(sites))
    weights = root / "server" / "neural_federated.npz"
    if not weights.exists():
        raise FedcodecError(f"the federation finished without codec weights ({weights})")
    run_id, curves = read_federated_run(ctx.mlflow_uri, list(sites))
    ctx.results.update(federated_weights=weights.resolve(), federated_run=run_id)
    figure = plot_federated_curves(curves, UNIT, ctx.folder("report") / "federated_training.png")
    rows = []
    for site, metrics in curves.items():
        for (step, eps), (_, bpp) in zip(metrics[f"epsilon_{UNIT}"], metrics["heldout_bpp"]):
            rows.append(f"| {site} | {step} | {eps:.3f} | {bpp:.3f} |")
    final_eps = {s: m[f"epsilon_{UNIT}"][-1][1] for s, m in curves.items() if m[f"epsilon_{UNIT}"]}
    section = [
        f"{len(sites)} sites trained the `neural` codec's predictor for {rounds} round(s) in "
        "Flower's simulation engine (SecAgg+ masked updates, FedAvg), each site with DP-SGD "
        f"(Opacus RDP accountant, **privacy unit: {UNIT}** — each embedded acquisition is one "
        f"patient, so patient-level ε would cover a single unit per site), δ = 1e-5, "
        f"target ε = {TARGET_EPSILON}. Wall time {seconds:.0f} s; log `federated/simulation.log`.",
        "", f"| site | round | ε ({UNIT}) | held-out bpp (before the round's training) |",
        "| --- | ---: | ---: | ---: |", *rows, "",
        f"Federated codec weights: `{weights.relative_to(ctx.out)}` (used by the compress step "
        f"as `neural:weights=...`). MLflow run `{run_id}` (experiment `{EXPERIMENT}`).",
    ]
    summary = f"{len(sites)} sites x {rounds} rounds; final ε ({UNIT}) " + ", ".join(
        f"{s} {e:.2f}" for s, e in final_eps.items())
    metrics = {"seconds": seconds, **{f"epsilon_{s}": e for s, e in final_eps.items()}}
    return StepOutcome(OK, summary, section, [figure], metrics)
