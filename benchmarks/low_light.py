"""Low light: dsb2018 fluorescence validation images recorded again with few photons.

    python -m benchmarks.low_light --data ../shared/data/dsb2018 [--models auto,candidates/nuclei] \
        [--photons 3,10,30,100,1000] [--images 0] [--denoise auto|off] [--out docs/results/low_light.json]

Each validation image (napari_tower.train.data.dsb_split) is scaled so that its bright pixels
(99.8th percentile) collect ``photons`` on average, then gets Poisson shot noise and Gaussian
read noise of 2 counts (``napari_tower.train.microscope.low_light``; seed fixed per image), and
is segmented as a user's float image with no flags (``napari_tower.segment``, the CLI's
path). "clean" is the image as it is. AP@0.5 and Dice against the ground truth, per level, and
the share of images whose result was flagged as not to be trusted (``flagged``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .common import log


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.low_light", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the dsb2018 folder")
    ap.add_argument("--models", default="auto", help="comma-separated: auto, model names or directories")
    ap.add_argument("--photons", default="3,10,30,100,1000")
    ap.add_argument("--denoise", default="auto", choices=("auto", "off"), help="segment(denoise=...): the default, or no smoothing")
    ap.add_argument("--images", type=int, default=0, help="use the first N fluorescence validation images (0: all)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = ap.parse_args(argv)
    if not (args.data / "index.csv").is_file():
        log(f"{args.data}: no index.csv (dsb2018 lives in ../shared/data); nothing measured")
        return 0
    import warnings

    import napari_tower
    from napari_tower.errors import FitWarning
    from napari_tower.io.normalize import rgb_to_single_channel
    from napari_tower.metrics import average_precision, dice
    from napari_tower.train.data import dsb_index, dsb_split, read_dsb
    from napari_tower.train.microscope import low_light

    _, val = dsb_split(dsb_index(args.data))
    rows = sorted((r for r in val if r["modality"] == "fluorescence"), key=lambda r: r["id"])
    rows = rows[: args.images] if args.images else rows
    levels = ["clean"] + [float(p) for p in args.photons.split(",")]
    results = {"command": "python -m benchmarks.low_light " + " ".join(argv if argv is not None else sys.argv[1:]),
               "images": len(rows), "models": {}}
    for model in args.models.split(","):
        per = {str(lv): {"ap50": [], "dice": [], "flagged": []} for lv in levels}
        t0 = time.time()
        for i, r in enumerate(rows):
            img, truth = read_dsb(args.data, r)
            if img.ndim == 3:  # some fluorescence PNGs are gray or one lit channel stored as RGB
                img = rgb_to_single_channel(img[..., :3])
            for lv in levels:
                x = img if lv == "clean" else low_light(img, lv, np.random.default_rng(1000 + i))
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    pred = napari_tower.segment(x, model=model, device="cpu", axes="YX", denoise=args.denoise)
                per[str(lv)]["flagged"].append(float(any(issubclass(w.category, FitWarning) for w in caught)))
                per[str(lv)]["ap50"].append(average_precision(pred, truth))
                per[str(lv)]["dice"].append(dice(pred, truth))
        summary = {lv: {k: float(np.mean(v)) for k, v in d.items()} for lv, d in per.items()}
        results["models"][model] = {"levels": summary, "seconds": round(time.time() - t0)}
        log(f"{model}: " + "  ".join(f"{lv}: {s['ap50']:.3f} ({s['flagged']:.0%} flagged)" for lv, s in summary.items()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
