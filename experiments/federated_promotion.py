"""The federated loop closed: start from the shipped weights (``neural_v1``, the default until
2026-12-07, trained on ``dicom/`` only, so two sites stay unseen), train through the project's
ServerApp / ClientApp (Flower simulation engine, SecAgg+, DP-SGD at every site, promotion gate),
then compare, per site, the promoted federated model with the shipped weights on that site's
held-out series — what a site gets from ``fedcodec models pull``.

Run (the README table; defaults = its configuration)::

    nice -n 10 .venv/bin/python experiments/federated_promotion.py --out OUT

Sites: ``ge, philips, siemens, toshiba`` of ``../shared/data/dicom`` and, unless ``--no-unseen``,
``fieldmaps, philips-dwi`` of ``../shared/data/dicom-more``. **The shipped weights were trained on
every series of ``dicom/``, so for the first four sites the held-out series were seen by the
shipped model** (the comparison favours it); the ``dicom-more`` sites are data it never saw.
Held-out series (hash split, as every site splits) never enter federated training. bits/pixel are
the codec's ideal code length under the quantised networks and the shipped count tables, on
every sampled pixel of each site's held-out series (the same estimate the gate uses).

Writes ``OUT/results.json``, ``OUT/federated_promotion.md`` (the table) and the federation folder
``OUT/server`` (checkpoint, ``promotion.json``, MLflow store and artifacts, ``neural_federated.npz``
when a round was promoted).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FEDCODEC_SHARED_DATA", REPO.parent / "shared" / "data"))
SEEN = ("dicom/ge", "dicom/philips", "dicom/siemens", "dicom/toshiba")
UNSEEN = ("dicom-more/fieldmaps", "dicom-more/philips-dwi")


def run_config(args: argparse.Namespace, sites: list[str], out: Path) -> dict:
    return {
        "num-server-rounds": args.rounds, "sites": ",".join(sites), "data-root": str(args.data),
        "state-root": str(out / "sites"), "checkpoint-dir": str(out / "server"),
        "unit": args.unit, "target-epsilon": args.epsilon, "delta": 1e-5, "dp": not args.no_dp,
        "local-steps": args.steps, "sample-rate": args.q, "pixels-per-unit": 64,
        "pixels-per-group": args.pixels_per_group, "max-slices": args.max_slices, "lr": args.lr,
        "max-grad-norm": args.clip, "update-clip": 4.0, "min-fit-clients": len(sites),
        "min-available-clients": len(sites), "round-timeout": 1800.0, "seed": 0,
        "secagg": True, "initial-weights": "neural_v1", "codec-counts": "neural_v1",
        "promotion-gate": True, "register-model": "fedcodec-neural-federated",
        "mlflow-experiment": "fedcodec-federated-promotion", "log-model": True,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--q", type=float, default=0.3)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--clip", type=float, default=0.25)
    ap.add_argument("--epsilon", type=float, default=8.0)
    ap.add_argument("--unit", default="slice")
    ap.add_argument("--pixels-per-group", type=int, default=128)
    ap.add_argument("--max-slices", type=int, default=16)
    ap.add_argument("--no-dp", action="store_true")
    ap.add_argument("--no-unseen", action="store_true", help="only the four dicom/ sites")
    args = ap.parse_args()

    from flwr.simulation import run_simulation

    from fedcodec.client.federated.client_app import build_client_app
    from fedcodec.client.federated.site_config import site_config
    from fedcodec.client.federated.site_round import load_site_data
    from fedcodec.client.federated.site_evaluation import heldout_bits
    from fedcodec.server.federated.federation import model_arrays
    from fedcodec.server.federated.server_app import build_server_app
    from fedcodec.shared.neural.model import from_integer
    from fedcodec.shared.neural.named_counts import named_counts
    from fedcodec.shared.neural.weights import NeuralWeights, shipped_path

    out = args.out.resolve()
    for stale in ("server", "flwr"):  # a fresh federation (site sample caches are kept)
        if (out / stale).exists():
            import shutil

            shutil.rmtree(out / stale)
    for budget in (out / "sites").rglob("privacy-*.json"):
        budget.unlink()
    sites = list(SEEN) + ([] if args.no_unseen else list(UNSEEN))
    config = run_config(args, sites, out)
    from fedcodec.client.federated.site_policy import SitePolicy, save_policy

    for name in sites:  # each simulated site's own policy admits the recipe (a few patients each)
        save_policy(out / "sites" / name, SitePolicy(unit=args.unit, dp=not args.no_dp,
                                                     min_patients=1))
    os.environ.setdefault("FLWR_HOME", str(out / "flwr"))
    started = time.perf_counter()
    results: list = []
    run_simulation(build_server_app(config, results), build_client_app(config),
                   num_supernodes=len(sites),
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": 2, "include_dashboard": False}})
    if not results or results[0] is None:
        raise SystemExit("the federation did not finish")
    strategy = results[0]
    seconds = time.perf_counter() - started

    shipped = model_arrays(from_integer(NeuralWeights.load(shipped_path("neural_v1"))))
    promoted = strategy.gate.promoted
    counts = named_counts("neural_v1")
    rows = []
    for i, name in enumerate(sites):
        site = load_site_data(site_config(config, {"partition-id": i}))
        base, pixels = heldout_bits(shipped, site.heldout, counts)
        fed, _ = heldout_bits(promoted, site.heldout, counts)
        rows.append({"site": name, "seen_by_shipped": name in SEEN, "pixels": pixels,
                     "heldout_series": len(site.heldout_series), "train_units": site.train.n_units,
                     "shipped_bpp": base, "federated_bpp": fed,
                     "change_percent": 100.0 * (fed - base) / base})
    decisions = [d.__dict__ for d in strategy.gate.decisions]
    eps = {m["site"]: m.get("epsilon") for h in strategy.history for m in h["sites"]}
    report = {"config": config, "seconds": seconds, "promoted_round": strategy.gate.promoted_round,
              "decisions": decisions, "sites": rows, "epsilon": eps}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=1, default=str) + "\n")

    unit = args.unit
    lines = [f"Promoted federated model vs shipped weights (`neural_v1.npz`), held-out bits/pixel "
             f"per site; {args.rounds} rounds x {args.steps} local steps, DP-SGD "
             f"{'off' if args.no_dp else f'ε = {args.epsilon:g} ({unit}-level), δ = 1e-5'}, "
             f"SecAgg+, promotion gate; promoted round: {strategy.gate.promoted_round or 'none'}.",
             "", "| site | shipped saw it | held-out series | shipped | federated (promoted) | change |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['site']} | {'yes' if r['seen_by_shipped'] else '**no**'} | "
                     f"{r['heldout_series']} | {r['shipped_bpp']:.3f} | {r['federated_bpp']:.3f} | "
                     f"{r['change_percent']:+.2f} % |")
    weights = np.array([r["pixels"] for r in rows], dtype=float)
    for label, sel in (("all sites", [True] * len(rows)),
                       ("unseen sites", [not r["seen_by_shipped"] for r in rows])):
        sel = np.array(sel)
        if sel.any():
            b = float(np.sum(weights[sel] * [r["shipped_bpp"] for r, s in zip(rows, sel) if s])
                      / weights[sel].sum())
            f = float(np.sum(weights[sel] * [r["federated_bpp"] for r, s in zip(rows, sel) if s])
                      / weights[sel].sum())
            lines.append(f"| {label} (size-weighted) | | | {b:.3f} | {f:.3f} | "
                         f"{100 * (f - b) / b:+.2f} % |")
    lines += ["", "Gate decisions (size-weighted held-out bpp over reporting sites):", ""]
    for d in decisions:
        lines.append(f"- round {d['round']}: {'**promoted**' if d['promoted'] else 'kept'} — "
                     f"{d['reason']}")
    lines.append(f"\nWall time of the federation: {seconds / 60:.1f} min.")
    text = "\n".join(lines) + "\n"
    (out / "federated_promotion.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
