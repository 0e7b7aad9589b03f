"""Flow targets: per object, unit vectors pointing along the object towards its centre.

The idea of cellpose (Stringer et al. 2021): heat diffuses from one centre pixel inside
each object, and the gradient of its logarithm gives every pixel a direction that stays
inside the object, also for irregular, concave cells where a distance transform has
several ridges. Following the predicted directions gathers each object's pixels at one
point (``predict/flow_dynamics.py``).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def object_centre(ys: np.ndarray, xs: np.ndarray) -> tuple[int, int]:
    """The object's pixel nearest to the median of its coordinates (always inside the object)."""
    my, mx = np.median(ys), np.median(xs)
    i = int(np.argmin((ys - my) ** 2 + (xs - mx) ** 2))
    return int(ys[i]), int(xs[i])


def flows(labels: np.ndarray) -> np.ndarray:
    """(2, Y, X) float32: unit (dy, dx) towards each object's centre; 0 on background."""
    labels = np.asarray(labels)
    out = np.zeros((2,) + labels.shape, np.float32)
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        # one pixel of margin so the finite differences see zeros outside the object
        y0, x0 = max(sl[0].start - 1, 0), max(sl[1].start - 1, 0)
        y1, x1 = min(sl[0].stop + 1, labels.shape[0]), min(sl[1].stop + 1, labels.shape[1])
        mask = labels[y0:y1, x0:x1] == i
        mask = np.pad(mask, 1)
        ys, xs = np.nonzero(mask)
        cy, cx = object_centre(ys, xs)
        heat = np.zeros(mask.shape, np.float64)
        # enough iterations for heat to reach the far end of the object
        for _ in range(2 * (mask.shape[0] + mask.shape[1])):
            heat[cy, cx] += 1.0
            heat = ndi.uniform_filter(heat, 3, mode="constant") * mask
        t = np.log1p(heat)
        dy = np.zeros_like(t)
        dx = np.zeros_like(t)
        dy[1:-1, :] = t[2:, :] - t[:-2, :]
        dx[:, 1:-1] = t[:, 2:] - t[:, :-2]
        norm = np.sqrt(dy**2 + dx**2)
        ok = mask & (norm > 0)
        region = out[:, y0:y1, x0:x1]
        inner = (slice(1, -1), slice(1, -1))
        ok_in = ok[inner]
        region[0][ok_in] = (dy[inner] / np.maximum(norm[inner], 1e-12))[ok_in]
        region[1][ok_in] = (dx[inner] / np.maximum(norm[inner], 1e-12))[ok_in]
    return out
