"""Turn whatever the user has into the network's input: one float32 channel in ~[0, 1].

RGB(A) stained images (H&E and similar) are converted explicitly: the hematoxylin channel
of a colour deconvolution (Ruifrok & Johnston, skimage.color.rgb2hed) makes nuclei bright
on a dark background, like fluorescence, so one grayscale network serves both.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError


def to_single_channel(image: np.ndarray, rgb: bool) -> np.ndarray:
    """Return a float32 (..., Y, X) array; ``rgb`` means the last axis holds colour."""
    image = np.asarray(image)
    if image.dtype == bool or not (np.issubdtype(image.dtype, np.number)):
        raise InputError(f"image must be numeric, got dtype {image.dtype}")
    if np.iscomplexobj(image):
        raise InputError("complex-valued images are not supported")
    if rgb:
        if image.shape[-1] not in (3, 4):
            raise InputError(f"an RGB image needs 3 or 4 values in its last axis, got shape {image.shape}")
        return rgb_to_single_channel(image[..., :3])
    return image.astype(np.float32, copy=False)


def rgb_kind(rgb: np.ndarray) -> tuple[str, int]:
    """("gray", 0) for gray stored as RGB, ("single", c) when only channel c is lit (a
    fluorescence export), else ("stain", -1)."""
    sample = rgb[..., ::4, ::4, :3].astype(np.float32)
    spread = np.abs(sample - sample.mean(axis=-1, keepdims=True)).max()
    if spread <= 1e-6 * max(float(np.abs(sample).max()), 1.0):
        return "gray", 0
    energy = sample.reshape(-1, 3).std(axis=0) + np.abs(sample.reshape(-1, 3)).mean(axis=0)
    order = np.argsort(energy)
    if energy[order[1]] < 0.02 * energy[order[2]]:
        return "single", int(order[2])
    return "stain", -1


def rgb_to_single_channel(rgb: np.ndarray) -> np.ndarray:
    """Gray stored as RGB -> that gray; one lit channel (a fluorescence export) -> that
    channel; anything else is treated as a stain and converted to hematoxylin."""
    kind, channel = rgb_kind(rgb)
    if kind == "stain":
        return hematoxylin(rgb)
    return rgb[..., channel].astype(np.float32)


def hematoxylin(rgb: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2hed

    rgb = np.asarray(rgb)
    if np.issubdtype(rgb.dtype, np.integer):
        scale = 255.0 if rgb.max(initial=0) <= 255 else 65535.0
        rgb = rgb.astype(np.float32) / scale
    else:
        rgb = np.clip(rgb.astype(np.float32), 0, 1)
    flat = rgb.reshape(-1, rgb.shape[-2], 3) if rgb.ndim > 3 else rgb
    if rgb.ndim > 3:
        h = np.stack([rgb2hed(p)[..., 0] for p in flat]).reshape(rgb.shape[:-1])
    else:
        h = rgb2hed(rgb)[..., 0]
    return h.astype(np.float32)


def percentile_normalize(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Map the ``low``..``high`` percentiles to 0..1 (values outside are kept, not clipped)."""
    image = np.asarray(image, dtype=np.float32)
    finite = np.isfinite(image)
    if not finite.all():
        raise InputError("image contains NaN or infinite values; replace them before segmenting")
    sample = image
    if image.size > 4_000_000:  # percentiles on a strided sample: same answer, less memory
        step = int(np.ceil(np.sqrt(image.size / 4_000_000)))
        sample = image[..., ::step, ::step]
    lo, hi = np.percentile(sample, [low, high])
    if hi - lo < 1e-6:
        return np.zeros_like(image)
    return (image - lo) / (hi - lo)
