"""Linear resizing of float maps and volumes, without torch.

The same sampling as ``torch.nn.functional.interpolate(mode="bilinear"/"trilinear",
align_corners=False)``, which this replaced (agreement to float32 rounding, tested), applied
one axis at a time: the CLI resizes images under ``scale`` and stacks to isotropic voxels,
and importing torch for that alone costs more than the resize.
"""
from __future__ import annotations

import numpy as np


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower and upper source index and the upper one's weight for each output position."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.maximum(src, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (src - lo).astype(np.float32)


def resize_axis(arr: np.ndarray, axis: int, n_out: int) -> np.ndarray:
    """``arr`` (float32) resized linearly along one axis."""
    n_in = arr.shape[axis]
    if n_in == n_out:
        return arr
    lo, hi, w = _axis_weights(n_in, n_out)
    shape = [1] * arr.ndim
    shape[axis] = n_out
    w = w.reshape(shape)
    a = np.take(arr, lo, axis=axis)
    b = np.take(arr, hi, axis=axis)
    # a + w (b - a), computed in place: the output is the only full-size temporary kept
    b -= a
    b *= w
    a += b
    return a


def resize_linear(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """float32 ``arr`` resized to ``shape`` over its last ``len(shape)`` axes (leading axes: channels)."""
    out = np.asarray(arr, np.float32)
    lead = out.ndim - len(shape)
    if tuple(out.shape[lead:]) == tuple(shape):
        return out
    for k, n in enumerate(shape):
        out = resize_axis(out, lead + k, int(n))
    return out
