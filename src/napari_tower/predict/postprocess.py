"""Probability maps -> integer instance labels (seeded watershed on centerness)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Zero out labelled objects with fewer than ``min_size`` pixels."""
    if min_size <= 1 or not labels.any():
        return labels
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    return np.where(small[labels], 0, labels) if small.any() else labels


def object_areas(labels: np.ndarray) -> np.ndarray:
    """Pixel count of every object present (ids without pixels skipped)."""
    areas = np.bincount(np.asarray(labels).ravel())[1:]
    return areas[areas > 0]


def smallest_dtype(max_label: int):
    return np.uint16 if max_label < 2**16 else np.uint32


def instances_from_maps(
    fg: np.ndarray,
    center: np.ndarray,
    prob_threshold: float = 0.5,
    seed_threshold: float = 0.4,
    min_size: int = 15,
) -> np.ndarray:
    """Seeded watershed: seeds are connected regions of high centerness inside the mask.

    ``fg`` and ``center`` are probabilities in [0, 1] with shape (Y, X). Returns int32.
    """
    mask = fg > prob_threshold
    if not mask.any():
        return np.zeros(fg.shape, np.int32)
    seeds, _ = ndi.label((center > seed_threshold) & mask)
    # seeds too small to be a nucleus centre are noise; dropping them merges their
    # pixels into the neighbouring object instead of making slivers
    seeds = remove_small(seeds, max(2, min_size // 4))
    labels = watershed(-center, seeds, mask=mask)
    # foreground with no seed (faint or tiny objects) still becomes objects
    rest, _ = ndi.label(mask & (labels == 0))
    if rest.any():
        rest[rest > 0] += labels.max()
        labels = np.where(labels == 0, rest, labels)
    if min_size > 0:
        labels = remove_small(labels, min_size)
    return relabel_sequential(labels)


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if ids.size == 0:
        return np.zeros(labels.shape, np.int32)
    lut = np.zeros(int(ids.max()) + 1, np.int32)
    lut[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
    return lut[labels]


def stitch_planes(prev: np.ndarray, cur: np.ndarray, next_id: int, iou_threshold: float = 0.25):
    """Give ``cur``'s objects the ids of the ``prev`` objects they overlap (IoU above threshold).

    Objects without a match get fresh ids from ``next_id``. Returns (relabelled, next_id).
    Only two planes are ever held, so memory does not grow with the stack.
    """
    out = np.zeros(cur.shape, np.uint32)
    n_cur = int(cur.max())
    if n_cur == 0:
        return out, next_id
    mapping = np.zeros(n_cur + 1, np.int64)
    if prev is not None and prev.any():
        both = (cur > 0) & (prev > 0)
        pairs, inter = np.unique(np.stack([cur[both], prev[both]]), axis=1, return_counts=True)
        area_c = np.bincount(cur.ravel(), minlength=n_cur + 1)
        prev_ids, prev_area = np.unique(prev, return_counts=True)
        area_p = dict(zip(prev_ids.tolist(), prev_area.tolist()))
        best = {}
        for (c, p), n in zip(pairs.T.tolist(), inter.tolist()):
            iou = n / (area_c[c] + area_p[p] - n)
            if iou >= iou_threshold and iou > best.get(c, (0, 0))[1]:
                best[c] = (p, iou)
        used = set()
        for c, (p, _) in sorted(best.items(), key=lambda kv: -kv[1][1]):
            if p not in used:
                mapping[c] = p
                used.add(p)
    for c in range(1, n_cur + 1):
        if mapping[c] == 0:
            mapping[c] = next_id
            next_id += 1
    out = mapping[cur].astype(np.uint32)
    return out, next_id
