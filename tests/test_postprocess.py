"""Instance post-processing: splitting by centerness depth against skimage's h-maxima."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from napari_tower.io.normalize import percentile_normalize
from napari_tower.metrics import average_precision
from napari_tower.predict.postprocess import instances_from_maps


def two_peaks(dip: float) -> tuple[np.ndarray, np.ndarray]:
    """An ellipse of foreground whose centerness has two peaks of 1 and a pass of 1 - dip between them."""
    yy, xx = np.mgrid[:40, :80].astype(np.float32)
    fg = (((yy - 20) / 14) ** 2 + ((xx - 40) / 34) ** 2 < 1).astype(np.float32)
    # max of two Gaussians 30 px apart: the pass is at the midpoint, exp(-15^2 / (2 s^2))
    s = 15 / np.sqrt(-2 * np.log(1 - dip))
    c = np.maximum(*(np.exp(-((yy - 20) ** 2 + (xx - x0) ** 2) / (2 * s**2)) for x0 in (25, 55)))
    return fg, c * fg


@pytest.mark.parametrize("dip, expected", [(0.5, 2), (0.05, 1)])
def test_peaks_split_only_where_the_centerness_dips_deep_enough(dip, expected):
    fg, c = two_peaks(dip)
    labels = instances_from_maps(fg, c, min_size=0, split_depth=0.2)
    assert labels.max() == expected
    assert (labels > 0).sum() == (fg > 0.5).sum()  # all foreground assigned


def test_depth_split_agrees_with_h_maxima_watershed(model, sample):
    # realistic maps: the default model's on the sample image
    maps = model.predict_maps(percentile_normalize(sample[0].astype(np.float32)))
    fg, center = maps[0], maps[2]
    ours = instances_from_maps(fg, center, min_size=0, split_depth=0.2)
    mask = fg > 0.5
    c = np.where(mask, ndi.gaussian_filter(center.astype(np.float32), 1.0), 0)
    ref = watershed(-c, ndi.label(h_maxima(c, 0.2) & mask)[0], mask=mask)
    assert abs(int(ours.max()) - len(np.unique(ref)) + 1) <= 0.05 * ours.max()
    assert average_precision(ours, ref, threshold=0.8) > 0.9


def test_threshold_seeds_remain_available():
    fg, c = two_peaks(0.5)
    # a seed threshold above the pass keeps two seeds, one below it merges them
    assert instances_from_maps(fg, c, seed_threshold=0.7, min_size=0, split_depth=0).max() == 2
    assert instances_from_maps(fg, c, seed_threshold=0.3, min_size=0, split_depth=0).max() == 1


def test_nonconvex_objects_are_split_again_convex_ones_are_not():
    """Two small touching nuclei whose centerness barely dips (dense tissue) vs one big round
    nucleus with two humps of the same depth: only the non-convex pair is split."""
    yy, xx = np.mgrid[:80, :160]
    fg, c = np.zeros((80, 160), np.float32), np.zeros((80, 160), np.float32)
    for cx in (30, 43):  # discs of radius 7 overlapping by one pixel: a pass ~0.09 under the peaks
        d = np.hypot(yy - 40, xx - cx)
        fg[d <= 7] = 1
        c = np.maximum(c, np.where(d <= 7, 0.3 + 0.1 * (1 - d / 7), 0))
    round_ = np.hypot(yy - 40, xx - 110) <= 25
    fg[round_] = 1
    for cx in (100, 120):
        c = np.maximum(c, np.where(round_, 0.8 * np.exp(-((yy - 40) ** 2 + (xx - cx) ** 2) / 300), 0))

    def count(labels):
        return len(np.unique(labels[:, :70])) - 1, len(np.unique(labels[:, 80:])) - 1

    assert count(instances_from_maps(fg, c, split_depth=0.2)) == (1, 1)  # both too shallow for 0.2
    assert count(instances_from_maps(fg, c, split_depth=0.05)) == (2, 2)  # 0.05 everywhere cuts the round one
    labels = instances_from_maps(fg, c, split_depth=0.2, nonconvex_split_depth=0.05)
    assert count(labels) == (2, 1)
    assert (labels > 0).sum() == (fg > 0.5).sum()
