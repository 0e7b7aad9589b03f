"""Unlabelled data for pretraining: every plane of every image, and paired views of it.

``collect_planes`` turns files and folders into a list of normalised 2D float32 planes:
2D images, RGB (converted to one channel: gray, the lit channel, or hematoxylin), and
every plane of stacks and movies. ``ViewSampler`` draws batches of two views of the same
random region of those planes.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError, TowerError
from ..io.files import IMAGE_SUFFIXES, expand_image_paths
from ..io.normalize import percentile_normalize, to_single_channel
from ..model.weights import sha256_of
from ..predict.axes import check_axes, guess_axes

MIN_SIDE = 16  # planes smaller than this are too small to crop views from


def expand_paths(paths: Sequence[str | os.PathLike]) -> list[Path]:
    return expand_image_paths(paths)


def planes_of(image: np.ndarray, axes: str | None = None) -> list[np.ndarray]:
    """All (Y, X) planes of one image as normalised float32 (percentile 1-99.8 per plane).
    Constant planes carry nothing to learn and are left out."""
    image = np.asarray(image)
    axes = check_axes(image.shape, axes or guess_axes(image.shape))
    data = to_single_channel(image, rgb=axes.endswith("C"))
    flat = data.reshape((-1,) + data.shape[-2:])
    out = []
    for plane in flat:
        p = percentile_normalize(plane)
        if p.any():
            out.append(np.ascontiguousarray(p, dtype=np.float32))
    return out


def load_planes(
    paths: Sequence[str | os.PathLike | np.ndarray],
    warn: Callable[[str], None] | None = None,
) -> tuple[list[np.ndarray], list[Path]]:
    """Like ``collect_planes``, also returning the files that contributed planes."""
    from ..io.files import read_image

    warn = warn or (lambda m: warnings.warn(m, stacklevel=3))
    planes: list[np.ndarray] = []
    used: list[Path] = []
    items: list = []
    for p in paths:
        items += [p] if isinstance(p, np.ndarray) else expand_paths([p])
    for i, item in enumerate(items):
        name = f"array {i}" if isinstance(item, np.ndarray) else str(item)
        try:
            if isinstance(item, np.ndarray):
                data, axes = item, None
            else:
                data, axes = read_image(item)
            got = [p for p in planes_of(data, axes) if min(p.shape) >= MIN_SIDE]
        except (TowerError, ValueError, MemoryError) as e:
            msg = str(e)
            warn(msg if name in msg else f"{name}: {msg}")
            continue
        if not got:
            warn(f"{name}: no usable plane (all constant, or smaller than {MIN_SIDE}x{MIN_SIDE} pixels); skipped")
            continue
        planes += got
        if not isinstance(item, np.ndarray):
            used.append(Path(item))
    if not planes:
        what = ", ".join(str(p) for p in paths if not isinstance(p, np.ndarray))
        raise InputError(f"no usable image planes found in {what or 'the given arrays'} (supported: {', '.join(sorted(IMAGE_SUFFIXES))})")
    return planes, used


def collect_planes(
    paths: Sequence[str | os.PathLike | np.ndarray],
    warn: Callable[[str], None] | None = None,
) -> list[np.ndarray]:
    """Every plane of the images in ``paths`` (files, non-recursive folders of image files,
    or in-memory arrays), each a float32 (Y, X) array normalised to its 1-99.8 percentiles.

    2D images give one plane; RGB(A) images are converted to one channel
    (``io.normalize.to_single_channel``); stacks and movies give one plane per Z/T index
    (axes from the file, else guessed: 3D = ZYX). A file that cannot be read, or holds no
    usable plane, is skipped and reported through ``warn`` (default: ``warnings.warn``);
    ``InputError`` is raised only when nothing usable remains.
    """
    return load_planes(paths, warn)[0]


def data_manifest(files: Sequence[str | os.PathLike]) -> list[dict]:
    """File name and sha256 of each input file, for the model card."""
    return [{"file": Path(f).name, "sha256": sha256_of(Path(f))} for f in files]


def _crop(arr: np.ndarray, y: int, x: int, size: int) -> np.ndarray:
    h, w = arr.shape
    pad_y, pad_x = max(0, size - h), max(0, size - w)
    if pad_y or pad_x:
        arr = np.pad(arr, [(0, pad_y), (0, pad_x)], mode="reflect" if min(h, w) > 1 else "edge")
    return arr[y : y + size, x : x + size]


def _resize(a: np.ndarray, size: int) -> np.ndarray:
    if a.shape == (size, size):
        return np.ascontiguousarray(a)
    t = torch.from_numpy(np.ascontiguousarray(a))[None, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0, 0].numpy()


class ViewSampler:
    """Batches of two views of the same random region.

    A region of side drawn in [``min_scale`` * crop, crop] pixels (96-128 for crop 128) is
    cut from a plane (planes weighted by the square root of their area, reflect-padded if
    smaller), then each view independently gets a random flip and 90-degree rotation and
    an intensity jitter (gain, offset), and is resized to ``crop`` x ``crop``.
    With ``independent_crops`` (the SimCLR/BYOL "random resized crop"), each view is
    instead its own random sub-box covering 50-100 % of the region's sides.
    """

    def __init__(
        self,
        planes: Sequence[np.ndarray],
        crop: int = 128,
        rng: np.random.Generator | None = None,
        min_scale: float = 0.75,
        independent_crops: bool = False,
        jitter: float = 1.0,
    ):
        if not planes:
            raise InputError("no planes to sample from")
        self.planes = list(planes)
        self.crop = int(crop)
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.min_scale = min_scale
        self.independent_crops = independent_crops
        self.jitter = jitter
        w = np.array([float(p.size) ** 0.5 for p in self.planes])
        self.p = w / w.sum()

    def _view(self, region: np.ndarray) -> np.ndarray:
        rng = self.rng
        a = region
        if self.independent_crops:
            s = region.shape[0]
            bh, bw = (int(round(s * rng.uniform(0.5, 1.0))) for _ in range(2))
            y, x = int(rng.integers(0, s - bh + 1)), int(rng.integers(0, s - bw + 1))
            a = a[y : y + bh, x : x + bw]
        if rng.random() < 0.5:
            a = a[:, ::-1]
        a = np.rot90(a, int(rng.integers(0, 4)))
        a = _resize(np.ascontiguousarray(a, dtype=np.float32), self.crop)
        if self.jitter > 0:
            gain = float(np.exp(rng.uniform(-0.2, 0.2) * self.jitter))
            offset = float(rng.uniform(-0.05, 0.05) * self.jitter)
            a = a * gain + offset
        return a.astype(np.float32, copy=False)

    def region(self) -> np.ndarray:
        rng = self.rng
        plane = self.planes[int(rng.choice(len(self.planes), p=self.p))]
        size = int(round(self.crop * rng.uniform(self.min_scale, 1.0)))
        h, w = plane.shape
        y = int(rng.integers(0, max(1, h - size + 1)))
        x = int(rng.integers(0, max(1, w - size + 1)))
        return _crop(plane, y, x, size)

    def pairs(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Two (n, crop, crop) float32 arrays: view 1 and view 2 of the same n regions."""
        v1, v2 = [], []
        for _ in range(n):
            r = self.region()
            v1.append(self._view(r))
            v2.append(self._view(r))
        return np.stack(v1), np.stack(v2)
