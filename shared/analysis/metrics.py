"""Classification metrics reported for every path: accuracy, macro-F1, confusion matrix (+ PNG)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ClassificationReport:
    accuracy: float
    macro_f1: float
    confusion: np.ndarray
    """confusion[true, predicted]."""

    def to_json(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "confusion": self.confusion.tolist(),
        }


def classification_report(
    labels: np.ndarray, predicted: np.ndarray, classes: int
) -> ClassificationReport:
    labels, predicted = np.asarray(labels, dtype=int), np.asarray(predicted, dtype=int)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    f1 = []
    # like scikit-learn's macro average: classes absent from both truth and predictions (a test
    # folder of another data set may lack some) are not averaged in as zeros
    present = [c for c in range(classes) if confusion[c, :].sum() or confusion[:, c].sum()]
    for c in present:
        tp = confusion[c, c]
        precision_den, recall_den = confusion[:, c].sum(), confusion[c, :].sum()
        precision = tp / precision_den if precision_den else 0.0
        recall = tp / recall_den if recall_den else 0.0
        f1.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    accuracy = float(np.trace(confusion) / max(1, confusion.sum()))
    return ClassificationReport(accuracy, float(np.mean(f1)) if f1 else 0.0, confusion)


def save_confusion_png(report: ClassificationReport, class_names, title: str, path: Path) -> None:
    """Write the confusion matrix as a PNG (counts in cells, rows = truth)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.8), dpi=120)
    ax.imshow(report.confusion, cmap="Blues")
    for (r, c), count in np.ndenumerate(report.confusion):
        colour = "white" if count > report.confusion.max() / 2 else "black"
        ax.text(c, r, str(count), ha="center", va="center", color=colour)
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=30)
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\nacc {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f}", fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
