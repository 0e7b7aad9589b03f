"""Crop a block's labels to its interior, and merge objects that meet across block faces.

A nucleus cut by a face is segmented whole in both blocks (each sees it through its
halo); each block keeps the part inside its interior, and the two parts face each other
across the face with nearly the same cross-section. Two different nuclei that merely
touch across a face share only a small part of their cross-sections. So a pair is merged
when their contact covers at least ``min_fraction`` of the smaller cross-section; merging
is transitive (connected components), so an object cut by four or eight blocks comes
out whole.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components


def crop_relabel(labels: np.ndarray, crop: tuple[slice, ...]) -> tuple[np.ndarray, int]:
    """Interior of ``labels`` with ids renumbered 1..n (in increasing old id); returns (labels, n)."""
    inner = np.asarray(labels)[crop]
    ids = np.unique(inner)
    ids = ids[ids > 0]
    lut = np.zeros(int(inner.max(initial=0)) + 1, np.uint32)  # a table, not unique's int64 inverse: less memory
    lut[ids] = np.arange(1, ids.size + 1, dtype=np.uint32)
    return lut[inner], int(ids.size)


def faces_of(labels: np.ndarray, merge_axes) -> dict[str, np.ndarray]:
    """The first and last plane of the interior along each axis where blocks are merged."""
    out = {}
    for ax in merge_axes:
        out[f"lo{ax}"] = np.take(labels, 0, axis=ax).copy()
        out[f"hi{ax}"] = np.take(labels, labels.shape[ax] - 1, axis=ax).copy()
    return out


def face_pairs(low: np.ndarray, high: np.ndarray, min_fraction: float = 0.5) -> np.ndarray:
    """(a, b) id pairs to merge across a face: ``low`` is the last interior plane of the
    lower block, ``high`` the first of the upper block (same shape, ids already global)."""
    low = np.asarray(low, np.int64).ravel()
    high = np.asarray(high, np.int64).ravel()
    both = (low > 0) & (high > 0)
    if not both.any():
        return np.zeros((0, 2), np.int64)
    pairs, contact = np.unique(np.stack([low[both], high[both]], 1), axis=0, return_counts=True)
    la, ca = np.unique(low[low > 0], return_counts=True)
    lb, cb = np.unique(high[high > 0], return_counts=True)
    area_a = ca[np.searchsorted(la, pairs[:, 0])]
    area_b = cb[np.searchsorted(lb, pairs[:, 1])]
    keep = contact >= min_fraction * np.minimum(area_a, area_b)
    return pairs[keep]


def merge_mapping(n_total: int, pairs: np.ndarray) -> np.ndarray:
    """Lookup table from provisional ids 0..n_total to final ids: merged ids share one,
    final ids are consecutive from 1 in order of their smallest provisional id, 0 stays 0."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    lut = np.zeros(n_total + 1, np.uint32)
    if n_total == 0:
        return lut
    graph = sparse.coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0] - 1, pairs[:, 1] - 1)),
                              shape=(n_total, n_total))
    _, comp = connected_components(graph, directed=False)
    # connected_components numbers components by their first node, i.e. smallest provisional id
    lut[1:] = comp.astype(np.uint32) + 1
    return lut
