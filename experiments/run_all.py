"""Regenerate every table and plot the README shows: each experiment as its own subprocess.

    nice -n 10 .venv/bin/python experiments/run_all.py [--quick] [--only a,b] [--skip c]
    experiments/run_all --quick --only storage_load          (the thin shell wrapper)

Every experiment runs with its own output folder ``OUT/<name>/`` as working directory, stdout
and stderr saved there (``stdout.txt``, ``stderr.txt``; several scripts print their Markdown
tables), under ``nice -n 10`` unless ``--no-nice``. ``--quick`` runs the smoke variant of each
experiment that has one (small inputs, seconds to a few minutes) and lists the others as not
run. Experiments that need ``../shared/data`` are skipped when it is missing (failed instead
under ``FEDCODEC_REQUIRE_SHARED_DATA=1``). A failing experiment does not stop the others; the
exit code is 1 if any failed.

At the end ``OUT/INDEX.md`` (and ``index.json``) lists every experiment: status, time, when it
finished and at which commit, the exact command, and each figure/table it wrote, with the
machine (nproc, CPU model, RAM). A pass with ``--only`` reruns those experiments and keeps the
other rows of an existing index in ``OUT``, so one index can be completed in parts (in the order
of the list below, whatever order they ran in). ``wycheproof`` and ``deid_leak`` are the two
test files whose counts the README quotes, run with ``pytest -s``. Some older scripts also write to fixed paths (e.g. ``/tmp/fcn``); the index lists
what landed in the output folder.

``neural_heldout`` trains its own two fold models (the held-out protocol). Not run here: the
runs that make the shipped weights rather than tables (``neural_train.py --train-fold all``,
``learned_lossy_train.py``, ``learned_lossy_hybrid_train.py``, ``learned_lossy_export.py``), and
``learned_lossy_curve.py``, which prints a training log of such a run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
SHARED_DATA = Path(os.environ.get("FEDCODEC_SHARED_DATA", REPO.parent / "shared" / "data"))
OUTPUT_SUFFIXES = (".png", ".md", ".json", ".csv", ".svg")
SKIP_NAMES = {"stdout.txt", "stderr.txt"}


@dataclass(frozen=True)
class Experiment:
    """One experiment: its full and smoke command lines (``None``: no smoke variant).

    Tokens in commands: ``{python}``, ``{fedcodec}`` (the CLI), ``{experiments}``, ``{repo}``,
    ``{data}`` (the shared data folder) and ``{out}`` (this experiment's output folder).
    """

    name: str
    makes: str
    full: tuple[str, ...]
    quick: tuple[str, ...] | None
    shared_data: tuple[str, ...] = ()
    """Parts of ``../shared/data`` it needs (skipped when missing)."""


EXPERIMENT_LIST = (
    Experiment(
        "demo", "the demo report: benchmark, federated curve, compression, storage, analysis",
        ("{fedcodec}", "demo", "--out", "{out}/demo", "--no-progress"),
        ("{fedcodec}", "demo", "--quick", "--out", "{out}/demo", "--no-progress"),
    ),
    Experiment(
        "bench_shared", "README classical-codec table and RD plots on ../shared/data/dicom",
        ("{fedcodec}", "bench", "{data}/dicom", "--codecs", "jxl", "j2k", "jpegls", "htj2k",
         "jpegls:tau=2", "zstd", "j2k:ratio=8", "j2k:ratio=16", "j2k:ratio=32",
         "jxl:distance=0.5", "jxl:distance=1", "jxl:distance=2", "--out", "{out}", "--quiet"),
        ("{fedcodec}", "bench", "{data}/dicom", "--max-slices", "20", "--codecs", "jpegls",
         "zstd", "--out", "{out}", "--quiet"),
        shared_data=("dicom",),
    ),
    Experiment(
        "classical_anchors", "issue anchors re-measured (slice-mean and pooled bpp)",
        ("{python}", "{experiments}/measure_classical_anchors.py", "--variants", "--json",
         "{out}/anchors.json"),
        ("{python}", "{experiments}/measure_classical_anchors.py", "--root",
         "{data}/dicom/toshiba", "--specs", "jpegls", "zstd", "--json", "{out}/anchors.json"),
        shared_data=("dicom",),
    ),
    Experiment(
        "neural_baselines", "per-slice JPEG XL / JPEG-LS anchors for the neural codec",
        ("{python}", "{experiments}/neural_baselines.py", "issue"), None, shared_data=("dicom",),
    ),
    Experiment(
        "neural_heldout", "neural codec vs JPEG XL e7 / JPEG-LS, held out by series (2 folds)",
        ("{python}", "{experiments}/neural_heldout.py", "--out", "{out}"),
        ("{python}", "{experiments}/neural_heldout.py", "--out", "{out}", "--quick"),
        shared_data=("dicom",),
    ),
    Experiment(
        "neural_bench_folds", "the same held-out protocol through `fedcodec bench --series-split`",
        ("{python}", "{experiments}/neural_bench_folds.py", "--weights-dir",
         "{out}/../neural_heldout", "--out", "{out}"),
        None, shared_data=("dicom",),
    ),
    Experiment(
        "neural_random_split", "a random 50% split by series: `fedcodec train`, then `bench`",
        ("{python}", "{experiments}/neural_random_split.py", "--out", "{out}"), None,
        shared_data=("dicom",),
    ),
    Experiment(
        "neural_loso", "neural codec leave-one-source-out vs the best classical codec (13 sources)",
        ("{python}", "{experiments}/neural_loso.py", "--out", "{out}", "--steps", "1500"),
        ("{python}", "{experiments}/neural_loso.py", "--out", "{out}", "--quick"),
        shared_data=("dicom", "dicom-more"),
    ),
    Experiment(
        "neural_loso_augment", "leave-one-source-out with training augmentation (the v2 recipe)",
        ("{python}", "{experiments}/neural_loso.py", "--out", "{out}", "--steps", "1500",
         "--augment"), None,
        shared_data=("dicom", "dicom-more"),
    ),
    Experiment(
        "neural_loso_noise", "leave-one-source-out with a noisier copy added to the augmentation",
        ("{python}", "{experiments}/neural_loso.py", "--out", "{out}", "--steps", "1500",
         "--augment", "--augment-noise"), None,
        shared_data=("dicom", "dicom-more"),
    ),
    *(Experiment(
        f"neural_loso_{kind}", f"leave-one-source-out with {copy} added to the augmentation",
        ("{python}", "{experiments}/neural_loso.py", "--out", "{out}", "--steps", "1500",
         "--augment", "--augment-extra", kind), None,
        shared_data=("dicom", "dicom-more"),
    ) for kind, copy in (("zerofill", "a zero-filled 2x interpolated copy"),
                         ("scale", "an intensity-scaled copy (x0.6)"))),
    Experiment(
        "neural_adapt", "what each encode-time adaptation saves per source (LOSO fold models)",
        ("{python}", "{experiments}/neural_adapt.py", "--folds", "{out}/../neural_loso"), None,
        shared_data=("dicom", "dicom-more"),
    ),
    Experiment(
        "shipped_models", "the shipped neural models v1 and v2 on MR neither saw (tumour slices)",
        ("{python}", "{experiments}/shipped_models.py", "--out", "{out}"),
        ("{python}", "{experiments}/shipped_models.py", "--out", "{out}", "--slices", "4"),
        shared_data=("tumor",),
    ),
    Experiment(
        "neural_feature_sets", "neural context feature sets 1 vs 2 on 3 unseen sources",
        ("{python}", "{experiments}/neural_feature_sets.py", "--out", "{out}"), None,
        shared_data=("dicom", "dicom-more"),
    ),
    Experiment(
        "neural_speed", "neural codec encode/decode speed vs JPEG XL (256^2, 1024^2, threads)",
        ("{python}", "{experiments}/neural_speed.py", "--json", "{out}/speed.json"), None,
        shared_data=("dicom",),
    ),
    Experiment(
        "roi_coding", "ROI coding (exact or within tau inside, lossy outside) vs whole-slice coding",
        ("{python}", "{experiments}/roi_coding.py", "--out", "{out}"),
        ("{python}", "{experiments}/roi_coding.py", "--out", "{out}", "--quick"),
        shared_data=("dicom", "tumor"),
    ),
    Experiment(
        "learned_lossy_rd", "learned lossy RD vs JPEG 2000 / HTJ2K / JPEG XL, BD-rate",
        ("{python}", "{experiments}/learned_lossy_rd.py", "--out", "{out}/rd.json"),
        ("{python}", "{experiments}/learned_lossy_rd.py", "--out", "{out}/rd.json", "--every",
         "40", "--skip-hybrid"),
        shared_data=("dicom",),
    ),
    Experiment(
        "lossy_rd", "rate-controlled neural:mode=lossy vs JPEG 2000 / HTJ2K / JPEG XL, LOSO folds",
        ("{python}", "{experiments}/lossy_rd.py", "--out", "{out}", "--series", "2", "--slices",
         "4", "--folds", "{out}/../neural_loso"),
        ("{python}", "{experiments}/lossy_rd.py", "--out", "{out}", "--quick"),
        shared_data=("dicom-more",),
    ),
    Experiment(
        "study_allocation",
        "one rate budget per series vs one pooled over the study's series (predicted)",
        ("{python}", "{experiments}/study_allocation.py", "--out", "{out}",
         "--study", "{data}/dicom/siemens/siemens_c",
         "--study", "{data}/dicom-more/fieldmaps/Philips",
         "--study", "{data}/dicom-more/fieldmaps/Siemens"), None,
        shared_data=("dicom", "dicom-more"),
    ),
    Experiment(
        "bounded_reconstruction", "bounded-error coding: reconstruction inside the bin, measured",
        ("{python}", "{experiments}/bounded_reconstruction.py", "--compare", "--out", "{out}"),
        ("{python}", "{experiments}/bounded_reconstruction.py", "--compare", "--quick", "--out",
         "{out}"),
        shared_data=("dicom-more",),
    ),
    Experiment(
        "tau_map_background", "bounded-error coding: a larger bound in background, measured",
        ("{python}", "{experiments}/tau_map_background.py", "--out", "{out}"),
        ("{python}", "{experiments}/tau_map_background.py", "--quick", "--out", "{out}"),
        shared_data=("dicom-more",),
    ),
    Experiment(
        "progressive_layers", "progressive neural coding: layered bytes vs single pass",
        ("{python}", "{experiments}/progressive_layers.py", "--out", "{out}"),
        ("{python}", "{experiments}/progressive_layers.py", "--out", "{out}", "--quick"),
        shared_data=("dicom-more",),
    ),
    Experiment(
        "mean_fit_taps", "mean corrections: how many decoded pixels to weigh (wide taps)",
        ("{python}", "{experiments}/mean_fit_taps.py", "--out", "{out}"),
        ("{python}", "{experiments}/mean_fit_taps.py", "--taus", "0", "--out", "{out}"),
    ),
    Experiment(
        "level_bounds", "level bounds: finer bounds on the coarse pyramid levels, BD-rate",
        ("{python}", "{experiments}/level_bounds.py", "--out", "{out}"),
        ("{python}", "{experiments}/level_bounds.py", "--out", "{out}", "--quick"),
        shared_data=("dicom-more",),
    ),
    Experiment(
        "refinement_models", "progressive refinement: networks that see the coarse slice, measured",
        ("{python}", "{experiments}/refinement_models.py", "--out", "{out}"),
        None,
        shared_data=("dicom", "dicom-more"),
    ),
    Experiment(
        "near_lossless_tables", "near-lossless coding with tables/networks fitted at the bound",
        ("{python}", "{experiments}/near_lossless_tables.py", "--taus", "2,13,40", "--out",
         "{out}"),
        ("{python}", "{experiments}/near_lossless_tables.py", "--taus", "13", "--steps", "50",
         "--out", "{out}"),
        shared_data=("dicom", "dicom-more"),
    ),
    Experiment(
        "cell_tables_gain", "neural_v3's near-lossless tables against neural_v2, per series",
        ("{python}", "{experiments}/cell_tables_gain.py", "--out", "{out}"),
        ("{python}", "{experiments}/cell_tables_gain.py", "--taus", "13", "--out", "{out}"),
        shared_data=("dicom", "dicom-more"),
    ),
    Experiment(
        "hybrid_vs_progressive", "retired hybrid mode's preview vs the first progressive layer",
        ("{python}", "{experiments}/hybrid_vs_progressive.py", "--out", "{out}"),
        ("{python}", "{experiments}/hybrid_vs_progressive.py", "--out", "{out}", "--quick"),
        shared_data=("dicom-more",),
    ),
    Experiment(
        "federated_compare", "federated vs local vs centralised, with and without DP",
        ("{python}", "{experiments}/federated_compare.py", "--out", "{out}", "--flower"),
        ("{python}", "{experiments}/federated_compare.py", "--out", "{out}", "--rounds", "1",
         "--steps", "2", "--max-slices", "4", "--pixels-per-group", "32"),
        shared_data=("dicom",),
    ),
    Experiment(
        "federated_promotion", "promoted federated model vs shipped weights per site (gate, DP)",
        ("{python}", "{experiments}/federated_promotion.py", "--out", "{out}"),
        ("{python}", "{experiments}/federated_promotion.py", "--out", "{out}", "--rounds", "1",
         "--steps", "2", "--max-slices", "4", "--pixels-per-group", "32"),
        shared_data=("dicom", "dicom-more"),
    ),
    Experiment(
        "privacy_audit", "empirical ε lower bound of DP-SGD (one-run audit) and positive control",
        ("{fedcodec}", "privacy", "audit", "--data-dir", "{data}/dicom/toshiba", "--unit",
         "slice", "--positive-control", "--out", "{out}"),
        ("{fedcodec}", "privacy", "audit", "--data-dir", "{data}/dicom/toshiba", "--unit",
         "slice", "--quick", "--positive-control", "--out", "{out}"),
        shared_data=("dicom",),
    ),
    Experiment(
        "analysis_tumour", "latent vs pixel classifiers, encrypted heads vs plaintext",
        ("{python}", "{experiments}/analysis_tumour.py", "--out", "{out}"),
        ("{python}", "{experiments}/analysis_tumour.py", "--out", "{out}", "--limit", "4",
         "--val-limit", "4", "--test-limit", "4", "--epochs", "1", "--timing-images", "2"),
        shared_data=("tumor",),
    ),
    Experiment(
        "analysis_budget", "latent (gn-stats, ResNet) vs pixel ResNet: accuracy vs epochs "
        "(3 seeds, all 3064 slices), A->B data sets, speed vs classical decode + pixel model",
        ("{python}", "{experiments}/analysis_budget.py", "--out", "{out}", "--per-class-a", "0",
         "--per-class-b", "0", "--epochs", "64", "--patience", "12", "--pixel-size", "128",
         "--jobs", "2", "--max-minutes", "150"),
        ("{python}", "{experiments}/analysis_budget.py", "--out", "{out}", "--quick"),
        shared_data=("tumor",),
    ),
    Experiment(
        "analysis_packing",
        "encrypted heads, packed CKKS: bytes and ms per slice at batch 1/8/64/459",
        ("{python}", "{experiments}/analysis_packing.py", "--out", "{out}", "--rounds", "2"),
        ("{python}", "{experiments}/analysis_packing.py", "--out", "{out}", "--quick"),
        shared_data=("tumor",),
    ),
    Experiment(
        "envelope_speed", "envelope encryption / decryption throughput (200 MB stream, in memory)",
        ("{python}", "{experiments}/envelope_speed.py", "--json", "{out}/envelope_speed.json"),
        ("{python}", "{experiments}/envelope_speed.py", "--mb", "8", "--repeats", "1", "--json",
         "{out}/envelope_speed.json"),
    ),
    Experiment(
        "privacy_plan", "patient-level epsilon projected for realistic sites (table and curve)",
        ("{fedcodec}", "privacy", "plan", "--units", "500", "2000", "10000", "--rounds", "50",
         "--local-steps", "20", "--batch-units", "64", "--noise", "1.0", "--png",
         "{out}/privacy_plan.png"),
        ("{fedcodec}", "privacy", "plan", "--units", "500", "2000", "10000", "--rounds", "50",
         "--local-steps", "20", "--batch-units", "64", "--noise", "1.0", "--png",
         "{out}/privacy_plan.png"),
    ),
    Experiment(
        "wycheproof", "Wycheproof vector counts (AES-GCM, AES-KW, X25519, HKDF)",
        ("{python}", "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
         "{repo}/tests/test_wycheproof.py"), None, shared_data=("testvectors",),
    ),
    Experiment(
        "deid_leak", "de-identification leak test (canaries seeded into real DICOM)",
        ("{python}", "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
         "{repo}/tests/test_deid_leak.py"), None, shared_data=("dicom",),
    ),
    Experiment(
        "fuzz_inputs", "fuzz counts per target and outcome (docs/guide-security.md)",
        ("{python}", "{experiments}/fuzz_inputs.py", "--mutations", "20000", "--seed", "1",
         "--out", "{out}"),
        ("{python}", "{experiments}/fuzz_inputs.py", "--mutations", "400", "--seed", "1",
         "--out", "{out}"),
    ),
    Experiment(
        "storage_load", "storage service throughput with concurrent encrypted clients",
        ("{python}", "{experiments}/storage_load.py", "--clients", "50", "--object-kib", "4096",
         "--json", "{out}/storage_load.json"),
        ("{python}", "{experiments}/storage_load.py", "--clients", "4", "--object-kib", "64",
         "--json", "{out}/storage_load.json"),
    ),
    Experiment(
        "storage_stall", "other sites' latency while one site stalls every stream it may open",
        ("{python}", "{experiments}/storage_stall.py", "--duration", "20", "--stall-seconds",
         "30", "--json", "{out}/storage_stall.json", "--markdown", "{out}/storage_stall.md"),
        ("{python}", "{experiments}/storage_stall.py", "--duration", "3", "--stall-seconds", "5",
         "--json", "{out}/storage_stall.json", "--markdown", "{out}/storage_stall.md"),
    ),
)
BY_NAME = {e.name: e for e in EXPERIMENT_LIST}


@dataclass
class ExperimentRun:
    name: str
    makes: str
    status: str
    """``ok``, ``failed``, ``skipped`` (with ``note``) or ``not run`` (no smoke variant)."""
    command: str = ""
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
    note: str = ""
    finished: str = ""
    """UTC time the experiment ended (``YYYY-MM-DD HH:MM``); empty if it did not run."""
    commit: str = ""


def fill(tokens: tuple[str, ...], out: Path) -> list[str]:
    fedcodec = Path(sys.executable).with_name("fedcodec")
    values = {"python": sys.executable, "experiments": str(EXPERIMENTS), "repo": str(REPO),
              "data": str(SHARED_DATA), "out": str(out),
              "fedcodec": str(fedcodec) if fedcodec.exists() else "fedcodec"}
    return [token.format(**values) for token in tokens]


def machine() -> dict[str, str]:
    """nproc, CPU model, RAM, OS and Python of this machine."""
    cpu, ram = platform.processor() or platform.machine(), "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in
                   Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
        ram = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "ram": ram,
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}


def commit() -> str:
    try:
        done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=False)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    head = done.stdout.strip() or "unknown"
    return head + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def run_one(experiment: Experiment, root: Path, *, quick: bool, nice: bool,
            timeout: float) -> ExperimentRun:
    record = ExperimentRun(experiment.name, experiment.makes, "not run")
    tokens = experiment.quick if quick else experiment.full
    if tokens is None:
        record.note = "no smoke variant (runs without --quick)"
        return record
    missing = [p for p in experiment.shared_data if not SHARED_DATA.joinpath(p).exists()]
    out = root / experiment.name
    command = fill(tokens, out)
    record.command = shlex.join(command)
    if missing:
        required = os.environ.get("FEDCODEC_REQUIRE_SHARED_DATA") == "1"
        record.status = "failed" if required else "skipped"
        record.note = f"shared data not found: {SHARED_DATA / missing[0]}"
        return record
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(EXPERIMENTS), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "FLWR_TELEMETRY_ENABLED": "0", "RAY_USAGE_STATS_ENABLED": "0",
        "MLFLOW_DISABLE_TELEMETRY": "true", "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
    full_command = (["nice", "-n", "10"] if nice else []) + command
    print(f"[run_all] {experiment.name}: {record.command}", flush=True)
    start = time.perf_counter()
    with (out / "stdout.txt").open("w") as stdout, (out / "stderr.txt").open("w") as stderr:
        try:
            done = subprocess.run(full_command, cwd=out, stdout=stdout, stderr=stderr, env=env,
                                  timeout=timeout, check=False)
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = None
    record.seconds = time.perf_counter() - start
    record.finished = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}"
    record.commit = commit()
    record.outputs = sorted(str(p.relative_to(root)) for p in out.rglob("*")
                            if p.is_file() and p.suffix in OUTPUT_SUFFIXES
                            and p.name not in SKIP_NAMES and ".tmp" not in p.name)
    if code == 0:
        record.status = "ok"
    else:
        record.status = "failed"
        record.note = (f"timed out after {timeout:.0f} s" if code is None else
                       f"exit {code}: "
                       f"{last_line(out / 'stderr.txt') or last_line(out / 'stdout.txt')}")
    print(f"[run_all] {experiment.name}: {record.status} in {record.seconds:.0f} s"
          + (f" ({record.note})" if record.note else ""), flush=True)
    return record


def last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def merged_with_previous(root: Path, runs: list[ExperimentRun], *, quick: bool
                         ) -> list[ExperimentRun]:
    """``runs`` plus the other experiments recorded by an earlier pass into ``root`` (same
    ``--quick`` setting), in the order of :data:`EXPERIMENT_LIST`: rerunning one experiment keeps
    the rest of the index instead of wiping it."""
    by_name = {}
    try:
        previous = json.loads((root / "index.json").read_text())
    except (OSError, ValueError):
        previous = {}
    if previous.get("quick") == quick:
        known = {f.name for f in fields(ExperimentRun)}
        for item in previous.get("experiments", []):
            if isinstance(item, dict) and item.get("name") in BY_NAME:
                record = ExperimentRun(**{k: v for k, v in item.items() if k in known})
                if record.status != "not run" and not record.finished:  # index of an older
                    record.finished = f"pass started {str(previous.get('started', '?'))[:16]}"
                    record.commit = record.commit or str(previous.get("commit", ""))
                by_name[record.name] = record
    by_name.update({run.name: run for run in runs})
    return [by_name[e.name] for e in EXPERIMENT_LIST if e.name in by_name]


def write_index(
    root: Path, runs: list[ExperimentRun], *, quick: bool, started: dt.datetime
) -> Path:
    info = machine()
    lines = [
        "# fedcodec experiments", "",
        f"Generated by `experiments/run_all.py{' --quick' if quick else ''}`; last pass "
        f"started {started:%Y-%m-%d %H:%M} UTC, index written "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}. Each row says when "
        "(UTC) and at which commit that experiment ran; a pass with `--only` reruns those "
        "and keeps the other rows.", "",
        f"Machine: {info['nproc']} CPU ({info['cpu']}), {info['ram']} RAM, {info['os']}, "
        f"Python {info['python']}. Timings on a shared machine are noisy.", "",
        "| experiment | status | seconds | finished (UTC) | commit | makes | command |",
        "| --- | --- | ---: | --- | --- | --- | --- |",
    ]
    for run in runs:
        status = run.status + (f" ({run.note})" if run.note else "")
        lines.append(f"| {run.name} | {status} | {run.seconds:.0f} | {run.finished or '-'} | "
                     f"{run.commit or '-'} | {run.makes} | `{run.command or '-'}` |")
    lines += ["", "## Figures and tables", ""]
    for run in runs:
        printed = root / run.name / "stdout.txt"
        has_stdout = printed.exists() and printed.stat().st_size > 0
        if not run.outputs and not has_stdout:
            continue
        lines += [f"### {run.name}", "", f"Command: `{run.command}`", ""]
        if has_stdout:
            lines.append(f"- [{run.name}/stdout.txt]({run.name}/stdout.txt) (what it printed)")
        for output in run.outputs:
            lines.append(f"![{Path(output).name}]({output})" if output.endswith(".png")
                         else f"- [{output}]({output})")
        lines.append("")
    index = root / "INDEX.md"
    index.write_text("\n".join(lines) + "\n")
    (root / "index.json").write_text(json.dumps(
        {"quick": quick, "started": started.isoformat(), "machine": info, "commit": commit(),
         "experiments": [asdict(r) for r in runs]}, indent=1))
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "experiments")
    parser.add_argument("--quick", action="store_true", help="smoke variants only")
    parser.add_argument("--only", help="comma-separated experiment names")
    parser.add_argument("--skip", help="comma-separated experiment names to leave out")
    parser.add_argument("--list", action="store_true", help="print the experiments and exit")
    parser.add_argument("--no-nice", action="store_true", help="do not run under nice -n 10")
    parser.add_argument("--timeout", type=float, default=4 * 3600.0, help="seconds per experiment")
    args = parser.parse_args(argv)
    if args.list:
        for e in EXPERIMENT_LIST:
            print(f"{e.name:<20} {'quick+full' if e.quick else 'full only':<11} {e.makes}")
        return 0
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(BY_NAME)
    skipped = {n.strip() for n in args.skip.split(",")} if args.skip else set()
    unknown = [n for n in [*chosen, *skipped] if n not in BY_NAME]
    if unknown:
        print(f"run_all: error: unknown experiment {unknown[0]!r}; see --list", file=sys.stderr)
        return 2
    root = args.out.resolve()
    root.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    runs = [run_one(BY_NAME[name], root, quick=args.quick, nice=not args.no_nice,
                    timeout=args.timeout) for name in chosen if name not in skipped]
    index = write_index(root, merged_with_previous(root, runs, quick=args.quick),
                        quick=args.quick, started=started)
    print(f"[run_all] index: {index}")
    return 1 if any(r.status == "failed" for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
