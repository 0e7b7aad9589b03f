"""Z stacks as volumes: 3D instances from the 2D network.

As cellpose does for 3D, the network runs on the planes of all three orientations (XY, XZ
and YZ) of a stack resampled to isotropic voxels, and the three views' foreground and
centerness maps are combined (foreground: where all views agree; centerness: their mean); one 3D watershed on the averaged centerness (split where it
dips by ``split_depth`` between two peaks, as in 2D) then gives objects that are whole in
Z: the caps of a nucleus belong to it instead of becoming objects of their own, and two
nuclei stacked in Z are separated by the dip between them rather than chained by overlap.
``method="flows"`` follows the three views' flows in 3D instead.

Memory: the normalised volume and two (five with flows) accumulated maps, all float32 and
used in place by the assembly (float16 accumulators cost a float32 copy of each at assembly
time and float16 arithmetic in numpy is slow), then the post-processing's labels and
skimage's watershed (a padded float64 copy of its input: the peak); stacks that do not fit go
through the block-wise path (``napari_tower.blocks``).
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
from scipy import ndimage as ndi

from ..config import PredictConfig
from ..errors import Cancelled, InputError
from ..io.normalize import to_single_channel
from ..progress import Progress
from .postprocess import _split_by_depth, relabel_sequential, remove_small, smallest_dtype
from .object_size import auto_scale_for  # the 2D rule for which objects are small enough to upsample

# (plane axis of the (Z, Y, X) volume, name, which 3D flow components the plane's (row, col) flows are)
VIEWS = {"xy": (0, "XY", (1, 2)), "xz": (1, "XZ", (0, 2)), "yz": (2, "YZ", (0, 1))}
# centerness smoothing before finding its 3D peaks (isotropic voxels)
CENTER_SIGMA = 1.5


def normalize_volume(image: np.ndarray, rgb: bool, norm_range=None) -> np.ndarray:
    """float32 (Z, Y, X) with the stack's own 1st/99.8th percentiles at 0/1.

    One range for the whole stack, not one per plane: per-plane stretching turns the empty
    planes above and below the sample into bright noise, which the network reads as nuclei.
    """
    vol = to_single_channel(np.asarray(image), rgb)
    if not np.isfinite(vol).all():
        raise InputError("image contains NaN or infinite values; replace them before segmenting")
    if norm_range is not None:
        lo, hi = norm_range
    else:
        step = max(1, int(np.ceil((vol.size / 8_000_000) ** (1 / 3))))
        lo, hi = np.percentile(vol[::step, ::step, ::step], [1.0, 99.8])
    if hi - lo < 1e-6:
        return np.zeros(vol.shape, np.float32)
    return ((vol - np.float32(lo)) / np.float32(hi - lo)).astype(np.float32, copy=False)


def isotropic_factors(voxel_size, scale: float) -> tuple[float, float, float]:
    """Resize factors (Z, Y, X) that make voxels cubic at the XY pixel size, times ``scale``."""
    if voxel_size is None:
        return scale, scale, scale
    z, y, x = (float(v) for v in voxel_size)
    return scale * z / y, scale, scale * x / y


def resize_volume(vol: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    if tuple(vol.shape) == tuple(shape):
        return vol
    from .resample import resize_linear

    return resize_linear(vol, shape)


def resize_labels(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour resize of integer labels (voxel centres sampled)."""
    if tuple(labels.shape) == tuple(shape):
        return labels
    idx = [np.clip(((np.arange(n) + 0.5) * labels.shape[a] / n).astype(np.int64), 0, labels.shape[a] - 1)
           for a, n in enumerate(shape)]
    return labels[np.ix_(*idx)]


def typical_volume(labels: np.ndarray) -> float:
    """Volume of the object that holds the median foreground voxel (a volume-weighted median).

    Unlike the plain median it is not pulled down by many specks, which in noisy stacks can
    outnumber the real objects."""
    sizes = np.bincount(labels.ravel())[1:]
    sizes = np.sort(sizes[sizes > 0])
    if sizes.size == 0:
        return 0.0
    cum = np.cumsum(sizes)
    return float(sizes[np.searchsorted(cum, cum[-1] / 2)])


