"""Federated vs local-only vs centralised training of the neural predictor, each with and without
DP-SGD, on the four vendor folders as four hospitals; evaluated on every site's held-out series.

Run (the README table; defaults = its configuration)::

    nice -n 10 .venv/bin/python experiments/federated_compare.py --out OUT --flower

Writes ``OUT/results.json``, ``OUT/federated_compare.md`` (the tables in
docs/federated-training.md) and ``OUT/federated_compare.png``. Sampled pixels are cached in
``OUT/cache`` (a rerun into the same OUT skips the ~2 min of sampling).

Same budget everywhere: every site is Poisson-sampled at the same rate ``q`` (batch = q x units),
so one epoch is 1/q steps for every training set, and every configuration runs ``rounds x steps``
steps (federated: per site per round; local-only: at its site; centralised: on the pooled units).
With DP, the noise multiplier is calibrated so those steps spend exactly ``--epsilon`` at ``--delta``
for the chosen unit (each site's accountant for federated / local; the pooled data for
centralised). The "federated" rows run the ServerApp's arithmetic in one process (mean of
clipped updates; site ``i`` trains with seed ``site_seed(seed, i)``, as the ClientApp does).
``--flower`` adds both federated rows again, produced by the project's ClientApp and ServerApp in
Flower's simulation engine (Ray) with SecAgg+ and each site's persisted accountant, on the same
cached samples; with reproducible noise they must agree with the in-process rows up to SecAgg+'s
quantisation (the report prints the difference). ``--extra units-dp,units-plain`` adds
federated rows whose mean is weighted by each site's number of training units. ``--extra-only``
(``--flower-only`` for the Flower rows) adds extra rows to an existing ``OUT/results.json`` made
with the same measurement arguments, without rerunning the others.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from fedcodec.client.federated.dp_training import (
    LocalTrainConfig,
    calibrated_noise,
    get_parameters,
    integer_bits,
    set_parameters,
    train_local,
)
from fedcodec.client.federated.site_config import site_seed
from fedcodec.client.federated.site_data import SiteData, SiteDataConfig, cache_name, load_site
from fedcodec.client.federated.site_round import clip_update
from fedcodec.client.federated.unit_samples import merge_unit_samples
from fedcodec.shared.neural.model import NeuralPredictor
from fedcodec.shared.privacy import PrivacyAccountant

SITES = ("ge", "philips", "siemens", "toshiba")
EXTRA_ROWS = {  # --extra key -> (row label, the in-process row a Flower row must agree with)
    "flower-dp": ("federated + DP (Flower, SecAgg+)", "federated + DP"),
    "flower-plain": ("federated (Flower, SecAgg+)", "federated"),
    "units-dp": ("federated + DP (unit-weighted)", None),
    "units-plain": ("federated (unit-weighted)", None),
}
FLOWER_EXTRAS = ("flower-dp", "flower-plain")


def fresh_model(args) -> NeuralPredictor:
    torch.manual_seed(args.seed)
    return NeuralPredictor(args.hidden, 2)


def train_config(args, dp: bool, noise: float | None, batch_units: float, seed: int) -> LocalTrainConfig:
    return LocalTrainConfig(steps=args.steps, batch_units=batch_units,
                            pixels_per_unit=args.pixels_per_unit, lr=args.lr, dp=dp,
                            max_grad_norm=args.clip, noise_multiplier=noise, planned_rounds=args.rounds,
                            seed=seed, reproducible_noise=True)


def accountant(args, target: float) -> PrivacyAccountant:
    return PrivacyAccountant(None, args.unit, target, args.delta)


def run_federated(args, sites: dict[str, SiteData], dp: bool, noise: float,
                  weighting: str = "uniform") -> tuple[NeuralPredictor, dict]:
    """The ServerApp's arithmetic in one process: every site trains from the global model, clips
    its update, and the server adds the mean (``uniform``: weight 1 per site, what the ServerApp
    does) or the mean weighted by each site's number of training units (``units``)."""
    model = fresh_model(args)
    counts = np.array([site.train.n_units for site in sites.values()], dtype=np.float64)
    weights = counts / counts.sum() if weighting == "units" else np.full(len(sites), 1 / len(sites))
    accountants = {name: accountant(args, args.epsilon) for name in sites}
    for r in range(1, args.rounds + 1):
        start = get_parameters(model)
        updates = []
        for i, (name, site) in enumerate(sites.items()):
            local = copy.deepcopy(model)
            cfg = train_config(args, dp, noise, args.q * site.train.n_units, site_seed(args.seed, i))
            train_local(local, site.train, cfg, accountants[name] if dp else None, r)
            update, _ = clip_update([a - b for a, b in zip(get_parameters(local), start)],
                                    args.update_clip)
            updates.append(update)
        set_parameters(model, [s + np.tensordot(weights, np.stack(u), axes=1).astype(np.float32)
                               for s, *u in zip(start, *updates)])
    eps = {name: acc.epsilon for name, acc in accountants.items()} if dp else None
    return model, eps


