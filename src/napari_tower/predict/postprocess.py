"""Probability maps -> integer instance labels (watershed on centerness, split by peak depth)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Zero out labelled objects with fewer than ``min_size`` pixels."""
    if min_size <= 1 or not labels.any():
        return labels
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    return np.where(small[labels], 0, labels) if small.any() else labels


def object_areas(labels: np.ndarray) -> np.ndarray:
    """Pixel count of every object present (ids without pixels skipped)."""
    areas = np.bincount(np.asarray(labels).ravel())[1:]
    return areas[areas > 0]


def median_area_diameter(areas: np.ndarray) -> float:
    """Diameter of the circle with the median of these object areas (0 when there are none)."""
    return float(2 * np.sqrt(np.median(areas) / np.pi)) if np.size(areas) else 0.0


def smallest_dtype(max_label: int):
    return np.uint16 if max_label < 2**16 else np.uint32


def instances_from_maps(
    fg: np.ndarray,
    center: np.ndarray,
    prob_threshold: float = 0.5,
    seed_threshold: float = 0.4,
    min_size: int = 15,
    split_depth: float = 0.2,
    flow: np.ndarray | None = None,
    method: str = "watershed",
    nonconvex_split_depth: float = 0.0,
) -> np.ndarray:
    """Watershed of the foreground mask on centerness into instances (or flows, see below).

    ``fg`` and ``center`` are probabilities in [0, 1] with shape (Y, X). With
    ``split_depth`` > 0, every peak of the (lightly smoothed) centerness starts an object
    and two neighbouring objects stay apart only where the centerness dips by at least
    ``split_depth`` between them (h-maxima seeds); with ``split_depth`` = 0, seeds are
    the connected regions where centerness exceeds ``seed_threshold``. With ``method``
    "flows", ``flow`` (2, Y, X) is followed instead (``flow_dynamics``); centerness is unused.
    ``nonconvex_split_depth`` (0 = off): objects that are not convex are split again at this
    shallower depth (see ``_split_nonconvex``). Returns int32.
    """
    mask = fg > prob_threshold
    if not mask.any():
        return np.zeros(fg.shape, np.int32)
    if method == "flows":
        if flow is None:
            raise ValueError("method 'flows' needs a model that predicts flows")
        from .flow_dynamics import instances_from_flows

        labels = instances_from_flows(mask, flow, min_size)
    elif split_depth > 0 and 0 < nonconvex_split_depth < split_depth:
        labels = _split_nonconvex(center, mask, split_depth, nonconvex_split_depth)
    elif split_depth > 0:
        labels = _split_by_depth(center, mask, split_depth)
    else:
        seeds, _ = ndi.label((center > seed_threshold) & mask)
        # seeds too small to be a nucleus centre are noise; dropping them merges their
        # pixels into the neighbouring object instead of making slivers
        seeds = remove_small(seeds, max(2, min_size // 4))
        labels = watershed(-center, seeds, mask=mask)
    # foreground with no seed (faint or tiny objects) still becomes objects
    rest, _ = ndi.label(mask & (labels == 0))
    if rest.any():
        rest[rest > 0] += labels.max()
        labels = np.where(labels == 0, rest, labels)
    if min_size > 0:
        labels = remove_small(labels, min_size)
    return relabel_sequential(labels)


def _split_by_depth(center: np.ndarray, mask: np.ndarray, depth: float, sigma: float = 1.0,
                    overwrite: bool = False) -> np.ndarray:
    """Basins of all centerness peaks, merged where the pass between two is shallower than ``depth``.

    Same result as watershed from skimage's ``h_maxima`` seeds (up to ties), at the cost of
    one watershed: h_maxima's grey reconstruction takes ~5 s on 2048x2048, this ~1 s.
    Irregular cells have several weak centerness peaks, which a fixed seed threshold
    splits into fragments; nuclei in dense tissue have peaks below it, which it merges.
    """
    basins = _basins(center, mask, sigma, overwrite)
    return basins[0] if basins[1] is None else _merged(*basins, depth)


# an object whose area is under this fraction of its convex hull's is taken as several nuclei;
# a digitised disc of 10 px across is ~0.9 solid, so small nuclei are tested too
SOLIDITY = 0.95


def _split_nonconvex(center: np.ndarray, mask: np.ndarray, depth: float, fine_depth: float,
                     solidity: float = SOLIDITY) -> np.ndarray:
    """``_split_by_depth`` at ``depth``, then objects that are not convex split at ``fine_depth``.

    Small touching nuclei in dense tissue often meet with a centerness dip far under 0.2, while
    the same shallow depth everywhere cuts big sparse nuclei with uneven centerness in two
    (polyp_nuclei vs dsb2018, docs/benchmarks/2d.md). Nuclei are convex; two that merged are not.
    """
    from skimage.measure import regionprops

    labels, peak, pairs, passes = _basins(center, mask)
    if peak is None:
        return labels
    # both splits merge the same basins, so which coarse objects hold several fine ones is
    # known from the basins alone (thousands), without a pass over the pixels per object
    coarse, fine = _merge_lut(peak, pairs, passes, depth), _merge_lut(peak, pairs, passes, fine_depth)
    lo = np.full(len(coarse), len(coarse), np.int64)
    hi = np.zeros(len(coarse), np.int64)
    np.minimum.at(lo, coarse[1:], fine[1:])
    np.maximum.at(hi, coarse[1:], fine[1:])
    several = hi > lo
    if not several.any():
        return coarse[labels]
    coarse_labels = coarse[labels]
    split = np.zeros(len(coarse), bool)
    # solidity (a convex hull) only for the objects a finer split would change
    for r in regionprops(np.where(several[coarse_labels], coarse_labels, 0)):
        if r.solidity < solidity:
            split[r.label] = True
    if not split.any():
        return coarse_labels
    out = np.where(split[coarse], fine + int(coarse.max()), coarse).astype(np.int32)
    out[0] = 0
    return out[labels]


def _basins(center: np.ndarray, mask: np.ndarray, sigma: float = 1.0, overwrite: bool = False):
    """Watershed basins of the smoothed centerness peaks, each basin's peak value, and the
    touching pairs with their highest pass; (labels, None, None, None) with < 2 basins.

    ``overwrite``: ``center`` (float32) is smoothed in place (3D blocks: one volume less)."""
    center = np.asarray(center, np.float32)
    c = ndi.gaussian_filter(center, sigma, output=center if overwrite else None)
    c[~mask] = 0
    peaks = (c == ndi.maximum_filter(c, size=3)) & mask
    seeds, n = ndi.label(peaks)
    peak = np.zeros(n + 1, np.float32)
    peak[seeds[peaks]] = c[peaks]  # a basin's highest point is its seed
    del peaks
    # negated in place and back (exact): skimage's watershed makes two float64 copies of its
    # input, the peak of a 3D block's memory, and a third (float32) copy here would add to it
    np.negative(c, out=c)
    labels = watershed(c, seeds, mask=mask)
    np.negative(c, out=c)
    if n < 2:
        return labels, None, None, None
    pairs, passes = _passes(labels, c)
    return labels, peak, pairs, passes


def _merged(labels: np.ndarray, peak: np.ndarray, pairs: np.ndarray, passes: np.ndarray, depth: float) -> np.ndarray:
    """Basins merged where the lower peak stands less than ``depth`` above their pass."""
    return _merge_lut(peak, pairs, passes, depth)[labels]


def _merge_lut(peak: np.ndarray, pairs: np.ndarray, passes: np.ndarray, depth: float) -> np.ndarray:
    """Basin id -> id of the basin it is merged into (``_merged``'s lookup table; 0 stays 0)."""
    n = len(peak) - 1
    parent = np.arange(n + 1)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # highest passes first, as a flood rising from the top would meet them; the lower
    # peak is absorbed by the higher one when it stands less than ``depth`` above the pass
    for k in np.argsort(-passes, kind="stable"):
        a, b = root(pairs[k, 0]), root(pairs[k, 1])
        if a != b and min(peak[a], peak[b]) - passes[k] < depth:
            if peak[a] < peak[b]:
                a, b = b, a
            parent[b] = a
    return np.array([root(i) for i in range(n + 1)], np.int32)


def _passes(labels: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a < b) of touching labels and the highest pass between them, max of min(c) over touching pixels.

    Any number of dimensions: 2D planes and 3D volumes (face neighbours along each axis)."""
    pairs, values = [], []
    for ax in range(labels.ndim):
        a_sl = tuple(slice(None, -1) if i == ax else slice(None) for i in range(labels.ndim))
        b_sl = tuple(slice(1, None) if i == ax else slice(None) for i in range(labels.ndim))
        a, b = labels[a_sl], labels[b_sl]
        touch = (a > 0) & (b > 0) & (a != b)
        if touch.any():
            la, lb = a[touch], b[touch]
            pairs.append(np.stack([np.minimum(la, lb), np.maximum(la, lb)], 1))
            values.append(np.minimum(c[a_sl][touch], c[b_sl][touch]))
    if not pairs:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    p, v = np.concatenate(pairs).astype(np.int64), np.concatenate(values)
    key = p[:, 0] * (int(labels.max()) + 1) + p[:, 1]
    order = np.lexsort((-v, key))  # per pair, the highest value first
    key, p, v = key[order], p[order], v[order]
    first = np.r_[True, key[1:] != key[:-1]]
    return p[first], v[first]


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    top = int(labels.max(initial=0))
    if 0 <= top <= 4 * labels.size and int(labels.min(initial=0)) >= 0:
        ids = np.flatnonzero(np.bincount(labels.ravel()))  # a count per id: cheaper than unique's sort or hash
    else:  # sparse or negative ids (user annotations)
        ids = np.unique(labels)
    ids = ids[ids > 0]
    if ids.size == 0:
        return np.zeros(labels.shape, np.int32)
    lut = np.zeros(int(ids.max()) + 1, np.int32)
    lut[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
    return lut[labels]


def stitch_planes(prev: np.ndarray, cur: np.ndarray, next_id: int, iou_threshold: float = 0.25):
    """Give ``cur``'s objects the ids of the ``prev`` objects they overlap (IoU above threshold).

    Objects without a match get fresh ids from ``next_id``. Returns (relabelled, next_id).
    Only two planes are ever held, so memory does not grow with the stack.
    """
    out = np.zeros(cur.shape, np.uint32)
    n_cur = int(cur.max())
    if n_cur == 0:
        return out, next_id
    mapping = np.zeros(n_cur + 1, np.int64)
    if prev is not None and prev.any():
        both = (cur > 0) & (prev > 0)
        pairs, inter = np.unique(np.stack([cur[both], prev[both]]), axis=1, return_counts=True)
        area_c = np.bincount(cur.ravel(), minlength=n_cur + 1)
        prev_ids, prev_area = np.unique(prev, return_counts=True)
        area_p = dict(zip(prev_ids.tolist(), prev_area.tolist()))
        best = {}
        for (c, p), n in zip(pairs.T.tolist(), inter.tolist()):
            iou = n / (area_c[c] + area_p[p] - n)
            if iou >= iou_threshold and iou > best.get(c, (0, 0))[1]:
                best[c] = (p, iou)
        used = set()
        for c, (p, _) in sorted(best.items(), key=lambda kv: -kv[1][1]):
            if p not in used:
                mapping[c] = p
                used.add(p)
    for c in range(1, n_cur + 1):
        if mapping[c] == 0:
            mapping[c] = next_id
            next_id += 1
    out = mapping[cur].astype(np.uint32)
    return out, next_id
