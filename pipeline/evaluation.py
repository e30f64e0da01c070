"""Record-level classification metrics with a bootstrap confidence interval."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

from pipeline.atomic import atomic_path


def classification_report(
    y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], n_boot: int = 2000, seed: int = 0
) -> dict:
    """Accuracy, macro-F1, per-class sensitivity/specificity/F1, confusion and a 95% CI.

    Args:
        y_true, y_pred: (n_records,) integer class indices.
    Returns:
        JSON-ready dict; ``confusion[i][j]`` counts true class i predicted as j.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(range(len(classes)))
    confusion = confusion_matrix(y_true, y_pred, labels=labels)
    per_class = {}
    f1s = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    total = confusion.sum()
    for i, name in enumerate(classes):
        tp = confusion[i, i]
        fn = confusion[i].sum() - tp
        fp = confusion[:, i].sum() - tp
        tn = total - tp - fn - fp
        per_class[name] = {
            "sensitivity": float(tp / (tp + fn)) if tp + fn else None,
            "specificity": float(tn / (tn + fp)) if tn + fp else None,
            "f1": float(f1s[i]),
            "support": int(tp + fn),
        }
    correct = (y_true == y_pred).astype(float)
    rng = np.random.default_rng(seed)
    boots = correct[rng.integers(0, len(correct), size=(n_boot, len(correct)))].mean(axis=1) if len(correct) else [0]
    return {
        "accuracy": float(correct.mean()) if len(correct) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "accuracy_ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "classes": list(classes),
    }


def plot_confusion(confusion: list[list[int]], classes: list[str], path, title: str) -> None:
    """Write the confusion matrix as a PNG (matplotlib imported only here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(4.2, 3.8), dpi=120)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
