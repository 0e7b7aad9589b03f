"""Train the bundled "default" model on dsb2018 (all three modalities, fixed validation split)
and, with ``--polyp``, the polyp_nuclei tiles (dense fluorescence tissue, fixed whole-tile split).

    python -m napari_tower.train.dsb --data ../shared/data/dsb2018 \
        --output src/napari_tower/models/default --steps 3000 --seed 0 [--base none|tower|DIR] \
        [--polyp ../shared/data/polyp_nuclei]
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from ..config import PostprocessConfig
from ..model.network import ArchConfig, TowerNet, add_flow_maps, count_parameters, head_names
from ..model.weights import load_network, resolve_device, resolve_model_dir, save_model
from ..progress import run_to_end
from .data import POLYP_GROUP, dsb_index, dsb_split, load_dsb_samples, load_polyp_samples, polyp_split
from .trainer import TrainSettings, evaluate, train

ARCHS = {
    # full-resolution U-Net trunk
    "unet": dict(widths=(12, 24, 48, 96, 192)),
    # half-resolution trunk + full-resolution refinement: ~3x less compute per pixel
    "fast": dict(widths=(16, 32, 64, 128, 256), stem_stride=2, decoder="light", refine_width=8),
}
GROUP_WEIGHTS = {"fluorescence": 0.55, "histology": 0.3, "brightfield": 0.15}
# with --polyp: the 20 dense tissue tiles hold ~30,000 nuclei (dsb's 428 images ~25,000), so a
# share like histology's; dsb's groups keep their proportions among themselves
POLYP_WEIGHT = 0.25


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m napari_tower.train.dsb", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="dsb2018 folder (index.csv, images/, labels/)")
    ap.add_argument("--output", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base", default="none", help="none, or a model name/directory to start from")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--arch", default="unet", choices=sorted(ARCHS), help="network layout when --base none")
    ap.add_argument("--no-flows", action="store_true", help="train only the three watershed maps (no flow maps)")
    ap.add_argument("--exclude-modality", action="append", default=[], choices=["fluorescence", "histology", "brightfield"],
                    help="leave a modality out of training and validation (a base that never saw it, for few-shot tests)")
    ap.add_argument("--polyp", type=Path, default=None,
                    help="polyp_nuclei folder: its training tiles join the training set, its validation tiles "
                         "(napari_tower.train.data.polyp_split) the validation set")
    ap.add_argument("--polyp-weight", type=float, default=POLYP_WEIGHT,
                    help=f"share of training crops drawn from the polyp tiles (default {POLYP_WEIGHT})")
    ap.add_argument("--polyp-upsample", type=float, default=1.5,
                    help="enlarge the polyp training tiles by this factor (their nuclei are ~12 px; default 1.5)")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="training time budget (after loading): the learning-rate schedule ends with it if sooner")
    ap.add_argument("--val-every", type=int, default=None, help="steps between validations (default: steps / 6)")
    args = ap.parse_args(argv)

    # the split is drawn per modality, so leaving one out does not move the others' images
    rows = [r for r in dsb_index(args.data) if r["modality"] not in args.exclude_modality]
    train_rows, val_rows = dsb_split(rows)
    t0 = time.time()
    train_s, val_s = load_dsb_samples(args.data, train_rows), load_dsb_samples(args.data, val_rows)
    group_weights = dict(GROUP_WEIGHTS)
    polyp_val_ids: list[str] = []
    if args.polyp is not None:
        p_train, p_val = polyp_split(dsb_index(args.polyp))
        # validation tiles stay at their own size: that is what a user's image is
        train_s += load_polyp_samples(args.polyp, p_train, upsample=args.polyp_upsample)
        val_s += load_polyp_samples(args.polyp, p_val)
        polyp_val_ids = [r["id"] for r in p_val]
        group_weights = {k: v * (1 - args.polyp_weight) for k, v in group_weights.items()}
        group_weights[POLYP_GROUP] = args.polyp_weight
    print(f"loaded {len(train_s)} train / {len(val_s)} val images in {time.time() - t0:.0f}s", file=sys.stderr)
    device = resolve_device(args.device)
    base_command = None
    if args.base == "none":
        net = TowerNet(ArchConfig(**ARCHS[args.arch]))
    else:
        net, base_card = load_network(resolve_model_dir(args.base))
        base_command = base_card.get("training", {}).get("command")
    if not args.no_flows:
        # learnt here so that fine-tuning on irregular cells starts from trained flow maps
        # (a no-op for a base that already has them, e.g. --base default)
        net = add_flow_maps(net)
    settings = TrainSettings(
        max_steps=args.steps, max_minutes=args.max_minutes, batch_size=args.batch_size, crop=args.crop, lr=args.lr, seed=args.seed,
        group_weights=group_weights, val_every=args.val_every or max(args.steps // 6, 50), log_every=25,
    )

    def report(p):
        extra = " ".join(f"{k}={v:.3f}" for k, v in p.metrics.items())
        if p.loss is not None:
            print(f"[{p.step}/{p.total}] loss={p.loss:.4f} {extra}", file=sys.stderr, flush=True)

    def make_card(net, metrics, steps, seconds):
        return {
            "name": args.output.name,
            "description": "TOWER segmentation model for nuclei (fluorescence, brightfield, H&E via hematoxylin)",
            "task": "nuclei instance segmentation",
            "heads": head_names(net),
            "input": {"channels": 1, "normalization": "percentile 1-99.8", "rgb": "hematoxylin (rgb2hed) unless gray"},
            "postprocess": {**PostprocessConfig().model_dump(), "scale": "auto"},
            "parameters": count_parameters(net),
            "training": {
                "command": "python -m napari_tower.train.dsb " + " ".join(argv if argv is not None else sys.argv[1:]),
                "data": "dsb2018 stage-1 train (BBBC038, CC0), fixed split napari_tower.train.data.dsb_split"
                + ("; polyp_nuclei (T. Pecot, 'Deep learning for biologists' course repository, Polyp_Nuclei/Training, "
                   "CC BY 4.0), fixed whole-tile split napari_tower.train.data.polyp_split" if args.polyp else ""),
                "polyp_val_ids": polyp_val_ids,
                "n_train": len(train_s), "n_val": len(val_s), "val_ids": [r["id"] for r in val_rows],
                "base": args.base, "base_command": base_command, "steps": steps, "seconds": round(seconds),
                "settings": {k: v for k, v in vars(settings).items()},
                "machine": f"{platform.machine()} {device}", "torch": torch.__version__,
            },
            "metrics": {"validation": metrics},
        }

    t_start = time.time()

    def checkpoint(net, metrics):
        save_model(net, args.output, make_card(net, metrics, None, time.time() - t_start))
        print(f"checkpoint (best so far) saved to {args.output}", file=sys.stderr, flush=True)

    result = run_to_end(train(net, train_s, val_s, settings, device, on_best=checkpoint), report)
    metrics = evaluate(result.net, val_s, device)
    save_model(result.net, args.output, make_card(result.net, metrics, result.steps, result.seconds))
    print(f"saved {args.output}: " + " ".join(f"{k}={v:.3f}" for k, v in metrics.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
