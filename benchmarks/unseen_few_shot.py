"""Few-shot fine-tuning of `default` on images it never saw: the dsb2018 validation split.

A proxy for the issue's "H&E nuclei from another source" test: fine-tune on some images of
one modality taken from the validation split (never used to train `default`), score on the
rest of that modality's validation images, next to `default` without fine-tuning::

    python -m benchmarks.unseen_few_shot --data ../shared/data/dsb2018 --modality histology \\
        [--train 0,1 | --two-fold] [--zoom Z] [--dilate PX] [--sparse] [--encoder auto|train|keep] \\
        [--minutes 3] [--seed 0] [--lr LR] [--base DIR --all-images --mosaic 4x3]

``--zoom`` and ``--dilate`` make the images look like another source (nuclei larger, as at a
higher magnification; outlines drawn one pixel wider, another annotation convention).
``--two-fold`` fine-tunes on the first half of the images and scores on the second, then the
reverse, so that every image is scored once by a model that never saw it. ``--sparse``
annotates as the issue's sparse test does: every other nucleus, background marked in the top
half of each image, the rest 0. ``--all-images --mosaic 4x3 --base DIR`` is the closest
proxy of the issue's test: a base trained without the modality (``python -m
napari_tower.train.dsb --exclude-modality histology``) fine-tuned on 2 dense ~1 Mpx mosaics of
12 histology images and scored on the other mosaics, all never seen. Reported: mean AP@0.5
over images, and weighted by the number of nuclei per image (a 3-nucleus image swings the
plain mean by 0.05).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def sparse_annotation(lab: np.ndarray) -> np.ndarray:
    """Every other nucleus (by id) as >= 2, background (1) in the top half, the rest 0 (not annotated)."""
    out = np.zeros(lab.shape, np.int32)
    top = slice(0, lab.shape[0] // 2)
    out[top][lab[top] == 0] = 1
    keep = np.isin(lab, np.unique(lab)[1:][::2])
    out[keep] = lab[keep] + 1
    return out


def mosaics(pairs: list[tuple[np.ndarray, np.ndarray]], rows: int, cols: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Tile same-sized images into rows x cols mosaics (dense ~1 Mpx images); a remainder is dropped."""
    k = rows * cols
    out = []
    for start in range(0, len(pairs) - k + 1, k):
        group = pairs[start:start + k]
        imgs, labs, offset = [], [], 0
        for img, lab in group:
            lab = lab.astype(np.int32)
            labs.append(np.where(lab > 0, lab + offset, 0))
            offset += int(lab.max())
            imgs.append(img)
        img = np.concatenate([np.concatenate(imgs[r * cols:(r + 1) * cols], axis=1) for r in range(rows)], axis=0)
        lab = np.concatenate([np.concatenate(labs[r * cols:(r + 1) * cols], axis=1) for r in range(rows)], axis=0)
        out.append((img, lab))
    return out


