"""Experiment (issue 22): how touching nuclei are split, absolute vs relative depth vs a convexity gate.

    python -m benchmarks.split_gate --model nuclei-fluo --set polyptrain|dsbtrain|polypval|dsbval \
        [--dsb ../shared/data/dsb2018] [--polyp ../shared/data/polyp_nuclei]

Maps are predicted once per image (with ``scale="auto"`` as in ``predict.segment``); each variant
post-processes them and is scored by AP@0.5 (mean over images). Variants:

- ``abs D``: the shipped rule, two centerness peaks stay apart when the dip between them is >= D;
- ``rel R``: the dip measured relative to the lower peak (>= R x peak);
- ``sol S``: objects of ``abs 0.2`` whose solidity (area / convex hull area) is under S, i.e.
  not convex and so likely several nuclei, are split at ``abs 0.05``; convex ones are kept.

``dsbtrain`` (40 dsb2018 training images) and ``polyptrain`` (4 polyp_nuclei training tiles) are
for choosing, though the models were trained on them; ``dsbval``/``polypval`` are the fixed
validation splits. Not in the product: see docs/benchmarks.md for the numbers and why.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import regionprops

VARIANTS = [("abs", 0.2), ("abs", 0.1), ("abs", 0.05), ("rel", 0.2), ("rel", 0.3), ("rel", 0.4),
            ("sol", 0.85), ("sol", 0.9), ("sol", 0.95)]


def split(center, mask, depth: float, relative: bool) -> np.ndarray:
    """``postprocess._split_by_depth``, or with the merge test relative to the lower peak."""
    from napari_tower.predict.postprocess import _basins, _merged

    labels, peak, pairs, passes = _basins(center, mask)
    if peak is None:
        return labels
    if not relative:
        return _merged(labels, peak, pairs, passes, depth)
    # the product's union-find with the one line that differs: the dip is compared with
    # depth x the lower peak instead of depth
    parent = np.arange(len(peak))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for k in np.argsort(-passes, kind="stable"):
        a, b = root(pairs[k, 0]), root(pairs[k, 1])
        lo = min(peak[a], peak[b])
        if a != b and lo - passes[k] < depth * lo:
            if peak[a] < peak[b]:
                a, b = b, a
            parent[b] = a
    return np.array([root(i) for i in range(len(peak))], np.int32)[labels]


def labels_for(maps, kind: str, value: float, min_size: int = 15, threshold: float = 0.5) -> np.ndarray:
    from napari_tower.predict.postprocess import relabel_sequential, remove_small

    if kind == "sol":
        coarse, fine = labels_for(maps, "abs", 0.2), labels_for(maps, "abs", 0.05)
        if coarse.max() == 0:
            return coarse
        gate = np.zeros(coarse.max() + 1, bool)
        for r in regionprops(coarse):
            gate[r.label] = r.solidity < value
        g = gate[coarse]
        out = np.where(g, fine + coarse.max(), coarse) * (coarse > 0)
        out = np.where(g & (fine == 0), 0, out)
        return relabel_sequential(remove_small(out, min_size))
    mask = maps[0] > threshold
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    lab = split(maps[2], mask, value, kind == "rel")
    rest, _ = ndi.label(mask & (lab == 0))  # foreground without a seed still becomes objects
    if rest.any():
        rest[rest > 0] += lab.max()
        lab = np.where(lab == 0, rest, lab)
    return relabel_sequential(remove_small(lab, min_size))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.split_gate", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="nuclei-fluo")
    ap.add_argument("--set", required=True, choices=["dsbval", "dsbtrain", "polypval", "polyptrain"])
    ap.add_argument("--dsb", type=Path, default=Path("../shared/data/dsb2018"))
    ap.add_argument("--polyp", type=Path, default=Path("../shared/data/polyp_nuclei"))
    args = ap.parse_args(argv)

    import napari_tower
    from napari_tower.metrics import average_precision
    from napari_tower.predict.segment import auto_scale_for, median_diameter

    from .postprocess_sweep import scaled_maps
    from napari_tower.train.data import dsb_index, dsb_split, polyp_split, read_dsb, read_polyp

    root = args.dsb if args.set.startswith("dsb") else args.polyp
    if not (root / "index.csv").is_file():
        raise SystemExit(f"no data at {root}")
    if args.set.startswith("dsb"):
        train, val = dsb_split(dsb_index(root))
        rows = [r for r in (val if args.set == "dsbval" else train) if r["modality"] == "fluorescence"]
        if args.set == "dsbtrain":
            rows = rows[:: max(1, len(rows) // 40)][:40]
        loads = [lambda r=r: read_dsb(root, r) for r in rows]
    else:
        train, val = polyp_split(dsb_index(root))
        rows = val if args.set == "polypval" else train[:: max(1, len(train) // 4)][:4]
        loads = [lambda r=r: read_polyp(root, r) for r in rows]
    model = napari_tower.load_model(args.model, "cpu")
    scores: dict[str, list[float]] = {f"{k} {v}": [] for k, v in VARIANTS}
    for load in loads:
        img, true = load()
        maps_at = scaled_maps(model, img)

        for kind, value in VARIANTS:
            pred = labels_for(maps_at(1.0), kind, value)
            s = auto_scale_for(median_diameter(pred))
            if s != 1.0:
                pred = labels_for(maps_at(s), kind, value)
            scores[f"{kind} {value}"].append(average_precision(pred, true))
    print(json.dumps({"model": model.name, "set": args.set, "images": len(loads),
                      "ap50": {k: round(float(np.mean(v)), 3) for k, v in scores.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
