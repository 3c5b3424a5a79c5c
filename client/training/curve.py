"""The training-curve PNG: train bits/pixel per network over the run, held-out points on top."""

from __future__ import annotations

from pathlib import Path

from fedcodec.shared.atomic_files import write_atomic


def write_training_curve(path: Path, history: list[tuple[int, str, float]],
                         evals: list[tuple[int, str, float]], title: str = "") -> Path:
    """Plot ``history`` (step, network, train bits/px) and ``evals`` (step, network, held-out)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    keys = list(dict.fromkeys(k for _, k, _ in history))
    colours = plt.get_cmap("tab10")
    for i, key in enumerate(keys):
        points = [(s, v) for s, k, v in history if k == key]
        ax.plot(*zip(*points), color=colours(i % 10), lw=1.0, marker="." if len(points) < 3 else None,
                label=f"{key} train")
        held = [(s, v) for s, k, v in evals if k == key]
        if held:
            ax.plot(*zip(*held), "o", color=colours(i % 10), ms=5, mec="black",
                    label=f"{key} held-out")
    ax.set_xlabel("step (all networks, in training order)")
    ax.set_ylabel("bits / pixel (float model)")
    ax.set_title(title or "fedcodec train")
    ax.grid(alpha=0.3)
    if keys:
        ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
    return Path(path)
