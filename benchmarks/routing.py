"""Which bundled model ``--model auto`` picks, counted per data set and modality.

    python -m benchmarks.routing [--data ../shared/data]

Reads every image of dsb2018 (per modality), polyp_nuclei and bbbc030 under ``--data`` (each
skipped when absent) and prints, per group, how many images go to each model
(``napari_tower.choose_model``) and the range of the statistic it decides on (the median
pixel's position in the 1st-99.8th percentile range; stains go to ``default`` before it).
``--segment`` also segments each image with no flags (``napari_tower.api.segment_to``) and
counts the model that made the final labels: under ``--objects auto`` a result that does not
fit is segmented again with ``cells`` when that fits better (slower: every image is segmented).
"""
from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path

import numpy as np


def _groups(data: Path):
    dsb, polyp, bbbc = data / "dsb2018", data / "polyp_nuclei", data / "bbbc030"
    if (dsb / "index.csv").is_file():
        for r in csv.DictReader(open(dsb / "index.csv")):
            yield f"dsb2018 {r['modality']}", dsb / "images" / f"{r['id']}.png"
    if (polyp / "index.csv").is_file():
        for r in csv.DictReader(open(polyp / "index.csv")):
            yield "polyp_nuclei", polyp / "images" / f"{r['id']}.tif"
    if (bbbc / "index.csv").is_file():
        for r in csv.DictReader(open(bbbc / "index.csv")):
            yield "bbbc030 (DIC, whole cells)", bbbc / "images" / f"{r['id']}.png"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.routing", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--segment", action="store_true", help="also count the model behind the final labels")
    args = ap.parse_args(argv)

    import napari_tower
    from napari_tower.io.files import read_image
    from napari_tower.io.normalize import rgb_kind
    from napari_tower.model.choice import median_position

    picks: dict[str, Counter] = {}
    final: dict[str, Counter] = {}
    medians: dict[str, list[float]] = {}
    for group, path in _groups(args.data):
        image, axes = read_image(path)
        picks.setdefault(group, Counter())[napari_tower.choose_model(image, axes)] += 1
        if args.segment:
            import warnings

            from napari_tower.api import segment_to

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the FitWarnings are the trust benchmark's subject
                final.setdefault(group, Counter())[segment_to(image, None, axes=axes, device="cpu").model] += 1
        x = np.asarray(image, np.float64)
        if x.ndim == 3 and x.shape[-1] in (3, 4):
            kind, c = rgb_kind(np.asarray(image)[..., :3])
            if kind == "stain":
                continue
            x = x[..., c] if kind == "single" else x[..., :3].mean(-1)
        medians.setdefault(group, []).append(median_position(x.ravel()))
    if not picks:
        raise SystemExit(f"no data under {args.data}")
    def counts(c: Counter) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(c.items()))

    extra = " final labels by |" if final else ""
    print("| images | n | models picked | median position, min-max (unstained) |" + extra)
    print("|---|---:|---|---|" + ("---|" if final else ""))
    for group, c in picks.items():
        m = np.array(medians.get(group, []))
        rng = f"{np.nanmin(m):.2f}-{np.nanmax(m):.2f}" if m.size else "- (all stains)"
        tail = f" {counts(final[group])} |" if final else ""
        print(f"| {group} | {sum(c.values())} | {counts(c)} | {rng} |" + tail)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
