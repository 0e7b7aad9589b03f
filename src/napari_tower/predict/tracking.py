"""Time-lapses: link each frame's objects to the previous frame's, so that a cell keeps its id.

Objects are matched one-to-one by optimal assignment on IoU (as trackastra's and
stardist-napari users' overlap trackers do, without learning); an unmatched object that
lies mostly inside the footprint of an object of the previous frame which also has a
match is a daughter of a division: both daughters get new ids and the graph records the
mother, as napari's Tracks layer expects (``{daughter: [mother]}``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment

# a pair of objects in consecutive frames is the same object above this IoU
LINK_IOU = 0.2
# an unmatched object with at least this fraction of its area inside a matched object of
# the previous frame is taken as that object's daughter
DAUGHTER_INSIDE = 0.3


def _overlaps(prev: np.ndarray, cur: np.ndarray):
    """Unique ids of both frames, their intersection counts (n_cur, n_prev) and areas."""
    pi, pinv = np.unique(prev, return_inverse=True)
    ci, cinv = np.unique(cur, return_inverse=True)
    inter = np.bincount(cinv.ravel() * len(pi) + pinv.ravel(), minlength=len(ci) * len(pi)).reshape(len(ci), len(pi))
    # drop background rows/columns
    keep_c, keep_p = ci > 0, pi > 0
    area_c, area_p = inter.sum(1)[keep_c], inter.sum(0)[keep_p]
    return ci[keep_c], pi[keep_p], inter[np.ix_(keep_c, keep_p)], area_c, area_p


@dataclass
class Linker:
    """Relabels frames one after another; ``graph`` collects divisions {daughter: [mother]}."""

    iou: float = LINK_IOU
    next_id: int = 1
    prev: np.ndarray | None = None
    graph: dict[int, list[int]] = field(default_factory=dict)

    def __call__(self, cur: np.ndarray) -> np.ndarray:
        cur = np.asarray(cur)
        ids = np.unique(cur)
        ids = ids[ids > 0]
        lut = {}
        if self.prev is not None and ids.size and self.prev.any():
            cids, pids, inter, area_c, area_p = _overlaps(self.prev, cur)
            iou = inter / np.maximum(area_c[:, None] + area_p[None, :] - inter, 1)
            rows, cols = linear_sum_assignment(-iou)
            matched = {int(cids[r]): int(pids[c]) for r, c in zip(rows, cols) if iou[r, c] >= self.iou}
            inside = {}  # unmatched objects lying mostly inside one previous object
            for r, c_id in enumerate(cids.tolist()):
                c = int(np.argmax(inter[r]))
                if c_id not in matched and inter[r, c] >= DAUGHTER_INSIDE * area_c[r]:
                    inside.setdefault(int(pids[c]), []).append(c_id)
            continuing = set(matched.values())
            # a mother has two daughters: a matched one and one inside, or two inside
            mother_of = {c_id: p_id for p_id, cs in inside.items() if p_id in continuing or len(cs) >= 2 for c_id in cs}
            mothers = set(mother_of.values())
            for c_id, p_id in matched.items():
                if p_id in mothers:  # the matched sibling is a daughter too
                    mother_of[c_id] = p_id
                else:
                    lut[c_id] = p_id
            for c_id in sorted(mother_of):
                lut[c_id] = self._new()
                self.graph[lut[c_id]] = [mother_of[c_id]]
        for c_id in ids.tolist():
            if c_id not in lut:
                lut[c_id] = self._new()
        table = np.zeros(int(ids.max(initial=0)) + 1, np.uint32)
        for k, v in lut.items():
            table[k] = v
        out = table[cur]
        self.prev = out
        return out

    def _new(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def track(labels: np.ndarray) -> tuple[np.ndarray, dict[int, list[int]]]:
    """Link a (T, [Z,] Y, X) label movie: (labels with persistent ids, division graph)."""
    linker = Linker()
    out = np.zeros(labels.shape, np.uint32)
    for t in range(labels.shape[0]):
        out[t] = linker(labels[t])
    return out, linker.graph


def tracks_data(labels: np.ndarray) -> np.ndarray:
    """napari Tracks layer data: rows (track id, t, [z,] y, x) at each object's centroid."""
    rows = []
    for t in range(labels.shape[0]):
        frame = np.asarray(labels[t])
        ids = np.unique(frame)
        ids = ids[ids > 0]
        if ids.size:
            centres = np.array(ndi.center_of_mass(np.ones(frame.shape), frame, ids)).reshape(len(ids), -1)
            rows.append(np.column_stack([ids, np.full(len(ids), t), centres]))
    return np.concatenate(rows) if rows else np.zeros((0, labels.ndim + 1))
