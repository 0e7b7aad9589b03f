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
    """End points (D, M) of the pixels of ``mask`` after ``n_iter`` Euler steps along ``flow`` (D, *mask.shape).

    2D (D = 2) and 3D (D = 3). The field is zero outside ``mask``, so a pixel that leaves
    the foreground stops there.
    """
    nd = mask.ndim
    hi = np.array([n - 1 for n in mask.shape], np.float32)
    scale = (2.0 / np.maximum(hi, 1.0)).astype(np.float32)
    # grid_sample reads (x, y[, z]) in [-1, 1]: positions and field are kept in that order and
    # scale for all the steps (a flip and a rescale per step were half of this function's time)
    to_grid = scale[::-1].copy()
    f = np.ascontiguousarray((flow * mask)[::-1] * to_grid.reshape((nd,) + (1,) * nd), np.float32)
    f = torch.from_numpy(f)[None]
    g = torch.from_numpy((np.stack(np.nonzero(mask)[::-1], 1) * to_grid - 1.0).astype(np.float32))
    top = torch.from_numpy(hi[::-1] * to_grid - 1.0) if (hi == 0).any() else None  # 1, but -1 on a length-1 axis
    view = (1,) * nd + (-1, nd)
    for _ in range(n_iter):
        d = torch.nn.functional.grid_sample(f, g.view(view), mode="bilinear", align_corners=True).view(nd, -1)
        g += d.T
        g.clamp_(-1.0, 1.0)
        if top is not None:
            torch.minimum(g, top, out=g)
    return ((g + 1.0) / torch.from_numpy(to_grid)).flip(1).T.numpy()


def instances_from_flows(mask: np.ndarray, flow: np.ndarray, min_size: int = 15, n_iter: int = 100) -> np.ndarray:
    """Instance labels (int32) from a foreground mask (Y, X) or (Z, Y, X) and unit flows (D, *mask.shape).

    Called by ``postprocess.instances_from_maps`` (2D) and ``volume.assemble`` (3D), which
    threshold the foreground once and handle what is left over (unassigned regions, small
    objects, numbering).
    """
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    pts = np.nonzero(mask)
    end = tuple(np.rint(follow(flow, mask, n_iter)).astype(np.int64))
    hist = np.bincount(np.ravel_multi_index(end, mask.shape), minlength=mask.size).reshape(mask.shape)
    hist = hist.astype(np.float32)
    smooth = ndi.gaussian_filter(hist, 1.0)
    # a sink holds at least a few pixels' end points; smaller gatherings are strays
    min_count = max(3.0, min_size / 4)
    peaks = (smooth == ndi.maximum_filter(smooth, size=5)) & (ndi.uniform_filter(hist, 3) * 3**mask.ndim >= min_count)
    seeds, n = ndi.label(peaks)
    if n == 0:
        return np.zeros(mask.shape, np.int32)
    sinks = watershed(-smooth, seeds, mask=smooth > 0.05)
    labels = np.zeros(mask.shape, np.int32)
    labels[pts] = sinks[end]
    # foreground pixels whose path ended nowhere join the object they touch
    labels = watershed(np.zeros(mask.shape, np.float32), labels, mask=mask) if (labels[mask] == 0).any() else labels
    return labels
