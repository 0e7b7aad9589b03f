"""Training targets derived from instance labels (2D, 0 = background)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

from .flows import flows


def centerness(labels: np.ndarray) -> np.ndarray:
    """Distance to the object's edge divided by the object's largest such distance.

    Scale-free (1 at every object's centre, ~0 at its rim), so one seed threshold
    separates touching nuclei of any size.
    """
    out = np.zeros(labels.shape, np.float32)
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
        mask = labels[sl] == i
        d = ndi.distance_transform_edt(mask)
        m = d.max()
        if m > 0:
            out[sl][mask] = (d[mask] / m).astype(np.float32)
    return out


def seg_targets(labels: np.ndarray) -> np.ndarray:
    """Stack (foreground, boundary, centerness, flow y, flow x) as float32, shape (5, Y, X).

    Networks with three output maps train on the first three only.
    """
    labels = np.asarray(labels)
    fg = (labels > 0).astype(np.float32)
    bd = find_boundaries(labels, mode="inner").astype(np.float32)
    return np.concatenate([np.stack([fg, bd, centerness(labels)]), flows(labels)])
