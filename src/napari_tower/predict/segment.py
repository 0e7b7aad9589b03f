"""Segment 2D images, RGB stains, 2D+t movies and 3D stacks.

Z stacks are segmented as volumes by default (``volume.py``: maps of the XY, XZ and YZ
planes, 3D watershed); ``z_assembly="stitch"`` predicts one XY plane at a time and links
the planes' objects by overlap (only two planes of labels held beside the output). Movies
get per-frame labels with ids unique across the movie, or linked through time
(``track=True``, ``tracking.py``).
"""
from __future__ import annotations

import itertools
from typing import Callable, Iterator

import numpy as np

from ..config import PredictConfig
from ..errors import Cancelled
from ..io.normalize import percentile_normalize, to_single_channel
from ..progress import Progress
from .axes import as_array, check_axes, guess_axes, leading_shape
from .object_size import auto_scale_for, median_diameter  # noqa: F401 (median_diameter: long-standing name here)
from .postprocess import instances_from_maps, smallest_dtype, stitch_planes

FIRST_LOOK = 0.5  # scale of the measuring pass for models with an object_diameter
COVERAGE_KEPT = 0.5  # the least share of the first look's cell area a resized second pass must keep


def _resize(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (C, Y, X) float maps."""
    from .resample import resize_linear

    return resize_linear(arr, shape)


def scaled_shape(shape: tuple[int, ...], factor: float) -> tuple[int, ...]:
    """``shape`` resized by ``factor`` (at least 8 pixels a side, the network's smallest input)."""
    return tuple(max(8, round(n * factor)) for n in shape)


def _labels_at(model, img: np.ndarray, scale: float, cfg: PredictConfig, should_stop) -> np.ndarray:
    """Labels of the normalised plane ``img``, predicted at ``scale`` and returned at its size."""
    def maps_of(x):
        return model.predict_maps(x, tile=cfg.tile, overlap=cfg.overlap, precision=cfg.precision, should_stop=should_stop)

    x = img if scale == 1.0 else _resize(img[None], scaled_shape(img.shape, scale))[0]
    if cfg.tta:
        maps = np.mean([rot90_maps(maps_of(np.ascontiguousarray(np.rot90(x, k))), -k) for k in range(4)], axis=0)
    else:
        maps = maps_of(x)
    if scale != 1.0:
        maps = _resize(maps, img.shape)
        maps[3:5] /= scale  # a flow step spans 1 / scale pixels at the input's size
    from .trust import record_map

    record_map(maps[0])  # for the judgement of whether the result is to be trusted
    flow = maps[3:5] if len(maps) >= 5 else None
    return instances_from_maps(maps[0], maps[2], cfg.prob_threshold, cfg.seed_threshold, cfg.min_size, cfg.split_depth,
                               flow=flow, method=cfg.method, nonconvex_split_depth=cfg.nonconvex_split_depth)


def rot90_maps(maps: np.ndarray, k: int) -> np.ndarray:
    """(C, Y, X) maps turned k quarter turns like np.rot90, flow vectors (channels 3-4) with them."""
    out = np.rot90(maps, k, axes=(1, 2)).copy()
    if len(out) >= 5:
        for _ in range(k % 4):  # one quarter turn maps (dy, dx) to (-dx, dy)
            out[3], out[4] = -out[4], out[3].copy()
    return out


def plane_labels(model, plane: np.ndarray, rgb: bool, cfg: PredictConfig, should_stop=None) -> np.ndarray:
    img = to_single_channel(np.asarray(plane), rgb)
    if cfg.norm_range is None:
        img = percentile_normalize(img)
    else:  # a range fixed for the whole image (block-wise runs): blocks see the same intensities
        lo, hi = cfg.norm_range
        img = (img - np.float32(lo)) / np.float32(max(hi - lo, 1e-6))
    if cfg.denoise == "auto":
        from ..io.noise import denoise, noise_learned

        if not noise_learned(getattr(model, "card", None)):
            img = denoise(img)
    if cfg.scale != "auto":
        return _labels_at(model, img, cfg.scale, cfg, should_stop)
    if cfg.object_diameter:
        # whole cells range from 20 to 300 px across between microscopes: a first look at half
        # size (where the model still sees cells of 40-600 px well enough to measure them),
        # then one pass at the size the model was trained at
        labels = _labels_at(model, img, FIRST_LOOK, cfg, should_stop)
        d = median_diameter(labels)
        if d <= 0:
            return labels
        scale = float(np.clip(cfg.object_diameter / d, 0.25, 2.0))
        if abs(np.log(scale / FIRST_LOOK)) < 0.15:
            return labels
        return _second_pass(model, img, labels, scale, cfg, should_stop)
    # like cellpose's size estimate: a first pass measures the objects, and only images of
    # small (< 14 px) or large (> 30 px) objects pay for a second pass at ~20 px
    labels = _labels_at(model, img, 1.0, cfg, should_stop)
    scale = auto_scale_for(median_diameter(labels))
    return labels if scale == 1.0 else _second_pass(model, img, labels, scale, cfg, should_stop)


def _second_pass(model, img: np.ndarray, first: np.ndarray, scale: float, cfg: PredictConfig, should_stop) -> np.ndarray:
    """The labels at ``scale``, unless that pass lost half of the first pass's object area.

    A first look that cut large cells into pieces measures them small, and the pass that
    enlarges them further then loses the cells altogether: resizing should not change how
    much of the image is objects.
    """
    second = _labels_at(model, img, scale, cfg, should_stop)
    return first if np.count_nonzero(second) < COVERAGE_KEPT * np.count_nonzero(first) else second


def segment_iter(
    model,
    image,
    axes: str | None = None,
    cfg: PredictConfig | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[Progress]:
    """Yield a Progress per plane; the last one carries the label array as ``result``."""
    cfg = cfg or PredictConfig()
    image = as_array(image)
    axes = check_axes(image.shape, axes or guess_axes(image.shape))
    rgb = axes.endswith("C")
    lead = leading_shape(image.shape, axes)
    yx = image.shape[len(lead) : len(lead) + 2]
    if not lead:
        yield Progress(0, 1, "segmenting")
        lab = plane_labels(model, image, rgb, cfg, should_stop)
        yield Progress(1, 1, "done", result=lab.astype(smallest_dtype(int(lab.max()))))
        return
    out = np.zeros(lead + yx, np.uint32)
    lead_axes = axes[: len(lead)]
    if "Z" in lead_axes and cfg.z_assembly == "3d":
        yield from _volumes_iter(model, image, lead_axes, rgb, cfg, out, should_stop)
        return
    total = int(np.prod(lead))
    next_id = 1
    prev = None
    for i, idx in enumerate(itertools.product(*(range(n) for n in lead))):
        if should_stop is not None and should_stop():
            raise Cancelled("segmentation cancelled")
        lab = plane_labels(model, image[idx], rgb, cfg, should_stop)
        z_index = lead_axes.find("Z")
        new_volume = z_index < 0 or idx[z_index] == 0
        if "Z" in lead_axes:
            lab, next_id = stitch_planes(None if new_volume else prev, lab, next_id, cfg.stitch_threshold)
            prev = lab
        else:
            lab = lab.astype(np.uint32)
            lab[lab > 0] += np.uint32(next_id - 1)
            next_id = int(lab.max(initial=next_id - 1)) + 1
        out[idx] = lab
        yield Progress(i + 1, total, f"plane {i + 1}/{total}")
    yield Progress(total, total, "done", result=_tracked(out, lead_axes, cfg))


def _tracked(out: np.ndarray, lead_axes: str, cfg: PredictConfig) -> np.ndarray:
    """Ids linked through time when asked (inputs with a T axis only)."""
    if not (cfg.track and lead_axes.startswith("T")):
        return out
    from .tracking import track

    return track(out)[0]


def _volumes_iter(model, image, lead_axes: str, rgb: bool, cfg: PredictConfig, out: np.ndarray,
                  should_stop) -> Iterator[Progress]:
    """Z stacks (and each time point of a TZYX movie) segmented as volumes (``volume.py``)."""
    from .volume import volume_labels_iter

    frames = [()] if lead_axes == "Z" else [(t,) for t in range(out.shape[0])]
    next_id = 1
    for k, t in enumerate(frames):
        prefix = f"frame {k + 1}/{len(frames)}: " if t else ""
        for p in volume_labels_iter(model, image[t], rgb, cfg, should_stop):
            if p.result is None:
                yield Progress(k * p.total + p.step, len(frames) * p.total, prefix + p.message)
                continue
            lab = p.result.astype(np.uint32)
            lab[lab > 0] += np.uint32(next_id - 1)
            next_id = int(lab.max(initial=next_id - 1)) + 1
            out[t] = lab
    yield Progress(1, 1, "done", result=_tracked(out, lead_axes, cfg))
