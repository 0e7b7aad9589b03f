"""Whether a result is to be trusted: does the image look like what the model knows?

A nuclei model shown whole cells in phase contrast or DIC does not fail quietly: it is unsure
of much of the image, and finds hundreds of specks (halos, relief, debris) where there are
tens of cells. So we judge from the model's own output, at the input's pixel size:

- **unsure**: pixels of foreground probability between 0.2 and 0.8 per pixel above 0.8. On
  images it knows the model is decisive (at most 0.38 on 44 nuclei images of every kind we
  have); on whole cells in DIC it is unsure of more than it is sure of (1.1-2.1), on phase
  contrast rendered from cell labels 0.4-0.75. Needs some foreground (0.2% of the image).
- **specks**: most objects are tiny (under ``SPECK_AREA`` pixels, ~9 px across). On our
  nuclei data the share of such objects is at most 0.42 of an image's objects (dsb2018
  fluorescence, the smallest nuclei there); a nuclei model on whole cells gives 0.54-0.78.
- **scattered dust**: many objects that together cover almost nothing of the image.

The last two need ``MIN_OBJECTS`` objects: a handful of small objects is an answer, not noise.
The cut-offs sit between what the nuclei data gives and what whole cells give (numbers in
docs/models.md, from ``python -m benchmarks.trust``); they are gaps, not fitted edges.
Z stacks are not judged (volumes have their own size scale); movies are judged over all frames.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field

import numpy as np

UNCERTAIN = (0.2, 0.8)  # foreground probabilities the model is unsure of
UNCERTAIN_RATIO = 0.6  # unsure pixels per confidently-foreground pixel
MIN_MAPPED = 0.002  # share of the image the maps must hold (sure or unsure) for the ratio to count
SPECK_AREA = 60  # pixels
SPECK_SHARE = 0.5  # of an image's objects
DUST_COVER = 0.01  # of the image
DUST_OBJECTS = 80
MIN_OBJECTS = 20


# the foreground maps' counts of the run in progress (set by ``collecting``, fed by predict.segment)
_MAPS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("napari_tower_trust_maps", default=None)


@contextlib.contextmanager
def collecting():
    """Count sure and unsure foreground pixels of every map predicted inside the block."""
    counts = {"unsure": 0, "sure": 0, "pixels": 0}
    token = _MAPS.set(counts)
    try:
        yield counts
    finally:
        try:
            _MAPS.reset(token)
        except ValueError:  # a generator closed from another context: just stop collecting there
            _MAPS.set(None)


def record_map(prob: np.ndarray) -> None:
    """Called by the 2D path with each foreground probability map (a no-op unless collecting)."""
    counts = _MAPS.get()
    if counts is not None:
        counts["unsure"] += int(np.count_nonzero((prob > UNCERTAIN[0]) & (prob < UNCERTAIN[1])))
        counts["sure"] += int(np.count_nonzero(prob >= UNCERTAIN[1]))
        counts["pixels"] += int(prob.size)


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


def judge(labels: np.ndarray, task: str = "nuclei", stack: bool = False, maps: dict | None = None) -> Fit:
    """Judge labels a model of ``task`` ("nuclei ..." or "whole-cell ...", the card's) made;
    ``maps``: the counts ``collecting`` gathered while they were made."""
    if stack:
        return Fit(True)
    s = signals(labels)
    # an almost empty image (a field without cells) has too little foreground for a ratio
    if maps is not None and maps["sure"] + maps["unsure"] >= MIN_MAPPED * maps["pixels"] > 0:
        s["unsure_ratio"] = maps["unsure"] / max(maps["sure"], 1)
    cells = "cell" in task
    advice = ("fine-tune on 2 annotated frames (napari-tower finetune, or Fine-tune TOWER in napari)" if cells else
              "if these are whole cells, try --model cells; otherwise fine-tune on 2 annotated frames "
              "(napari-tower finetune, or Fine-tune TOWER in napari)")
    if s.get("unsure_ratio", 0.0) >= UNCERTAIN_RATIO:
        reason = (f"the image does not look like what the model knows: it is unsure of "
                  f"{s['unsure_ratio']:.1f} pixels for each pixel it calls foreground")
        return Fit(False, reason, advice, s)
    if s["objects"] < MIN_OBJECTS:
        return Fit(True, signals=s)
    if s["speck_share"] >= SPECK_SHARE:
        reason = (f"the image does not look like what the model knows: {s['speck_share']:.0%} of the "
                  f"{s['objects']} objects are specks under {SPECK_AREA} pixels (very noisy, or not nuclei?)")
        return Fit(False, reason, advice, s)
    if s["objects"] >= DUST_OBJECTS and s["cover"] < DUST_COVER:
        reason = (f"the image does not look like what the model knows: {s['objects']} objects cover "
                  f"only {s['cover']:.1%} of it")
        return Fit(False, reason, advice, s)
    return Fit(True, signals=s)


def judge_result(model, image, axes: str | None, labels: np.ndarray, maps: dict | None = None) -> Fit:
    """``judge`` for ``model`` (a TowerModel) on the labels it made of ``image``."""
    from ..io.axes import guess_axes

    resolved = (axes or getattr(image, "axes", None) or guess_axes(tuple(np.shape(image)))).upper()
    return judge(labels, str(model.card.get("task", "nuclei")), stack="Z" in resolved, maps=maps)
