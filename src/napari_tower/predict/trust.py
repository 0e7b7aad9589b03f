"""Whether a result is to be trusted: does the image look like what the model knows?

A nuclei model shown whole cells in phase contrast or DIC does not fail quietly: it finds
hundreds of specks (halos, relief, debris) where there are tens of cells. So we judge from the
model's own output, the objects it found, at the input's pixel size:

- **specks**: most objects are tiny (under ``SPECK_AREA`` pixels, ~9 px across). On our
  nuclei data the share of such objects is at most 0.42 of an image's objects (dsb2018
  fluorescence, the smallest nuclei there); a nuclei model on whole cells gives 0.54-0.78.
- **scattered dust**: many objects that together cover almost nothing of the image.

Both need ``MIN_OBJECTS`` objects: a handful of small objects is an answer, not noise. The
cut-offs sit between what the nuclei data gives and what whole cells give (numbers in
docs/models.md, from ``python -m benchmarks.trust``); they are wide gaps, not fitted edges.
Z stacks are not judged (volumes have their own size scale); movies are judged over all frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SPECK_AREA = 60  # pixels
SPECK_SHARE = 0.5  # of an image's objects
DUST_COVER = 0.01  # of the image
DUST_OBJECTS = 80
MIN_OBJECTS = 20


@dataclass
class Fit:
    """The verdict on one result: ``ok``, and if not, why and what to do."""

    ok: bool
    reason: str = ""
    advice: str = ""
    signals: dict = field(default_factory=dict)

    @property
    def message(self) -> str:
        return f"{self.reason}; {self.advice}" if not self.ok else ""


def signals(labels: np.ndarray) -> dict:
    """Object count, share of specks and covered fraction of 2D labels (or a movie's frames)."""
    labels = np.asarray(labels)
    # a movie's frames pool their objects (ids may repeat across frames once linked)
    planes = labels.reshape(-1, *labels.shape[-2:]) if labels.ndim > 2 else labels[None]
    areas = np.concatenate([np.bincount(p.ravel().astype(np.int64, copy=False))[1:] for p in planes])
    areas = areas[areas > 0]
    n = int(areas.size)
    return {
        "objects": n,
        "speck_share": float(np.mean(areas < SPECK_AREA)) if n else 0.0,
        "median_area": float(np.median(areas)) if n else 0.0,
        "cover": float(np.count_nonzero(labels) / max(labels.size, 1)),
    }


def judge(labels: np.ndarray, task: str = "nuclei", stack: bool = False) -> Fit:
    """Judge labels a model of ``task`` ("nuclei ..." or "whole-cell ...", the card's) made."""
    if stack:
        return Fit(True)
    s = signals(labels)
    if s["objects"] < MIN_OBJECTS:
        return Fit(True, signals=s)
    cells = "cell" in task
    advice = ("fine-tune on 2 annotated frames (napari-tower finetune, or Fine-tune TOWER in napari)" if cells else
              "if these are whole cells, try --model cells; otherwise fine-tune on 2 annotated frames "
              "(napari-tower finetune, or Fine-tune TOWER in napari)")
    if s["speck_share"] >= SPECK_SHARE:
        reason = (f"the image does not look like what the model knows: {s['speck_share']:.0%} of the "
                  f"{s['objects']} objects are specks under {SPECK_AREA} pixels (very noisy, or not nuclei?)")
        return Fit(False, reason, advice, s)
    if s["objects"] >= DUST_OBJECTS and s["cover"] < DUST_COVER:
        reason = (f"the image does not look like what the model knows: {s['objects']} objects cover "
                  f"only {s['cover']:.1%} of it")
        return Fit(False, reason, advice, s)
    return Fit(True, signals=s)


def judge_result(model, image, axes: str | None, labels: np.ndarray) -> Fit:
    """``judge`` for ``model`` (a TowerModel) on the labels it made of ``image``."""
    from ..io.axes import guess_axes

    resolved = (axes or getattr(image, "axes", None) or guess_axes(tuple(np.shape(image)))).upper()
    return judge(labels, str(model.card.get("task", "nuclei")), stack="Z" in resolved)