def run_single(args, samples, dp: bool, noise: float, seed: int) -> tuple[NeuralPredictor, float | None]:
    """Local-only or centralised: ``rounds x steps`` steps on one training set."""
    model = fresh_model(args)
    acc = accountant(args, args.epsilon) if dp else None
    for r in range(1, args.rounds + 1):
        train_local(model, samples, train_config(args, dp, noise, args.q * samples.n_units, seed),
                    acc, r)
    return model, (acc.epsilon if acc else None)


def link_site_caches(args, data_cfg: SiteDataConfig) -> None:
    """Give every simulated site the sampled pixels this script already cached (same data config,
    same file name): the Flower sites then train on exactly the in-process rows' samples instead
    of resampling them in every Ray worker."""
    for name in SITES:
        cached = args.out / "cache" / cache_name(args.data / name, data_cfg)
        target = args.out / "flower-sites" / name / "cache" / cached.name
        if cached.exists() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(cached, target)


def run_flower(args, out: Path, dp: bool, noise: float) -> tuple[NeuralPredictor, dict | None]:
    """The federated configuration through Flower's simulation engine: the project's ClientApp
    and ServerApp, SecAgg+ on, every site's accountant persisted under ``OUT/flower-sites``."""
    import shutil

    from flwr.simulation import run_simulation

    from fedcodec.client.federated.client_app import build_client_app
    from fedcodec.client.federated.site_policy import SitePolicy, save_policy
    from fedcodec.server.federated.server_app import build_server_app

    tag = "dp" if dp else "nodp"
    shutil.rmtree(out / "flower-server" / tag, ignore_errors=True)  # fresh, not resumed
    for name in SITES:  # fresh accountants (the cache folder beside them is kept)
        for state in (out / "flower-sites" / name).glob("privacy-*.json"):
            state.unlink()
        # each site's own policy admits this experiment (slice unit, one or two patients, no-DP arm)
        save_policy(out / "flower-sites" / name,
                    SitePolicy(unit=args.unit, dp=dp, min_patients=1,
                               max_epsilon=max(args.epsilon, 8.0), max_delta=max(args.delta, 1e-5)))
    os.environ.setdefault("FLWR_HOME", str(out / "flwr"))
    config = {
        "num-server-rounds": args.rounds, "sites": ",".join(SITES), "data-root": str(args.data),
        "state-root": str(out / "flower-sites"), "checkpoint-dir": str(out / "flower-server" / tag),
        "unit": args.unit, "target-epsilon": args.epsilon, "delta": args.delta, "dp": dp,
        "noise-multiplier": noise if dp else 0.0, "local-steps": args.steps, "sample-rate": args.q,
        "pixels-per-unit": args.pixels_per_unit, "pixels-per-group": args.pixels_per_group,
        "max-slices": args.max_slices, "lr": args.lr, "max-grad-norm": args.clip,
        "update-clip": args.update_clip, "min-fit-clients": 4, "min-available-clients": 4,
        "hidden": args.hidden, "depth": 2, "seed": args.seed, "reproducible-noise": True,
        "secagg": True, "report-site-metrics": False, "log-model": False,
        "initial-weights": "none", "promotion-gate": False,  # same start as the in-process rows
    }
    results: list = []
    run_simulation(build_server_app(config, results), build_client_app(config), num_supernodes=4,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": 2, "include_dashboard": False}})
    if not results or results[0] is None or len(results[0].history) != args.rounds:
        raise SystemExit("Flower simulation did not finish all rounds")
    strategy = results[0]
    if any(len(h["sites"]) != len(SITES) for h in strategy.history):
        raise SystemExit("a site dropped out of a Flower round; the row would not be comparable")
    model = fresh_model(args)
    set_parameters(model, strategy.current)
    eps = {m["site"]: m["epsilon"] for m in strategy.history[-1]["sites"]} if dp else None
    return model, eps


def measured_args(args) -> dict[str, str]:
    """The arguments that define the measurement (not where it goes or which rows run)."""
    skip = {"out", "flower", "flower_only", "extra", "extra_only"}
    return {k: str(v) for k, v in vars(args).items() if k not in skip}


def evaluate(model: NeuralPredictor, sites: dict[str, SiteData]) -> dict[str, float]:
    return {name: integer_bits(model, site.heldout) for name, site in sites.items()}


def write_report(out: Path, results: dict, args, noise: float, sites: dict[str, SiteData]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(sites)
    lines = [
        (f"Held-out bits/pixel (quantised networks + logistic tables, every sampled pixel of each "
        f"site's held-out series); unit = **{args.unit}**, δ = {args.delta:g}; DP rows calibrated "
        f"to ε = {args.epsilon:g} over {args.rounds} rounds x {args.steps} steps at q = {args.q:g} "
        f"(σ = {noise:.3f}, clip {args.clip:g})."), "",
        "| model | " + " | ".join(names) + " | mean | ε (" + args.unit + ") |",
        "|---" * (len(names) + 3) + "|",
    ]
    for label, row in results["models"].items():
        eps = row.get("epsilon")
        eps_text = "—" if eps is None else (f"{max(eps.values()):.2f} (max over sites)"
                                            if isinstance(eps, dict) else f"{eps:.2f}")
        cells = " | ".join(f"{row['bpp'][n]:.3f}" for n in names)
        lines.append(f"| {label} | {cells} | {row['mean']:.3f} | {eps_text} |")
    lines += ["", "Units per site (train / held-out series): " + ", ".join(
        f"{n}: {sites[n].train.n_units} {args.unit}s / {len(sites[n].heldout_series)}" for n in names)]
    checks = results["checks"]
    lines += ["", f"- federated + DP vs centralised (no DP), mean bpp: {checks['fed_dp_vs_central']:+.1%}",
              (f"- federated (no DP) beats every local-only model on the other sites' held-out data: "
              f"{checks['fed_beats_local_on_others']}"),
              (f"- federated + DP beats every local-only + DP model on the other sites' held-out data: "
              f"{checks['fed_dp_beats_local_dp_on_others']}"
              + (f" ({checks['fed_dp_pairs_won']} (local model, other site) pairs)"
                 if "fed_dp_pairs_won" in checks else ""))]
    for key, text in (("fed_units_beats_local_on_others", ("federated (unit-weighted) beats every "
                       "local-only model on the other sites' held-out data")),
                      ("fed_dp_units_beats_local_dp_on_others", ("federated + DP (unit-weighted) "
                       "beats every local-only + DP model on the other sites' held-out data"))):
        if key in checks:
            lines.append(f"- {text}: {checks[key]}")
    for key, label in (("flower_vs_in_process + DP", "federated + DP"),
                       ("flower_vs_in_process", "federated")):
        if key in checks:
            lines.append(f"- {label}: Flower simulation (ClientApp/ServerApp, SecAgg+) minus the "
                         f"in-process loop, mean bpp: {checks[key]:+.3f}")
    (out / "federated_compare.md").write_text("\n".join(lines) + "\n")

    fig, ax = plt.subplots(figsize=(10, 4.5))
    labels = list(results["models"])
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        ax.bar(np.arange(len(names)) + i * width, [results["models"][label]["bpp"][n] for n in names],
               width, label=label)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
    ax.set_ylabel("held-out bits/pixel (lower is better)")
    lo = min(min(r["bpp"].values()) for r in results["models"].values())
    ax.set_ylim(lo * 0.9, None)
    ax.set_title(f"DP rows: ε = {args.epsilon:g} ({args.unit}-level, δ = {args.delta:g})")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(out / "federated_compare.png", dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/dicom")
    ap.add_argument("--unit", default="slice")
    ap.add_argument("--epsilon", type=float, default=8.0)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--q", type=float, default=0.3, help="Poisson sampling rate at every site")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--clip", type=float, default=0.25,
                    help="per-unit L2 clip of DP-SGD (per-unit gradients start near 0.2-0.3)")
    ap.add_argument("--update-clip", type=float, default=4.0)
    ap.add_argument("--pixels-per-unit", type=int, default=64)
    ap.add_argument("--pixels-per-group", type=int, default=256)
    ap.add_argument("--max-slices", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--flower", action="store_true",
                    help="also run both federated rows through Flower's simulation engine "
                         "(= --extra flower-dp,flower-plain)")
    ap.add_argument("--extra", default="",
                    help="extra rows, comma-separated: " + ", ".join(EXTRA_ROWS))
    ap.add_argument("--extra-only", action="store_true",
                    help="run only the extra rows and add them to an existing OUT/results.json "
                         "made with the same configuration (reuses OUT/cache)")
    ap.add_argument("--flower-only", action="store_true", help="= --flower --extra-only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data_cfg = SiteDataConfig(unit=args.unit, pixels_per_group=args.pixels_per_group,
                              max_slices=args.max_slices, seed=args.seed)
    sites = {name: load_site(args.data / name, data_cfg, name, args.out / "cache") for name in SITES}
    print({n: (s.train.n_units, s.heldout.pixel_count()) for n, s in sites.items()},
          f"{time.perf_counter() - t0:.0f}s", flush=True)
    noise = calibrated_noise(args.epsilon, args.delta, args.q, args.rounds * args.steps)
    print(f"noise multiplier {noise:.3f} for ε={args.epsilon} ({args.unit})", flush=True)

    models: dict[str, dict] = {}

    def record(label: str, model: NeuralPredictor, eps) -> None:
        bpp = evaluate(model, sites)
        models[label] = {"bpp": bpp, "mean": float(np.mean(list(bpp.values()))), "epsilon": eps}
        print(f"{label:28s} mean {models[label]['mean']:.3f} {bpp} eps={eps} "
              f"[{time.perf_counter() - t0:.0f}s]", flush=True)

    def pairs(fed: str, suffix: str) -> list[bool]:
        """For every (local model, other site): is ``fed`` better on that site's held-out data?"""
        return [models[fed]["bpp"][other] < models[f"local {name}{suffix}"]["bpp"][other]
                for name in sites for other in sites if other != name]

    def beats(fed: str, suffix: str) -> bool:
        return all(pairs(fed, suffix))

    def save(results: dict) -> None:
        results["models"] = models
        results["checks"] = {
            "fed_dp_vs_central": models["federated + DP"]["mean"] / models["centralised"]["mean"] - 1,
            "fed_beats_local_on_others": beats("federated", ""),
            "fed_dp_beats_local_dp_on_others": beats("federated + DP", " + DP"),
            "fed_dp_pairs_won": f"{sum(pairs('federated + DP', ' + DP'))}/{len(sites) * (len(sites) - 1)}",
        }
        for kind, key in (("units-plain", "fed_units_beats_local_on_others"),
                          ("units-dp", "fed_dp_units_beats_local_dp_on_others")):
            label = EXTRA_ROWS[kind][0]
            if label in models:
                results["checks"][key] = beats(label, " + DP" if kind.endswith("-dp") else "")
        for label, reference in EXTRA_ROWS.values():
            if label in models and reference:
                results["checks"][f"flower_vs_in_process{' + DP' if 'DP' in label else ''}"] = (
                    models[label]["mean"] - models[reference]["mean"])
        results["seconds"] = results.get("seconds_in_process", 0.0) + sum(
            results.get("seconds_extra", {}).values())
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
        write_report(args.out, results, args, noise, sites)

    extras = [r.strip() for r in args.extra.split(",") if r.strip()]
    if args.flower or args.flower_only:
        extras = list(FLOWER_EXTRAS) + [e for e in extras if e not in FLOWER_EXTRAS]
    unknown = [e for e in extras if e not in EXTRA_ROWS]
    if unknown:
        raise SystemExit(f"--extra: unknown rows {unknown} (choose from {list(EXTRA_ROWS)})")
    if args.extra_only or args.flower_only:
        results = json.loads((args.out / "results.json").read_text())
        changed = {k for k, v in measured_args(args).items() if results["args"].get(k) != v}
        if changed:
            raise SystemExit(f"{args.out}/results.json was made with other {sorted(changed)}")
        extra_labels = {EXTRA_ROWS[e][0] for e in extras}
        models.update({k: v for k, v in results["models"].items() if k not in extra_labels})
    else:
        record("untrained (zero output)", fresh_model(args), None)
        pooled = merge_unit_samples([s.train for s in sites.values()])
        for dp in (False, True):
            tag = " + DP" if dp else ""
            record("centralised" + tag, *run_single(args, pooled, dp, noise, args.seed))
            record("federated" + tag, *run_federated(args, sites, dp, noise))
            for i, (name, site) in enumerate(sites.items()):
                record(f"local {name}{tag}", *run_single(args, site.train, dp, noise,
                                                         site_seed(args.seed, i)))
        results = {
            "args": measured_args(args),
            "noise_multiplier": noise,
            "units": {n: s.train.n_units for n, s in sites.items()},
            "heldout_series": {n: s.heldout_series for n, s in sites.items()},
            "seconds_in_process": time.perf_counter() - t0,
        }
        save(results)  # the main rows are kept even if an extra row fails
    for kind in extras:
        t1 = time.perf_counter()
        dp = kind.endswith("-dp")
        if kind in FLOWER_EXTRAS:
            link_site_caches(args, data_cfg)
            record(EXTRA_ROWS[kind][0], *run_flower(args, args.out, dp, noise))
        else:
            record(EXTRA_ROWS[kind][0], *run_federated(args, sites, dp, noise, weighting="units"))
        results.setdefault("seconds_extra", {})[kind] = time.perf_counter() - t1
        save(results)
    print((args.out / "federated_compare.md").read_text())


if __name__ == "__main__":
    main()
