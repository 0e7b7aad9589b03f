"""Where instance segmentation fails: merges, splits, misses (per true object), and spurious objects.

Every true object that is not matched one-to-one at IoU >= 0.5 (a false negative of AP@0.5) gets
exactly one cause, checked in this order:

- **merged**: most of its pixels (> 50%) lie in one predicted object that also holds most of at
  least one other true object (two or more nuclei given one label);
- **split**: two or more predicted objects each lie mostly (> 50% of their own pixels) inside it
  (one nucleus cut into pieces);
- **missed**: most of its pixels are background in the prediction (not found at all);
- **mis-shaped**: the rest (found, but the outline overlaps the truth at IoU < 0.5).

Unmatched predicted objects lying mostly on background are **spurious** (false detections).
Counts add up: matched + merged + split + missed + mis-shaped = true objects.
"""
from __future__ import annotations

import numpy as np

from napari_tower.metrics import _relabel

CAUSES = ("merged", "split", "missed", "mis-shaped")


def failure_breakdown(pred: np.ndarray, true: np.ndarray, threshold: float = 0.5) -> dict[str, int]:
    """Counts of true objects per outcome (``matched`` and ``CAUSES``), ``n_true``, ``n_pred``, ``spurious``."""
    pred, true = _relabel(pred).ravel(), _relabel(true).ravel()
    n_p, n_t = int(pred.max(initial=0)), int(true.max(initial=0))
    # inter[t, p]: pixels of true t (0 = background) in predicted p (0 = background)
    inter = np.bincount(true.astype(np.int64) * (n_p + 1) + pred, minlength=(n_t + 1) * (n_p + 1))
    inter = inter.reshape(n_t + 1, n_p + 1)
    area_t, area_p = inter.sum(1), inter.sum(0)
    iou = inter / np.maximum(area_t[:, None] + area_p[None, :] - inter, 1)
    iou[0, :] = iou[:, 0] = 0
    matched_t = (iou >= threshold).any(1)  # IoU > 0.5 is one-to-one without assignment
    matched_p = (iou >= threshold).any(0)
    # the predicted object (or background, 0) holding most of each true object, and vice versa
    t_major = np.where(inter.max(1) * 2 > area_t, inter.argmax(1), -1)
    p_major = np.where(inter.max(0) * 2 > area_p, inter.argmax(0), -1)
    truths_held = np.bincount(t_major[1:][t_major[1:] > 0], minlength=n_p + 1)  # per predicted object
    parts = np.bincount(p_major[1:][p_major[1:] > 0], minlength=n_t + 1)  # per true object
    out = {"n_true": n_t, "n_pred": n_p, "matched": int(matched_t[1:].sum())}
    out.update({c: 0 for c in CAUSES})
    for t in range(1, n_t + 1):
        if matched_t[t]:
            continue
        if t_major[t] > 0 and truths_held[t_major[t]] >= 2:
            out["merged"] += 1
        elif parts[t] >= 2:
            out["split"] += 1
        elif t_major[t] == 0:
            out["missed"] += 1
        else:
            out["mis-shaped"] += 1
    out["spurious"] = int(((p_major[1:] == 0) & ~matched_p[1:]).sum())
    return out


def summarise(breakdowns: list[dict[str, int]]) -> dict[str, float]:
    """Totals over images, and each outcome as a fraction of all true objects."""
    keys = ("n_true", "n_pred", "matched", *CAUSES, "spurious")
    tot = {k: int(sum(b[k] for b in breakdowns)) for k in keys}
    n = max(tot["n_true"], 1)
    tot.update({f"frac_{k}": tot[k] / n for k in ("matched", *CAUSES, "spurious")})
    return tot


def render_table(rows: dict[str, dict[str, float]]) -> list[str]:
    """Markdown rows: per label (e.g. modality), each outcome's share of the true objects."""
    lines = [
        "| data | true objects | predicted | matched | merged | split | missed | mis-shaped | spurious (per true) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in rows.items():
        lines.append(
            f"| {name} | {s['n_true']} | {s['n_pred']} | {s['frac_matched']:.3f} | {s['frac_merged']:.3f} "
            f"| {s['frac_split']:.3f} | {s['frac_missed']:.3f} | {s['frac_mis-shaped']:.3f} | {s['frac_spurious']:.3f} |"
        )
    return lines
