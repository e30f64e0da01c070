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
    recalls = [v["sensitivity"] for v in per_class.values() if v["sensitivity"] is not None]
    return {
        "accuracy": float(correct.mean()) if len(correct) else 0.0,
        "balanced_accuracy": float(np.mean(recalls)) if recalls else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "accuracy_ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "classes": list(classes),
    }


def calibration_report(y_true: np.ndarray, probabilities: np.ndarray, n_bins: int = 10) -> dict:
    """Expected calibration error of the top-class confidence (equal-width bins) and the reliability table.

    ECE = sum over bins of (bin share) x |accuracy - mean confidence|: 0 for a calibrated model.
    """
    y_true, probabilities = np.asarray(y_true), np.asarray(probabilities, dtype=float)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y_true
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    table, ece = [], 0.0
    for b in range(n_bins):
        member = bins == b
        if member.any():
            gap = abs(correct[member].mean() - confidence[member].mean())
            ece += member.mean() * gap
            table.append({"low": b / n_bins, "high": (b + 1) / n_bins, "count": int(member.sum()),
                          "accuracy": float(correct[member].mean()), "confidence": float(confidence[member].mean())})
    nll = -np.log(np.clip(probabilities[np.arange(len(y_true)), y_true], 1e-12, 1.0)).mean() if len(y_true) else 0.0
    return {"ece": float(ece), "nll": float(nll), "bins": table}


def save_figure(fig, path) -> None:
    """Write a matplotlib figure as PNG atomically (no half-written file) and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def plot_reliability(calibration: dict, path, title: str) -> None:
    """Reliability diagram: accuracy against mean confidence per bin, bar width = bin, diagonal = calibrated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.8), dpi=120)
    for row in calibration["bins"]:
        ax.bar(row["low"], row["accuracy"], width=row["high"] - row["low"], align="edge",
               color="tab:blue", alpha=0.35 + 0.65 * min(1.0, row["count"] / 50), edgecolor="black", linewidth=0.5)
        ax.plot(row["confidence"], row["accuracy"], "k.", markersize=4)
    ax.plot([0, 1], [0, 1], "r--", linewidth=1, label="calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence (top class)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}\nECE {calibration['ece']:.3f}", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    save_figure(fig, path)


def subgroup_recall(y_true: np.ndarray, y_pred: np.ndarray, member: np.ndarray) -> dict:
    """Recall on a subgroup (e.g. atrial flutter inside AFIB): correct / count among ``member``."""
    member = np.asarray(member, dtype=bool)
    count = int(member.sum())
    correct = int((np.asarray(y_true)[member] == np.asarray(y_pred)[member]).sum())
    return {"count": count, "correct": correct, "recall": correct / count if count else None}


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
    save_figure(fig, path)
