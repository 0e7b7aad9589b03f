"""Object-size benchmark: AP@0.5 of the no-flags 2D path on nuclei of other sizes.

    python -m benchmarks.object_size --data ../shared/data [--zooms 2,3,4] [--images 12] \
        [--no-shrink] [--out docs/results/object_size.json]

The dsb2018 validation split per modality and the held-out polyp_nuclei tiles as they are,
and the first ``--images`` dsb2018 fluorescence validation images (by id) enlarged ``--zooms``
times (bilinear; labels by repetition): nuclei of ~30-60 px, as at high magnification.
``--no-shrink`` measures ``scale="auto"`` as it was before it brought large objects down
(enlarging only), in the same process and code otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from .common import log


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.object_size", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder holding dsb2018/ and polyp_nuclei/")
    ap.add_argument("--zooms", default="2,3,4")
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--model", default="auto")
    ap.add_argument("--no-shrink", action="store_true", help="scale='auto' enlarging only (the rule before)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    from skimage.transform import rescale

    import napari_tower
    from napari_tower.errors import FitWarning
    from napari_tower.metrics import average_precision
    from napari_tower.predict import object_size
    from napari_tower.train.data import dsb_index, dsb_split, polyp_split, read_dsb, read_polyp

    if args.no_shrink:
        object_size.AUTO_LARGE_DIAMETER = float("inf")
    warnings.simplefilter("ignore", FitWarning)
    dsb, polyp = args.data / "dsb2018", args.data / "polyp_nuclei"

    def ap50(img, truth):
        axes = "YXC" if img.ndim == 3 else "YX"
        return average_precision(napari_tower.segment(img, model=args.model, axes=axes, device="cpu"), truth)

    _, val = dsb_split(dsb_index(dsb))
    res = {}
    for mod in ("fluorescence", "histology", "brightfield"):
        scores = []
        for r in (r for r in val if r["modality"] == mod):
            img, lab = read_dsb(dsb, r)
            scores.append(ap50(img[..., :3] if img.ndim == 3 else img, lab))
        res[f"dsb {mod}"] = (float(np.mean(scores)), len(scores))
        log(f"dsb {mod}: {res[f'dsb {mod}'][0]:.3f}")
    if (polyp / "index.csv").exists() or (polyp / "images").exists():
        _, pv = polyp_split(dsb_index(polyp))
        scores = [ap50(*read_polyp(polyp, r)) for r in pv]
        res["polyp tiles"] = (float(np.mean(scores)), len(scores))
    fluo = sorted((r for r in val if r["modality"] == "fluorescence"), key=lambda r: r["id"])[: args.images]
    for z in (int(v) for v in args.zooms.split(",") if v):
        scores = []
        for r in fluo:
            img, lab = read_dsb(dsb, r)
            img = rescale((img[..., 0] if img.ndim == 3 else img).astype(np.float32), z, order=1)
            scores.append(ap50(img, np.kron(lab, np.ones((z, z), lab.dtype))))
        res[f"dsb fluorescence x{z}"] = (float(np.mean(scores)), len(scores))
        log(f"x{z}: {res[f'dsb fluorescence x{z}'][0]:.3f}")
    for k, (v, n) in res.items():
        print(f"{k:28s} n={n:3d}  AP@0.5 {v:.3f}")
    if args.out:
        args.out.write_text(json.dumps({"argv": argv if argv is not None else sys.argv[1:],
                                        "no_shrink": args.no_shrink, "model": args.model,
                                        "ap50": {k: v for k, (v, _) in res.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
