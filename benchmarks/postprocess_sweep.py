"""Post-processing variants on the same network maps: AP@0.5 and failure causes per data set.

    python -m benchmarks.postprocess_sweep --model default [--dsb ../shared/data/dsb2018] \
        [--polyp ../shared/data/polyp_nuclei] [--polyp-split val|train] [--quick]

Each image's maps are predicted once per scale and every variant (``split_depth``, method
``flows``, fixed ``scale``) is post-processed from them, so a sweep costs little more than
one pass. ``scale="auto"`` is reproduced as in ``predict.segment.plane_labels`` (a first pass
at 1x measures the objects with the variant's own post-processing). Data: the dsb2018
validation split per modality, and the polyp_nuclei validation tiles (``--polyp-split val``)
or its training tiles (``train``: a split to choose settings on without touching validation,
though the model was trained on it). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

VARIANTS = {
    "card defaults": {},
    "split_depth 0.15": {"split_depth": 0.15},
    "split_depth 0.1": {"split_depth": 0.1},
    "split_depth 0.05": {"split_depth": 0.05},
    "split_depth 0.03": {"split_depth": 0.03},
    "split_depth 0.05, scale 1.5": {"split_depth": 0.05, "scale": 1.5},
    "flows": {"method": "flows"},
    "scale 1 (no auto)": {"scale": 1.0},
    "scale 1.5": {"scale": 1.5},
}


def scaled_maps(model, img: np.ndarray):
    """``maps_at(s)``: the model's maps of ``img`` (normalised as segment() does) predicted at
    scale ``s`` and brought back to the image's size, each scale predicted once."""
    from napari_tower.io.normalize import percentile_normalize, to_single_channel
    from napari_tower.predict.segment import _resize, scaled_shape

    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    x = percentile_normalize(to_single_channel(np.squeeze(img), img.ndim == 3 and img.shape[-1] == 3))
    cache: dict[float, np.ndarray] = {}

    def maps_at(s: float) -> np.ndarray:
        if s not in cache:
            xs = x if s == 1.0 else _resize(x[None], scaled_shape(x.shape, s))[0]
            m = model.predict_maps(xs)
            if s != 1.0:
                m = _resize(m, x.shape)
                m[3:5] /= s  # a flow step spans 1 / s pixels at the image's size
            cache[s] = m
        return cache[s]

    return maps_at


def _data(args):
    from napari_tower.train.data import (POLYP_GROUP, dsb_index, dsb_split, polyp_split, read_dsb,
                                         read_polyp)

    groups: dict[str, list] = {}
    if args.dsb and (Path(args.dsb) / "index.csv").is_file():
        _, val = dsb_split(dsb_index(Path(args.dsb)))
        for r in val:
            if args.quick and len(groups.get(r["modality"], [])) >= 5:
                continue
            if args.modalities and r["modality"] not in args.modalities:
                continue
            groups.setdefault(r["modality"], []).append(lambda r=r: read_dsb(Path(args.dsb), r))
    if args.polyp and (Path(args.polyp) / "index.csv").is_file():
        train, val = polyp_split(dsb_index(Path(args.polyp)))
        rows = val if args.polyp_split == "val" else train[:: max(1, len(train) // 4)][:4]
        groups[f"{POLYP_GROUP} ({args.polyp_split})"] = [lambda r=r: read_polyp(Path(args.polyp), r) for r in rows]
    return groups


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.postprocess_sweep", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--dsb", default="../shared/data/dsb2018")
    ap.add_argument("--polyp", default="../shared/data/polyp_nuclei")
    ap.add_argument("--polyp-split", default="val", choices=["val", "train"])
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--quick", action="store_true", help="5 dsb images per modality")
    ap.add_argument("--modalities", nargs="*", default=None, choices=["fluorescence", "histology", "brightfield"],
                    help="only these dsb modalities (default: all)")
    args = ap.parse_args(argv)

    import napari_tower
    from napari_tower.config import PredictConfig
    from napari_tower.metrics import average_precision
    from napari_tower.predict.postprocess import instances_from_maps
    from napari_tower.predict.segment import auto_scale_for, median_diameter

    from .failures import render_table, summarise, failure_breakdown

    model = napari_tower.load_model(args.model)
    card_pp = {k: v for k, v in model.card.get("postprocess", {}).items() if k in PredictConfig.model_fields}
    results: dict[str, dict[str, list]] = {v: {} for v in args.variants}
    for group, loaders in _data(args).items():
        for i, load in enumerate(loaders, 1):
            img, true = load()
            maps_at = scaled_maps(model, img)

            for name in args.variants:
                cfg = PredictConfig(**{**card_pp, **VARIANTS[name]})

                def labels_at(s):
                    m = maps_at(s)
                    return instances_from_maps(m[0], m[2], cfg.prob_threshold, cfg.seed_threshold, cfg.min_size,
                                               cfg.split_depth, flow=m[3:5] if len(m) >= 5 else None,
                                               method=cfg.method, nonconvex_split_depth=cfg.nonconvex_split_depth)

                if cfg.scale == "auto":
                    pred = labels_at(1.0)
                    s = auto_scale_for(median_diameter(pred))
                    pred = pred if s == 1.0 else labels_at(s)
                else:
                    pred = labels_at(float(cfg.scale))
                results[name].setdefault(group, []).append((average_precision(pred, true), failure_breakdown(pred, true)))
            print(f"{group} {i}/{len(loaders)}", file=sys.stderr, flush=True)
    groups = list(next(iter(results.values())))
    print(f"Model `{model.name}` (card sha256 `{(model.card.get('sha256') or '')[:12]}`); "
          f"`python -m benchmarks.postprocess_sweep {' '.join(sys.argv[1:] if argv is None else argv)}`\n")
    print("| variant | " + " | ".join(f"{g} AP@0.5" for g in groups) + " |")
    print("|---|" + "---:|" * len(groups))
    for name in args.variants:
        print(f"| {name} | " + " | ".join(f"{np.mean([a for a, _ in results[name][g]]):.3f}" for g in groups) + " |")
    for name in args.variants:
        print(f"\n{name}:\n")
        print("\n".join(render_table({g: summarise([b for _, b in results[name][g]]) for g in groups})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
