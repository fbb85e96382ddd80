"""Evaluation metrics: thin, pure wrappers over scikit-learn (y: 1 = positive, p: P(positive)).

>>> import numpy as np
>>> m = binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.7, 0.9]))
>>> m["accuracy"], m["roc_auc"], (m["tn"], m["fp"], m["fn"], m["tp"])
(0.75, 1.0, (1, 1, 0, 2))
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)


def _both_classes(y: np.ndarray) -> bool:
    return len(np.unique(y)) == 2


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width bins of P(positive), weighted by bin size.

    >>> round(expected_calibration_error(np.array([0, 1]), np.array([0.2, 0.8])), 3)
    0.2
    """
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    mean_p = np.bincount(bins, weights=p, minlength=n_bins)
    mean_y = np.bincount(bins, weights=y, minlength=n_bins)
    filled = counts > 0
    return float(np.sum(np.abs(mean_y[filled] - mean_p[filled])) / len(y))


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, precision, recall, F1, ROC-AUC, PR-AUC, Brier, ECE and the confusion matrix."""
    pred = (p >= threshold).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    both = _both_classes(y)
    return {
        "n": len(y),
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision), "recall": float(recall), "f1": float(f1),
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "pr_auc": float(average_precision_score(y, p)) if both else None,
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp),
    }


def valid_probabilities(p: np.ndarray) -> np.ndarray:
    """True where p is a probability: finite and within [0, 1].

    DuckDB's DOUBLE column accepts NaN, +-inf and any value, and scikit-learn refuses them; the caller leaves
    these predictions out and says how many.

    >>> valid_probabilities(np.array([0.0, 0.5, 1.0, np.nan, np.inf, -np.inf, -0.5, 1.5]))
    array([ True,  True,  True, False, False, False, False, False])
    """
    return np.isfinite(p) & (p >= 0) & (p <= 1)


MIN_RESAMPLES = 10  # below this many usable resamples, the 2.5th and 97.5th percentiles mean nothing


def bootstrap_ci(y: np.ndarray, p: np.ndarray, n_boot: int = 200, seed: int = 0) -> dict:
    """95% percentile bootstrap intervals for accuracy and ROC-AUC; None where there is no honest interval.

    Each resample is drawn as Poisson(1) weights per review (the usual large-n bootstrap), so no copy of the
    data is made; scikit-learn computes each resample's metric with sample_weight. On a few reviews a
    resample can weigh every review zero (chance e^-n) and so has no accuracy, or weigh one class zero and so
    has no ROC-AUC: such resamples are skipped. Fewer than 2 reviews, n_boot 0 or fewer than MIN_RESAMPLES
    usable resamples give None rather than an interval made of a handful of numbers.

    >>> y, p = np.array([0, 1, 1, 0, 1]), np.array([0.2, 0.9, 0.4, 0.3, 0.8])
    >>> ci = bootstrap_ci(y, p)
    >>> 0 <= ci["accuracy_lo"] <= 0.8 <= ci["accuracy_hi"] <= 1, 0 <= ci["roc_auc_lo"] <= ci["roc_auc_hi"] <= 1
    (True, True)
    >>> bootstrap_ci(y[:1], p[:1])
    {'accuracy_lo': None, 'accuracy_hi': None, 'roc_auc_lo': None, 'roc_auc_hi': None}
    >>> bootstrap_ci(y, p, n_boot=0)["accuracy_lo"] is None
    True
    >>> bootstrap_ci(np.array([1, 1, 1]), np.array([0.9, 0.6, 0.3]))["roc_auc_lo"] is None  # one class
    True
    """
    rng = np.random.default_rng(seed)
    pred = (p >= 0.5).astype(int)
    acc, auc = [], []
    for _ in range(n_boot if len(y) >= 2 else 0):
        w = rng.poisson(1.0, len(y))
        if w.sum() == 0:
            continue
        acc.append(accuracy_score(y, pred, sample_weight=w))
        if _both_classes(y[w > 0]):
            auc.append(roc_auc_score(y, p, sample_weight=w))

    def lo_hi(values: list[float]) -> tuple[float | None, float | None]:
        if len(values) < MIN_RESAMPLES:
            return None, None
        return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))

    (acc_lo, acc_hi), (auc_lo, auc_hi) = lo_hi(acc), lo_hi(auc)
    return {"accuracy_lo": acc_lo, "accuracy_hi": acc_hi, "roc_auc_lo": auc_lo, "roc_auc_hi": auc_hi}


def _thin(n: int, max_points: int) -> np.ndarray:
    """Indices keeping at most max_points of n, always the first and the last."""
    return np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(int))


def curve_points(y: np.ndarray, p: np.ndarray, max_points: int = 400) -> pd.DataFrame:
    """ROC (x=FPR, y=TPR), precision-recall (x=recall, y=precision) and reliability (x=mean P, y=share
    positive, 10 bins) points, thinned for storage. Columns: curve, x, y, threshold."""
    parts = []
    if _both_classes(y):
        fpr, tpr, thr = roc_curve(y, p)
        keep = _thin(len(fpr), max_points)
        parts.append(pd.DataFrame({"curve": "roc", "x": fpr[keep], "y": tpr[keep], "threshold": thr[keep]}))
        prec, rec, thr = precision_recall_curve(y, p)
        keep = _thin(len(thr), max_points)
        parts.append(pd.DataFrame({"curve": "pr", "x": rec[keep], "y": prec[keep], "threshold": thr[keep]}))
    frac_pos, mean_p = calibration_curve(y, p, n_bins=10, strategy="uniform")
    parts.append(pd.DataFrame({"curve": "calibration", "x": mean_p, "y": frac_pos, "threshold": np.nan}))
    out = pd.concat(parts, ignore_index=True)
    out["threshold"] = out["threshold"].clip(upper=1.0)  # roc_curve's first threshold is +inf
    return out


Z95 = 1.959964  # the normal quantile of a two-sided 95% interval


def wilson_interval(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson score interval of a share k / n (NaN where n = 0): honest at small n and near 0 or 1,
    where the normal interval leaves [0, 1]. For the many slices a page shows, where a bootstrap per slice
    would cost a pass over the rows each.

    >>> lo, hi = wilson_interval(np.array([8, 0]), np.array([10, 5]))
    >>> [round(float(x), 3) for x in (lo[0], hi[0], lo[1], hi[1])]
    [0.49, 0.943, 0.0, 0.434]
    """
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
        half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2)) / (1 + Z95**2 / n)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def auc_interval(auc: np.ndarray, n_pos: np.ndarray, n_neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% interval of a ROC-AUC from its Hanley-McNeil (1982) standard error (NaN without both classes).

    >>> lo, hi = auc_interval(np.array([0.9]), np.array([100]), np.array([100]))
    >>> round(float(lo[0]), 3), round(float(hi[0]), 3)
    (0.856, 0.944)
    """
    a, p, q = (np.asarray(x, dtype=float) for x in (auc, n_pos, n_neg))
    with np.errstate(invalid="ignore", divide="ignore"):
        q1, q2 = a / (2 - a), 2 * a**2 / (1 + a)
        se = np.sqrt((a * (1 - a) + (p - 1) * (q1 - a**2) + (q - 1) * (q2 - a**2)) / (p * q))
    return np.clip(a - Z95 * se, 0, 1), np.clip(a + Z95 * se, 0, 1)
