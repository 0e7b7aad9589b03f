"""Few-shot fine-tuning of `default` on images it never saw: the dsb2018 validation split.

A proxy for the issue's "H&E nuclei from another source" test: fine-tune on k images of one
modality taken from the validation split (never used to train `default`), score on the
rest of that modality's validation images, next to `default` without fine-tuning::

    python -m benchmarks.unseen_few_shot --data ../shared/data/dsb2018 --modality histology \\
        [--train 0,1] [--minutes 3] [--seed 0] [--lr LR] [--freeze-bn]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.unseen_few_shot", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="dsb2018 folder (index.csv, images/, labels/)")
    ap.add_argument("--modality", default="histology", choices=["fluorescence", "histology", "brightfield"])
    ap.add_argument("--train", default="0,1", help="indices (within the modality's validation images) to fine-tune on")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base", default="default")
    ap.add_argument("--lr", type=float, default=None, help="default: finetune's own rule")
    ap.add_argument("--freeze-bn", action="store_true")
    args = ap.parse_args(argv)
    if not (args.data / "index.csv").is_file():
        print(f"{args.data} has no index.csv (dsb2018 lives in ../shared/data)", file=sys.stderr)
        return 2
    import napari_tower
    from napari_tower.metrics import average_precision, dice
    from napari_tower.train.data import dsb_index, dsb_split, read_dsb

    _, val = dsb_split(dsb_index(args.data))
    rows = [r for r in val if r["modality"] == args.modality]
    data = []
    for r in rows:
        img, lab = read_dsb(args.data, r)
        data.append((img[..., :3] if img.ndim == 3 else img, lab))
    train = [int(i) for i in args.train.split(",")]
    test = [d for i, d in enumerate(data) if i not in train]

    def score(model):
        preds = [napari_tower.segment(im, model=model, device="cpu") for im, _ in test]
        return (float(np.mean([dice(p, lb) for p, (_, lb) in zip(preds, test)])),
                float(np.mean([average_precision(p, lb) for p, (_, lb) in zip(preds, test)])))

    print(f"{args.modality}: fine-tune on validation images {train} ({[rows[i]['id'][:8] for i in train]}), "
          f"score on the other {len(test)}")
    d0, a0 = score(args.base)
    print(f"{args.base}, not fine-tuned: Dice {d0:.3f} AP@0.5 {a0:.3f}")
    with tempfile.TemporaryDirectory() as d:
        out = napari_tower.finetune([data[i][0] for i in train], [data[i][1] for i in train], base=args.base,
                                    max_minutes=args.minutes, seed=args.seed, device="cpu", output=Path(d) / "m",
                                    lr=args.lr, freeze_bn=args.freeze_bn)
        card = json.loads((out / "card.json").read_text())
        d1, a1 = score(out)
    t = card["training"]
    print(f"fine-tuned ({t['steps']} steps, lr {t['lr']}, zero-shot AP on the annotations {t.get('base_zero_shot_ap50')}, "
          f"separation {card['postprocess']['method']}): Dice {d1:.3f} AP@0.5 {a1:.3f} ({a1 - a0:+.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
