"""Segmentation scores: foreground Dice and instance AP at an IoU threshold.

AP follows the Data Science Bowl / cellpose / stardist convention:
TP / (TP + FP + FN), objects matched one-to-one at IoU >= threshold.
"""
from __future__ import annotations

import numpy as np


def dice(pred: np.ndarray, true: np.ndarray) -> float:
    p, t = np.asarray(pred) > 0, np.asarray(true) > 0
    denom = p.sum() + t.sum()
    return 1.0 if denom == 0 else float(2 * (p & t).sum() / denom)


def iou_matrix(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """IoU between every true (rows, 1..nt) and predicted (cols, 1..np) object."""
    pred = np.asarray(pred).ravel().astype(np.int64)
    true = np.asarray(true).ravel().astype(np.int64)
    n_p, n_t = int(pred.max(initial=0)), int(true.max(initial=0))
    inter = np.bincount(true * (n_p + 1) + pred, minlength=(n_t + 1) * (n_p + 1)).reshape(n_t + 1, n_p + 1)
    area_t = inter.sum(axis=1, keepdims=True)
    area_p = inter.sum(axis=0, keepdims=True)
    union = area_t + area_p - inter
    iou = inter / np.maximum(union, 1)
    return iou[1:, 1:]


def _relabel(x: np.ndarray) -> np.ndarray:
    ids, inv = np.unique(np.asarray(x), return_inverse=True)
    if ids[0] != 0:
        inv = inv + 1
    return inv.reshape(np.shape(x))


def average_precision(pred: np.ndarray, true: np.ndarray, threshold: float = 0.5) -> float:
    pred, true = _relabel(pred), _relabel(true)
    iou = iou_matrix(pred, true)
    n_t, n_p = iou.shape
    if n_t == 0 and n_p == 0:
        return 1.0
    if threshold >= 0.5:  # IoU > 0.5 makes matches unique without assignment
        tp = int((iou >= threshold).any(axis=1).sum()) if iou.size else 0
    else:
        from scipy.optimize import linear_sum_assignment

        r, c = linear_sum_assignment(-iou)
        tp = int((iou[r, c] >= threshold).sum())
    return tp / (n_t + n_p - tp)
