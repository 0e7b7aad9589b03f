"""Predicted flows -> instances: every foreground pixel follows the flow field and the
pixels that arrive at the same place form one object (cellpose's dynamics, our code).

Where centerness watershed needs a dip between two touching cells, flows only need the
directions on either side of their interface to point away from each other, which holds
for long, branched and concave cells whose distance transform has several ridges.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.segmentation import watershed


def follow(flow: np.ndarray, mask: np.ndarray, n_iter: int = 100) -> np.ndarray:
    """End points (2, M) of the pixels of ``mask`` after ``n_iter`` Euler steps along ``flow`` (2, Y, X).

    The field is zero outside ``mask``, so a pixel that leaves the foreground stops there.
    """
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    f = torch.from_numpy(np.ascontiguousarray(flow * mask, np.float32))[None]
    p = torch.from_numpy(np.stack([ys, xs], 1).astype(np.float32))
    hi = torch.tensor([h - 1, w - 1], dtype=torch.float32)
    scale = 2.0 / torch.clamp(hi, min=1.0)
    for _ in range(n_iter):
        # grid_sample wants (x, y) in [-1, 1]
        grid = (p * scale - 1.0).flip(1)[None, None]
        d = torch.nn.functional.grid_sample(f, grid, mode="bilinear", align_corners=True)[0, :, 0].T
        p = torch.minimum(torch.clamp(p + d, min=0.0), hi)
    return p.T.numpy()


def instances_from_flows(mask: np.ndarray, flow: np.ndarray, min_size: int = 15, n_iter: int = 100) -> np.ndarray:
    """Instance labels (int32) from a foreground mask (Y, X) and unit flows (2, Y, X).

    Called by ``postprocess.instances_from_maps``, which thresholds the foreground once
    and handles what is left over (unassigned regions, small objects, numbering).
    """
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    ys, xs = np.nonzero(mask)
    end = np.rint(follow(flow, mask, n_iter)).astype(np.int64)
    h, w = mask.shape
    hist = np.bincount(end[0] * w + end[1], minlength=h * w).reshape(h, w).astype(np.float32)
    smooth = ndi.gaussian_filter(hist, 1.0)
    # a sink holds at least a few pixels' end points; smaller gatherings are strays
    min_count = max(3.0, min_size / 4)
    peaks = (smooth == ndi.maximum_filter(smooth, size=5)) & (ndi.uniform_filter(hist, 3) * 9 >= min_count)
    seeds, n = ndi.label(peaks)
    if n == 0:
        return np.zeros(mask.shape, np.int32)
    sinks = watershed(-smooth, seeds, mask=smooth > 0.05)
    labels = np.zeros(mask.shape, np.int32)
    labels[ys, xs] = sinks[end[0], end[1]]
    # foreground pixels whose path ended nowhere join the object they touch
    labels = watershed(np.zeros(mask.shape, np.float32), labels, mask=mask) if (labels[mask] == 0).any() else labels
    return labels
