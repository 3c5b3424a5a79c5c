"""What a study-level rate allocation would buy over one budget per series.

    .venv/bin/python experiments/study_allocation.py [--study DIR ...] [--ratio R] [--out OUT]

``fedcodec compress --mode lossy --ratio R`` (and ``--bpp B``) holds the target for the study by
holding it in every series: each series spends its own share (its pixels x the target), and
inside a series the bound is chosen per slice for the highest mean slice PSNR
(``rate_control.allocate_slices``). A study-level allocation would pool the series instead: one
price per bit for every slice of the study, so an easy series could give bits to a hard one or
take them.

This codes every series of each study as the product does (``neural:mode=lossy,ratio=R``), keeps
the per-slice allocation's candidate codings (tau, bits and PSNR per slice:
``BoundedLossyCodec.last_candidates``), and runs the same allocation on the candidates of all
series pooled, with the study's budget. Per study it reports mean and worst slice PSNR (peak
2^bits-1; an exact slice counts 150 dB) and the bits spent against the budget, three ways:

* ``per series, coded``: what ``fedcodec compress`` writes (real streams, decoded and measured);
* ``per series, predicted``: the same choice from the candidates alone;
* ``study, predicted``: the pooled choice from the same candidates.

The two predicted rows compare like with like (a real coding moves sizes by a few percent when
references change, which the product's re-choice corrects). Series without candidates (one
slice, or lossless at the target) enter with their one coding.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fedcodec.shared import metrics
from fedcodec.shared.codecs import get_codec
from fedcodec.shared.neural.rate_control import PSNR_CEILING, allocate_slices
from fedcodec.shared.sources import read_stacks

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_STUDIES = (DATA / "dicom" / "siemens" / "siemens_c",
                   DATA / "dicom-more" / "fieldmaps" / "Philips",
                   DATA / "dicom-more" / "fieldmaps" / "Siemens")


def _series_candidates(volume: np.ndarray, bits: int, spec: str) -> dict:
    """Code one series as the product does; its real result and its candidates."""
    codec = get_codec(spec)
    streams = codec.encode_volume(volume, bits)
    decoded = codec.decode_volume(streams)
    psnr = [min(metrics.psnr(a, b, bits), PSNR_CEILING) for a, b in zip(volume, decoded,
                                                                           strict=True)]
    spent = [8.0 * len(s) for s in streams]
    if codec.last_candidates is None:
        taus = np.array([[t] for t in codec.last_taus])
        size, quality = np.array([[b] for b in spent]), np.array([[q] for q in psnr])
    else:
        taus, size, quality = codec.last_candidates
    return {"budget": codec.target.bpp_limit(8 * volume.dtype.itemsize) * volume.size,
            "real_bits": spent, "real_psnr": psnr, "taus": taus, "size": size,
            "quality": np.minimum(quality, PSNR_CEILING), "shape": volume.shape}


def _pad(matrices: list[np.ndarray]) -> np.ndarray:
    """Stack rows of matrices with different column counts (a row's first column repeats)."""
    width = max(m.shape[1] for m in matrices)
    return np.vstack([np.hstack([m, np.repeat(m[:, :1], width - m.shape[1], axis=1)])
                      for m in matrices])


def _summary(bits: np.ndarray, psnr: np.ndarray, budget: float) -> dict:
    return {"mean_db": float(np.mean(psnr)), "worst_db": float(np.min(psnr)),
            "bits_over_budget": float(np.sum(bits) / budget)}


def study_rows(study: Path, spec: str) -> dict:
    stacks, _ = read_stacks(study)
    series = [_series_candidates(np.ascontiguousarray(st.codec_volume()[0]), st.bits, spec)
              for st in stacks]
    budget = sum(s["budget"] for s in series)
    real_bits = np.concatenate([s["real_bits"] for s in series])
    real_psnr = np.concatenate([s["real_psnr"] for s in series])
    own_bits, own_psnr = [], []
    for s in series:
        pick = allocate_slices(s["size"], s["quality"], s["budget"])
        rows = np.arange(s["size"].shape[0])
        own_bits.append(s["size"][rows, pick])
        own_psnr.append(s["quality"][rows, pick])
    size, quality = _pad([s["size"] for s in series]), _pad([s["quality"] for s in series])
    pick = allocate_slices(size, quality, budget)
    rows = np.arange(size.shape[0])
    per_series_db = []
    start = 0
    for s, own in zip(series, own_psnr, strict=True):
        n = s["size"].shape[0]
        per_series_db.append({"shape": list(s["shape"]),
                              "own_mean_db": float(np.mean(s["real_psnr"])),
                              "own_predicted_db": float(np.mean(own)),
                              "study_mean_db": float(np.mean(quality[rows, pick][start:start + n])),
                              "own_bits_share": float(np.sum(s["real_bits"]) / budget),
                              "study_bits_share": float(np.sum(size[rows, pick][start:start + n])
                                                        / budget)})
        start += n
    return {"study": study.name, "series": len(series), "slices": int(size.shape[0]),
            "per series, coded": _summary(real_bits, real_psnr, budget),
            "per series, predicted": _summary(np.concatenate(own_bits),
                                              np.concatenate(own_psnr), budget),
            "study, predicted": _summary(size[rows, pick], quality[rows, pick], budget),
            "by_series": per_series_db}


def _table(results: list[dict]) -> str:
    lines = ["| study | series | slices | allocation | mean slice dB | worst slice dB "
             "| bits / budget |", "| --- | ---: | ---: | --- | ---: | ---: | ---: |"]
    for r in results:
        for kind in ("per series, coded", "per series, predicted", "study, predicted"):
            row = r[kind]
            lines.append(f"| {r['study']} | {r['series']} | {r['slices']} | {kind} | "
                         f"{row['mean_db']:.2f} | {row['worst_db']:.2f} | "
                         f"{row['bits_over_budget']:.3f} |")
    return "\n".join(lines)


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 3.6), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        x = np.arange(len(r["by_series"]))
        ax.bar(x - 0.2, [s["own_predicted_db"] for s in r["by_series"]], 0.4,
               label="own budget (predicted)")
        ax.bar(x + 0.2, [s["study_mean_db"] for s in r["by_series"]], 0.4,
               label="study budget (predicted)")
        ax.set_xticks(x, [f"{i + 1}\n{s['study_bits_share']:.2f}/{s['own_bits_share']:.2f}"
                          for i, s in enumerate(r["by_series"])], fontsize=7)
        lowest = min(min(s["own_predicted_db"], s["study_mean_db"]) for s in r["by_series"])
        ax.set_ylim(bottom=max(0.0, lowest - 10.0))
        ax.set_title(r["study"], fontsize=9)
        ax.set_ylabel("mean slice PSNR (dB)")
        ax.set_xlabel("series (bits share: study / own)", fontsize=8)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", type=Path, action="append", default=None)
    ap.add_argument("--ratio", type=float, default=9.0,
                    help="the target (default 9, the preview profile's)")
    ap.add_argument("--out", type=Path, default=Path("study_allocation"))
    args = ap.parse_args()
    spec = f"neural:mode=lossy,ratio={args.ratio:g}"
    from tqdm import tqdm

    results = [study_rows(study, spec)
               for study in tqdm(args.study or DEFAULT_STUDIES, desc="studies", unit="study")]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "study_allocation.json").write_text(json.dumps(results, indent=1))
    table = _table(results)
    (args.out / "study_allocation.md").write_text(f"`{spec}`\n\n{table}\n")
    _plot(results, args.out / "study_allocation.png")
    print(f"`{spec}`\n\n{table}")


if __name__ == "__main__":
    main()