def remove_relative(labels: np.ndarray, fraction: float) -> np.ndarray:
    if fraction <= 0 or not labels.any():
        return labels
    return remove_small(labels, int(fraction * typical_volume(labels)))


# planes per network call are chosen so that a batch holds about this many pixels
BATCH_PIXELS = 512 * 512


def _view_maps(model, vol, view, cfg, sums, counts, should_stop, report) -> Iterator[Progress]:
    from .tiling import predict_maps_batch

    axis, name, comps = VIEWS[view]
    n = vol.shape[axis]
    h, w = (s for a, s in enumerate(vol.shape) if a != axis)
    fits = max(h, w) <= cfg.tile
    batch = max(1, min(64, BATCH_PIXELS // (h * w))) if fits else 1
    for i0 in range(0, n, batch):
        if should_stop is not None and should_stop():
            raise Cancelled("segmentation cancelled")
        idx = range(i0, min(n, i0 + batch))
        if fits:
            planes = np.moveaxis(np.take(vol, list(idx), axis=axis), axis, 0)
            maps = (model.predict_maps_batch(planes, cfg.precision) if hasattr(model, "predict_maps_batch") else
                    predict_maps_batch(model.net, planes, model.device, cfg.precision, model.net.cfg.divisor))
        else:
            plane = np.ascontiguousarray(np.take(vol, i0, axis=axis))
            maps = model.predict_maps(plane, tile=cfg.tile, overlap=cfg.overlap, precision=cfg.precision,
                                      should_stop=should_stop)[None]
        sl = [slice(None)] * 3
        sl[axis] = slice(idx.start, idx.stop)
        sl = tuple(sl)
        # (planes, C, h, w) -> (C, ...) laid out like the volume's slab
        maps = np.moveaxis(maps, 0, axis + 1)
        # a voxel is foreground only where every view sees it: blur along Z (light sheet,
        # confocal) widens nuclei in the XZ and YZ planes and out-of-focus light in the XY
        # planes, but rarely in all three (mean of views: light-sheet AP@0.5 0.49, min 0.65)
        np.minimum(sums["fg"][sl], maps[0], out=sums["fg"][sl])
        sums["center"][sl] += maps[2]
        if "flow" in sums and len(maps) >= 5:
            for k, comp in enumerate(comps):
                sums["flow"][comp][sl] += maps[3 + k]
        for i in idx:
            yield report(f"{name} plane {i + 1}/{n}")
    counts["views"] += 1
    for comp in comps:
        counts["flow"][comp] += 1


def volume_labels_iter(model, image, rgb: bool, cfg: PredictConfig,
                       should_stop: Callable[[], bool] | None = None) -> Iterator[Progress]:
    """Progress per plane of each view; the last report's ``result`` is (Z, Y, X) labels."""
    vol0 = normalize_volume(image, rgb, cfg.norm_range)
    if cfg.denoise == "auto":
        from ..io.noise import denoise, noise_learned

        if not noise_learned(getattr(model, "card", None)):
            vol0 = denoise(vol0, cfg.voxel_size)
    shape0 = vol0.shape
    views = ("xy", "xz", "yz") if cfg.views_3d == "all" else ("xy",)
    if cfg.method == "flows" and len(views) < 3:
        raise InputError("3D flows need the maps of all three views: use views_3d='all' (or method 'watershed')")
    scale = 1.0 if cfg.scale == "auto" else float(cfg.scale)
    for attempt in range(2):
        fz, fy, fx = isotropic_factors(cfg.voxel_size, scale)
        shape = tuple(max(8, round(n * f)) for n, f in zip(shape0, (fz, fy, fx)))
        if int(np.prod(shape, dtype=np.int64)) > 2_000_000_000:
            raise InputError(f"a {shape0} stack resampled to {shape} voxels is too large to segment whole: "
                             "segment it block by block (--output-format zarr), or lower --scale")
        vol = resize_volume(vol0, shape)
        total = sum(shape[VIEWS[v][0]] for v in views) + 1
        done = [0]

        def report(msg):
            done[0] += 1
            return Progress(done[0], total, msg)

        sums = {"fg": np.full(shape, np.inf, np.float32), "center": np.zeros(shape, np.float32)}
        if cfg.method == "flows":
            sums["flow"] = np.zeros((3,) + shape, np.float32)
        counts = {"views": 0, "flow": [0, 0, 0]}
        yield from _view_maps(model, vol, views[0], cfg, sums, counts, should_stop, report)
        if cfg.scale == "auto" and attempt == 0:
            # like the 2D auto scale: XY planes measure the objects, and only stacks of small
            # objects pay for a second, upsampled pass
            auto = auto_scale_for(_xy_diameter(sums["fg"], sums["center"], cfg), shrink=False)
            if auto != 1.0:
                scale = auto
                continue
        for v in views[1:]:
            yield from _view_maps(model, vol, v, cfg, sums, counts, should_stop, report)
        break
    del vol, vol0  # the assembly's peak comes next: nothing it does not need stays alive
    labels = assemble(sums, counts, cfg)
    labels = relabel_sequential(resize_labels(labels, shape0))
    yield Progress(total, total, "done", result=labels.astype(smallest_dtype(int(labels.max())), copy=False))


def _xy_diameter(fg: np.ndarray, center: np.ndarray, cfg: PredictConfig) -> float:
    """Median 2D diameter of the objects in the XY planes with the most foreground."""
    from .postprocess import instances_from_maps, median_area_diameter, object_areas

    area = (fg > cfg.prob_threshold).reshape(len(fg), -1).sum(1)
    areas = []
    for z in np.argsort(-area)[:3]:
        if area[z]:
            lab = instances_from_maps(fg[z].astype(np.float32), center[z].astype(np.float32), cfg.prob_threshold,
                                      cfg.seed_threshold, cfg.min_size, cfg.split_depth)
            areas.append(object_areas(lab))
    return median_area_diameter(np.concatenate(areas)) if areas else 0.0


def assemble(sums: dict, counts: dict, cfg: PredictConfig) -> np.ndarray:
    """Averaged maps -> 3D instance labels (int32) at the maps' (isotropic) shape."""
    n = max(counts["views"], 1)
    # the maps are float32 and no longer needed as they are: smoothed, scaled and reused in place
    fg = sums.pop("fg")
    # light smoothing: single planes' maps are noisy across the other two axes
    ndi.gaussian_filter(fg, 1.0, output=fg)
    mask = fg > cfg.prob_threshold
    del fg
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    center = sums.pop("center")
    center /= n
    if cfg.method == "flows":
        from .flow_dynamics import instances_from_flows

        flow = sums.pop("flow")
        for c in range(3):
            flow[c] /= max(counts["flow"][c], 1)
        labels = instances_from_flows(mask, flow, cfg.min_size)
        del flow
    elif cfg.split_depth > 0:
        labels = _split_by_depth(center, mask, cfg.split_depth, sigma=CENTER_SIGMA, overwrite=True)
    else:
        from skimage.segmentation import watershed

        c = ndi.gaussian_filter(center, CENTER_SIGMA)
        seeds, _ = ndi.label((c > cfg.seed_threshold) & mask)
        labels = watershed(-c, seeds, mask=mask)
    del center
    rest, _ = ndi.label(mask & (labels == 0))
    if rest.any():
        rest[rest > 0] += labels.max()
        labels = np.where(labels == 0, rest, labels)
    labels = remove_small(labels, cfg.min_size)
    return remove_relative(labels, cfg.min_volume_fraction)

