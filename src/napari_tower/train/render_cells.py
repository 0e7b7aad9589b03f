"""Whole-cell images rendered from instance labels, to bridge microscope modalities.

We have whole-cell labels in one modality only (bbbc030, DIC). The cells' layouts are what
the labels know; how a modality shows a cell is optics we can write down. So from a label
crop we render the same cells as
- phase contrast: a dark, phase-dense body (denser nucleus) with a bright halo outside its
  edge, sometimes inverted (positive phase contrast);
- DIC: the directional derivative of a smooth optical-thickness map (relief, shadow-cast);
- brightfield: faint absorption with a dark rim;
- fluorescence of a cytoplasm or membrane stain: bright bodies, dimmer nucleus, or rings.
Each cell gets its own thickness, texture and nucleus, so the network learns outlines
from what they have in common, not from DIC's relief alone. ``random_layout`` adds cell
shapes the data lacks (elongated, spread fibroblast-like cells, dense sheets).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

MODALITIES = ("phase", "dic", "brightfield", "fluorescence", "membrane")


def _smooth_noise(shape, rng: np.random.Generator, sigma: float) -> np.ndarray:
    n = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return n / (n.std() + 1e-6)


def thickness(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Optical thickness (0 outside cells, domes inside, a thicker nucleus) and the nuclei mask."""
    fg = labels > 0
    inner = fg & ~(ndi.grey_dilation(labels, size=3) != ndi.grey_erosion(labels, size=3))
    d = ndi.distance_transform_edt(inner).astype(np.float32)
    t = np.zeros(labels.shape, np.float32)
    nuc = np.zeros(labels.shape, bool)
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        m = labels[sl] == i
        dm = d[sl][m]
        top = dm.max() if dm.size else 0
        if top <= 0:
            continue
        # spread cells are flat with a raised centre; rounded ones are domes
        power = float(rng.uniform(0.3, 1.0))
        t[sl][m] = (dm / top) ** power * float(rng.uniform(0.5, 1.5))
        if top > 4 and rng.random() < 0.8:  # a nucleus where the cell is thickest
            nuc[sl][m] = dm > top * float(rng.uniform(0.45, 0.7))
    t = t * (1 + 0.25 * _smooth_noise(t.shape, rng, 2.0)) * fg
    return np.clip(t, 0, None), nuc


def render(labels: np.ndarray, rng: np.random.Generator, modality: str | None = None) -> np.ndarray:
    """A float32 image of the cells in ``labels``, normalised like inference input (~0-1)."""
    modality = modality or MODALITIES[int(rng.integers(len(MODALITIES)))]
    t, nuc = thickness(labels, rng)
    t = t + nuc * float(rng.uniform(0.2, 0.8))
    fg = (labels > 0).astype(np.float32)
    if modality == "phase":
        body = ndi.gaussian_filter(t, float(rng.uniform(0.7, 1.5)))
        halo_w = float(rng.uniform(1.5, 4.0))
        halo = np.clip(ndi.gaussian_filter(fg, halo_w) - fg, 0, None) * (1 - fg)
        img = 0.5 - float(rng.uniform(0.2, 0.45)) * body + float(rng.uniform(1.0, 3.0)) * halo
        if rng.random() < 0.25:
            img = 1 - img
    elif modality == "dic":
        smooth = ndi.gaussian_filter(t, float(rng.uniform(1.0, 2.5)))
        a = float(rng.uniform(0, 2 * np.pi))
        gy, gx = np.gradient(smooth)
        img = 0.5 + float(rng.uniform(0.8, 2.5)) * (np.cos(a) * gy + np.sin(a) * gx)
    elif modality == "brightfield":
        rim = fg - ndi.binary_erosion(fg, iterations=2)
        img = 0.8 - float(rng.uniform(0.05, 0.2)) * ndi.gaussian_filter(t, 1.0) - float(rng.uniform(0.1, 0.3)) * ndi.gaussian_filter(rim, 0.8)
    elif modality == "membrane":
        edges = (ndi.grey_dilation(labels, size=3) != ndi.grey_erosion(labels, size=3)) & (ndi.grey_dilation(labels, size=3) > 0)
        img = 0.05 + ndi.gaussian_filter(edges.astype(np.float32), float(rng.uniform(0.5, 1.2))) * float(rng.uniform(1.5, 3.0))
    else:  # cytoplasm stain: bright bodies, the nucleus dimmer or brighter
        per_cell = rng.uniform(0.4, 1.0, int(labels.max()) + 1).astype(np.float32)
        per_cell[0] = 0
        img = per_cell[labels] * (0.6 + 0.4 * np.clip(t, 0, 1.5)) * (1 - nuc * float(rng.uniform(-0.3, 0.6)))
        img = 0.05 + ndi.gaussian_filter(img.astype(np.float32), float(rng.uniform(0.5, 1.5)))
    img = img + 0.03 * _smooth_noise(img.shape, rng, 4.0)  # out-of-focus debris and uneven field
    lo, hi = np.percentile(img, [1, 99.8])
    return ((img - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def random_layout(size: int, rng: np.random.Generator) -> np.ndarray:
    """Instance labels of touching, irregular cells: elongated ellipses in a warped plane,
    each pixel given to the cell whose shape it lies deepest in, gaps left between some."""
    n = int(rng.integers(10, 40))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # a smooth warp makes straight ellipses into bent, lobed cells
    amp = float(rng.uniform(0, size / 12))
    wy = yy + amp * _smooth_noise((size, size), rng, size / 10)
    wx = xx + amp * _smooth_noise((size, size), rng, size / 10)
    best = np.full((size, size), np.inf, np.float32)
    labels = np.zeros((size, size), np.int32)
    mean_r = size / np.sqrt(n) / float(rng.uniform(1.2, 2.2))
    for i in range(1, n + 1):
        cy, cx = rng.uniform(0, size, 2)
        r = mean_r * float(rng.uniform(0.6, 1.4))
        aspect = float(np.exp(rng.uniform(0, np.log(5.0))))
        a = float(rng.uniform(0, np.pi))
        dy, dx = wy - cy, wx - cx
        u = (np.cos(a) * dy + np.sin(a) * dx) / (r * np.sqrt(aspect))
        v = (-np.sin(a) * dy + np.cos(a) * dx) / (r / np.sqrt(aspect))
        dist = u**2 + v**2
        take = (dist < 1) & (dist < best)
        labels[take] = i
        best[take] = dist[take]
    # tiny slivers left by the competition are not cells
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import relabel_sequential

    labels = remove_small_objects(labels, max_size=max(8, int(0.1 * mean_r**2)))
    return relabel_sequential(labels)[0].astype(np.int32)
