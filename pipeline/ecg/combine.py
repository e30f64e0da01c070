"""Deep-ensemble combiner: weighted mean of member probabilities, then a temperature.

Kept numpy-only (no scipy, no torch) because ``pipeline predict`` runs it; only the fit
imports scipy.optimize.
"""

from __future__ import annotations

import numpy as np


def combine(member_probs: np.ndarray, weights: np.ndarray, temperature: float) -> np.ndarray:
    """(members, records, classes) probabilities -> (records, classes).

    ``weights`` (one per member, summing to 1) mix the probabilities; the mixture is then
    sharpened or softened as softmax(log p / temperature).
    """
    mixed = np.tensordot(np.asarray(weights, dtype=np.float64), np.asarray(member_probs, dtype=np.float64), axes=1)
    logits = np.log(np.clip(mixed, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


def cascade_threshold(signal_probs: np.ndarray, full_probs: np.ndarray, max_changed: int = 0) -> float:
    """Lowest exit threshold on the signal views' top probability at which exiting changes at most
    ``max_changed`` of the full ensemble's predictions (both (records, classes), held out).

    Records exit when their top signal probability is above the threshold, which sits at the
    confidence of the most confident record whose exit would change one prediction too many (0: every
    record may exit).
    """
    confidence = signal_probs.max(axis=1)
    changed = signal_probs.argmax(axis=1) != full_probs.argmax(axis=1)
    order = np.argsort(-confidence, kind="stable")
    too_many = np.flatnonzero(np.cumsum(changed[order]) > max_changed)
    return float(confidence[order[too_many[0]]]) if len(too_many) else 0.0


def cascade_exits(signal_probs: np.ndarray, threshold: float) -> np.ndarray:
    """Records whose signal views decide alone: top probability above ``threshold``."""
    return signal_probs.max(axis=1) > threshold


def fit_combiner(member_probs: np.ndarray, labels: np.ndarray, views: list[int],
                 fit_weights: bool = True) -> tuple[np.ndarray, float]:
    """Per-view weights (members of one view share theirs equally) and a temperature that
    minimise the negative log-likelihood of ``labels``; with ``fit_weights=False`` every view
    weighs the same and only the temperature is fitted.

    Weights are per view, not per member, so a validation part of ~150 records fits a few
    numbers rather than one per seed.
    """
    from scipy.optimize import minimize

    views = np.asarray(views)
    n_views = int(views.max()) + 1
    per_view_count = np.bincount(views, minlength=n_views)

    def unpack(params: np.ndarray) -> tuple[np.ndarray, float]:
        view_weight = np.exp(params[:n_views] - params[:n_views].max())
        view_weight /= view_weight.sum()
        return view_weight[views] / per_view_count[views], float(np.exp(params[-1]))

    def loss(params: np.ndarray) -> float:
        weights, temperature = unpack(params)
        probs = combine(member_probs, weights, temperature).astype(np.float64)
        return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())

    start = np.zeros(n_views + 1)
    if fit_weights:
        best = minimize(loss, start, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 2000})
        params = best.x if best.fun <= loss(start) else start
    else:
        best = minimize(lambda t: loss(np.append(start[:-1], t)), start[-1:], method="Nelder-Mead")
        params = np.append(start[:-1], best.x)
    weights, temperature = unpack(params)
    return weights, float(np.clip(temperature, 0.05, 20.0))
