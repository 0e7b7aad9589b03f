"""Tiled inference: any image size, memory bounded by the tile size.

Tiles overlap and are blended with a smooth window, so seams do not show; the per-axis
tile count is chosen first and the tiles then shrink to cover the image evenly, which
wastes less compute than fixed-size tiles.
"""
from __future__ import annotations

import math

import numpy as np

from ..model.backends import TorchBackend, autocast_for, cpu_has_bf16  # noqa: F401 (long-standing home of the last two)


def as_backend(model, device=None):
    """A backend (``model.backends``) as is; a torch network is wrapped in the torch one."""
    return model if hasattr(model, "maps") else TorchBackend(model, device)


def tile_starts(length: int, tile: int, overlap: int, divisor: int) -> tuple[list[int], int]:
    """Start offsets along one axis and the (multiple of ``divisor``) tile size used."""
    if length <= tile:
        size = int(math.ceil(length / divisor) * divisor)
        return [0], size
    n = math.ceil((length - overlap) / (tile - overlap))
    size = int(math.ceil((length + (n - 1) * overlap) / n / divisor) * divisor)
    starts = np.linspace(0, length - size, n).round().astype(int).tolist()
    return starts, size


def _window(size: int, overlap: int) -> np.ndarray:
    w = np.ones(size, np.float32)
    if overlap > 0 and size > 2 * overlap:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, overlap + 2)[1:-1])
        w[:overlap] = ramp
        w[-overlap:] = ramp[::-1]
    return w


def predict_maps(
    model,
    image: np.ndarray,
    device=None,
    tile: int = 1024,
    overlap: int = 64,
    precision: str = "auto",
    divisor: int = 8,
    should_stop=None,
) -> np.ndarray:
    """Maps (C, Y, X) float32 for a normalised 2D image (Y, X): probabilities, then flows.

    ``model``: a backend, or a torch network on ``device``."""
    backend = as_backend(model, device)
    h, w = image.shape
    ys, th = tile_starts(h, tile, overlap, divisor)
    xs, tw = tile_starts(w, tile, overlap, divisor)
    ov_y = min(overlap, th // 4) if len(ys) > 1 else 0
    ov_x = min(overlap, tw // 4) if len(xs) > 1 else 0
    weight = np.outer(_window(th, ov_y), _window(tw, ov_x))
    out = None
    norm = np.zeros((h, w), np.float32)
    # pad small images up to one tile with reflection (zero padding darkens edge objects)
    pad_y, pad_x = max(th - h, 0), max(tw - w, 0)
    src = np.pad(image, ((0, pad_y), (0, pad_x)), mode="reflect" if min(h, w) > 1 else "edge") if (pad_y or pad_x) else image
    for y in ys:
        for x in xs:
            if should_stop is not None and should_stop():
                from ..errors import Cancelled

                raise Cancelled("cancelled")
            patch = np.ascontiguousarray(src[y : y + th, x : x + tw], dtype=np.float32)
            prob = backend.maps(patch[None], precision)[0]
            if out is None:
                out = np.zeros((prob.shape[0], h, w), np.float32)
            yh, xw = min(th, h - y), min(tw, w - x)
            wgt = weight[:yh, :xw]
            out[:, y : y + yh, x : x + xw] += prob[:, :yh, :xw] * wgt
            norm[y : y + yh, x : x + xw] += wgt
    out /= np.maximum(norm, 1e-6)
    return out


def predict_maps_batch(model, images: np.ndarray, device=None, precision: str = "auto", divisor: int = 8) -> np.ndarray:
    """Maps (N, C, Y, X) for a batch of small normalised planes (N, Y, X), each within one tile.

    The XZ and YZ planes of a stack are short (Z rows): one network call per plane would
    spend most of its time in per-call overhead, so they go through the network together.
    """
    _, h, w = images.shape
    th, tw = (int(math.ceil(s / divisor) * divisor) for s in (h, w))
    pad = ((0, 0), (0, th - h), (0, tw - w))
    src = np.pad(images, pad, mode="reflect" if min(h, w) > 1 else "edge") if (th > h or tw > w) else images
    return as_backend(model, device).maps(src, precision)[:, :, :h, :w]