def load(data: Path, modality: str, zoom: float, dilate: int, all_images: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    from skimage.segmentation import expand_labels
    from skimage.transform import rescale

    from napari_tower.train.data import dsb_index, dsb_split, read_dsb

    train, val = dsb_split(dsb_index(data))
    out = []
    for r in (r for r in (val + train if all_images else val) if r["modality"] == modality):
        img, lab = read_dsb(data, r)
        img = img[..., :3] if img.ndim == 3 else img
        if zoom != 1:
            img = rescale(img, zoom, channel_axis=-1 if img.ndim == 3 else None, order=1,
                          preserve_range=True).astype(img.dtype)
            lab = rescale(lab, zoom, order=0, preserve_range=True, anti_aliasing=False).astype(np.int32)
        if dilate:
            lab = expand_labels(lab, dilate)
        out.append((img, lab))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.unseen_few_shot", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="dsb2018 folder (index.csv, images/, labels/)")
    ap.add_argument("--modality", default="histology", choices=["fluorescence", "histology", "brightfield"])
    ap.add_argument("--train", default="0,1", help="indices (within the modality's validation images) to fine-tune on")
    ap.add_argument("--two-fold", action="store_true", help="first half / second half, then the reverse (overrides --train)")
    ap.add_argument("--zoom", type=float, default=1.0)
    ap.add_argument("--dilate", type=int, default=0)
    ap.add_argument("--sparse", action="store_true")
    ap.add_argument("--all-images", action="store_true",
                    help="use the modality's train-split images too: only for a --base that never saw the modality "
                         "(python -m napari_tower.train.dsb --exclude-modality ...)")
    ap.add_argument("--mosaic", default=None, metavar="ROWSxCOLS",
                    help="tile the images into dense mosaics (e.g. 4x3: 1024x960 for histology); --train then indexes mosaics")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base", default="default")
    ap.add_argument("--lr", type=float, default=None, help="default: finetune's own rule")
    ap.add_argument("--encoder", default="auto", choices=["auto", "train", "keep"])
    args = ap.parse_args(argv)
    if not (args.data / "index.csv").is_file():
        print(f"{args.data} has no index.csv (dsb2018 lives in ../shared/data)", file=sys.stderr)
        return 2
    import napari_tower

    from .few_shot import score as few_shot_score

    data = load(args.data, args.modality, args.zoom, args.dilate, args.all_images)
    if args.mosaic:
        rows, cols = (int(v) for v in args.mosaic.lower().split("x"))
        data = mosaics(data, rows, cols)
    n = len(data)
    folds = ([list(range(n // 2)), list(range(n // 2, n))] if args.two_fold
             else [[int(i) for i in args.train.split(",")]])
    counts = np.array([len(np.unique(lb)) - 1 for _, lb in data])

    def summary(scores: dict[int, tuple[float, float]]) -> str:
        idx = sorted(scores)
        ap50 = np.array([scores[i][1] for i in idx])
        w = counts[idx]
        return (f"Dice {np.mean([scores[i][0] for i in idx]):.3f} AP@0.5 {ap50.mean():.3f} "
                f"(weighted by nuclei {np.sum(ap50 * w) / w.sum():.3f})")

    def score(model, idx) -> dict[int, tuple[float, float]]:
        s = few_shot_score([napari_tower.segment(data[i][0], model=model, device="cpu") for i in idx],
                           [data[i][1] for i in idx])
        return {i: (d, a) for i, d, a in zip(idx, s["dice"], s["ap50"])}

    tested = sorted({i for f in folds for i in range(n) if i not in f})
    print(f"{args.modality} (zoom {args.zoom}, labels dilated {args.dilate} px{', sparse' if args.sparse else ''}"
          f"{', all images' if args.all_images else ''}{', mosaics ' + args.mosaic if args.mosaic else ''}, "
          f"{n} images of {data[0][0].shape[:2]}): "
          f"fine-tune on {folds}, score on the other images ({len(tested)} scored)")
    if args.base != "none":  # a random network has nothing to score
        print(f"{args.base}, not fine-tuned: {summary(score(args.base, tested))}")
    tuned, notes = {}, []
    for train in folds:
        test = [i for i in range(n) if i not in train]
        labels = [sparse_annotation(data[i][1]) if args.sparse else data[i][1] for i in train]
        with tempfile.TemporaryDirectory() as d:
            out = napari_tower.finetune(
                [data[i][0] for i in train], labels, base=args.base, sparse=args.sparse, max_minutes=args.minutes,
                seed=args.seed, device="cpu", output=Path(d) / "m", lr=args.lr,
                freeze_encoder={"auto": None, "train": False, "keep": True}[args.encoder])
            card = json.loads((out / "card.json").read_text())
            tuned.update(score(out, test))
        t = card["training"]
        notes.append(f"{t['steps']} steps, lr {t['lr']}, encoder {'kept' if t['encoder_frozen'] else 'trained'}, "
                     f"zero-shot AP {t['base_zero_shot_ap50']}, {card['postprocess']['method']}")
    print(f"fine-tuned ({'; '.join(notes)}): {summary(tuned)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
