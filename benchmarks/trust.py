"""Whether a result is to be trusted: how often results are flagged, per data set.

    python -m benchmarks.trust --data ../shared/data [--model auto] [--every 3] [--out docs/results/trust.json]

Segments each image with no flags but ``--model`` (``napari_tower.segment``, the CLI's path)
and counts the images whose result raises ``FitWarning`` (``napari_tower.predict.trust``):

- nuclei, where a flag is a false alarm: the dsb2018 validation split per modality, every
  ``--every``-th dsb2018 training image, all 24 polyp_nuclei tiles;
- whole cells, where a nuclei model's result should be flagged: the 60 bbbc030 DIC images,
  the 20 bbbc030 test images rendered as phase contrast from their labels
  (``napari_tower.train.render_cells``, seed 7), and the 10 frames of the bundled
  transmitted-light cells movie.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from .common import log


def _items(data: Path, every: int):
    import tifffile
    from skimage.io import imread

    from napari_tower._sample_data import cells_movie
    from napari_tower.train.data import dsb_index, dsb_split
    from napari_tower.train.render_cells import render

    def png(p, gray=False):
        img = imread(p)
        if img.ndim == 3:
            img = img[..., 0] if gray else img[..., :3]
        return img

    dsb = data / "dsb2018"
    if (dsb / "index.csv").is_file():
        train, val = dsb_split(dsb_index(dsb))
        for r in val:
            yield f"nuclei: dsb2018 {r['modality']} validation", lambda r=r: png(dsb / "images" / f"{r['id']}.png")
        for r in train[::every]:
            yield f"nuclei: dsb2018 {r['modality']} training", lambda r=r: png(dsb / "images" / f"{r['id']}.png")
    polyp = data / "polyp_nuclei"
    if (polyp / "index.csv").is_file():
        for r in dsb_index(polyp):
            yield "nuclei: polyp_nuclei tiles", lambda r=r: np.squeeze(tifffile.imread(polyp / "images" / f"{r['id']}.tif"))
    cells = data / "bbbc030"
    if (cells / "index.csv").is_file():
        for r in dsb_index(cells):
            yield "cells: bbbc030 DIC", lambda r=r: png(cells / "images" / f"{r['id']}.png", gray=True)
            if r["split"] == "test":
                yield "cells: bbbc030 rendered as phase contrast", lambda r=r: render(
                    tifffile.imread(cells / "labels" / f"{r['id']}.tif"), np.random.default_rng(7), "phase")
    movie = cells_movie()
    for t in range(len(movie)):
        yield "cells: bundled transmitted-light movie frames", lambda t=t: movie[t]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.trust", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the folder holding dsb2018/, polyp_nuclei/, bbbc030/")
    ap.add_argument("--model", default="auto")
    ap.add_argument("--every", type=int, default=3, help="use every N-th dsb2018 training image")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    import napari_tower
    from napari_tower.errors import FitWarning

    from napari_tower.predict.trust import signals

    counts: dict[str, list[int]] = {}
    shares: dict[str, list[float]] = {}
    reasons: dict[str, dict[str, int]] = {}
    for group, load in _items(args.data, args.every):
        img = load()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            labels = napari_tower.segment(img, model=args.model, device="cpu", axes="YXC" if img.ndim == 3 else "YX")
        fits = [str(w.message) for w in caught if issubclass(w.category, FitWarning)]
        counts.setdefault(group, []).append(int(bool(fits)))
        for why in ("unsure", "specks", "cover"):
            reasons.setdefault(group, {}).setdefault(why, 0)
            reasons[group][why] += int(any(why in f for f in fits))
        shares.setdefault(group, []).append(signals(labels)["speck_share"])
    # the speck shares let a new cut-off be judged without segmenting again
    rows = {g: {"flagged": int(sum(v)), "images": len(v), "speck_share_min": round(min(shares[g]), 3),
                "speck_share_max": round(max(shares[g]), 3), "by_signal": reasons[g]} for g, v in counts.items()}
    for g, r in rows.items():
        log(f"{g:50s} flagged {r['flagged']:3d} / {r['images']:3d}   speck share {r['speck_share_min']:.2f}-"
            f"{r['speck_share_max']:.2f}   by signal {r['by_signal']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"command": "python -m benchmarks.trust " + " ".join(
            argv if argv is not None else sys.argv[1:]), "model": args.model, "groups": rows}, indent=1))
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
