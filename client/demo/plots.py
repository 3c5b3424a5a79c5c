"""The demo report's figures (Agg canvas, no global pyplot state), written atomically as PNG."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from fedcodec.shared.atomic_files import write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float, height: float, columns: int = 1) -> tuple[Figure, list]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(1, columns, i + 1) for i in range(columns)]
    return figure, axes


def _save(figure: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())
    return path


def plot_federated_curves(curves: dict[str, dict[str, list]], unit: str, path: Path) -> Path:
    """Held-out bits/pixel and ε per round, one line per site."""
    figure, (bpp_axes, eps_axes) = _figure(9, 3.6, 2)
    for site, metrics in curves.items():
        bpp = metrics.get("heldout_bpp", [])
        eps = metrics.get(f"epsilon_{unit}", [])
        if bpp:
            bpp_axes.plot([s for s, _ in bpp], [v for _, v in bpp], "o-", label=site)
        if eps:
            eps_axes.plot([s for s, _ in eps], [v for _, v in eps], "o-", label=site)
    bpp_axes.set(xlabel="round", ylabel="held-out bits/pixel", title="codec on held-out slices")
    eps_axes.set(xlabel="round", ylabel=f"ε spent (unit: {unit})", title="privacy spent per site")
    from matplotlib.ticker import MaxNLocator

    for axes in (bpp_axes, eps_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
    return _save(figure, path)


def plot_compression(rows: list[dict], path: Path) -> Path:
    """Bits/pixel of the demo study per mode and codec (learned codecs hatched)."""
    figure, (axes,) = _figure(9, 3.8)
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    x = 0.0
    ticks, labels = [], []
    colours = {"lossless": "tab:blue", "near-lossless": "tab:orange", "lossy": "tab:green"}
    for mode in modes:
        for row in (r for r in rows if r["mode"] == mode):
            axes.bar(x, row["bpp"], color=colours.get(mode, "grey"),
                     hatch="//" if row["learned"] else None, edgecolor="black", linewidth=0.5)
            text = f"{row['bpp']:.2f}" + (f"\n{row['psnr']:.1f} dB" if row.get("psnr") else "")
            axes.annotate(text, (x, row["bpp"]), ha="center", va="bottom", fontsize=7)
            ticks.append(x)
            labels.append(row["label"])
            x += 1
        x += 0.7
    axes.set_xticks(ticks, labels, rotation=30, ha="right", fontsize=7)
    axes.set_ylabel("bits per pixel (pixel streams)")
    axes.set_title("demo study: " + ", ".join(modes) + " (hatched = learned; worst PSNR if lossy)")
    axes.grid(True, axis="y", alpha=0.3)
    return _save(figure, path)


def plot_analysis(plain: list[list[float]], encrypted: list[list[float]], classes: list[str],
                  path: Path) -> Path:
    """Encrypted vs plaintext scores of every slice and class (the diagonal is agreement)."""
    figure, (axes,) = _figure(4.6, 4.2)
    for index, name in enumerate(classes):
        axes.plot([p[index] for p in plain], [e[index] for e in encrypted], "o", label=name,
                  markersize=4)
    values = [v for row in plain + encrypted for v in row]
    if values:
        low, high = min(values), max(values)
        axes.plot([low, high], [low, high], "k--", linewidth=0.8)
    axes.set(xlabel="plaintext head score", ylabel="CKKS-encrypted head score (decrypted)",
             title="encrypted vs plaintext scores")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7)
    return _save(figure, path)
