"""Whole cells in transmitted light: few-shot fine-tuning from none / tower / default.

A stand-in for the issues' hidden "whole cells in phase contrast" test, on real data that
installs from PyPI: ndev-sampledata 0.0.3 (BSD-3), ``samples/scratch-assay-labeled-10T-2Ch.tiff``
(C, T, Y, X) = (4, 10, 210, 576): channel 1 is a transmitted-light (DIC-like) image of a
scratch assay, channel 3 whole-cell (cytoplasm) labels; irregular, touching cells. Get it with::

    pip download --no-deps ndev-sampledata==0.0.3 -d /tmp/ndev && cd /tmp/ndev && python -m zipfile -e *.whl .

Then, from the repository root::

    python -m benchmarks.whole_cells --tiff /tmp/ndev/ndev_sampledata/samples/scratch-assay-labeled-10T-2Ch.tiff \
        [--minutes 3] [--bases none,tower,default] [--out docs/benchmarks/few-shot.md]

Protocol: fine-tune on 2 annotated frames (``--train-frames``, default 0 and 9), each base with
``napari_tower.finetune(..., max_minutes=M, seed=0, device="cpu")`` (the issues' ``--max-minutes 3
--seed 0``), score Dice and AP@0.5 on the other frames. Frames of one time-lapse are correlated
(the same cells, moved), so this is easier than unseen images from another experiment; it is a
check of instance separation on irregular cells, not a generalisation claim.

``--split left-right`` (or ``right-left``) is closer to unseen images: it trains on the left
(right) half of the two frames and scores the other half of frames 1-8. The scratch runs
down the middle, so the halves hold different cells: a dense sheet on the left, scattered
cells on the right. Some cells near the right edge have no label (frames 0 and 8 most), so
scores on the right half are capped and training on it teaches those cells as background.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .baselines import classical_segment
from .few_shot import score as _few_shot_score
from .common import log, machine, write_section

START = "<!-- whole-cells-benchmark:start -->"
END = "<!-- whole-cells-benchmark:end -->"


def score(preds, trues) -> tuple[float, float]:
    s = _few_shot_score(preds, trues)
    return s["dice_mean"], s["ap50_mean"]


def _mean_sd(values) -> str:
    v = np.atleast_1d(np.asarray(values, float))
    return f"{v.mean():.3f}" if v.size == 1 else f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.whole_cells", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiff", required=True, help="ndev-sampledata's scratch-assay-labeled-10T-2Ch.tiff")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--bases", default="none,tower,default")
    ap.add_argument("--first-click", default="default", help="models to segment the test frames with as they are "
                    "(comma-separated; auto = no flags, as a user's first click)")
    ap.add_argument("--train-frames", default="0,9")
    ap.add_argument("--image-channel", type=int, default=1)
    ap.add_argument("--label-channel", type=int, default=3)
    ap.add_argument("--zoom", type=int, default=1, help="enlarge the frames this many times (cells ~28 px across at 1; "
                    "2 makes them the size of whole cells in a ~1 Mpx phase-contrast image); own doc section")
    ap.add_argument("--finetune-scale", default="auto", help="finetune(scale=...): auto, or a factor (1 = learn at full size)")
    ap.add_argument("--seeds", default="0", help="fine-tuning seeds, comma-separated; time-budgeted runs vary, so several give a spread")
    ap.add_argument("--split", default="frames", choices=("frames", "left-right", "right-left"),
                    help="frames: train and score whole frames; left-right / right-left: train on one half "
                    "of the training frames, score the other half of the test frames (other cells)")
    ap.add_argument("--head-warmup", type=float, default=0.0,
                    help="finetune(head_warmup=...): fraction of the budget a self-supervised base's pretrained parts stay fixed (LP-FT)")
    ap.add_argument("--out", default=None, help="markdown file to write the section into")
    args = ap.parse_args(argv)
    path = Path(args.tiff)
    if not path.is_file():
        print(f"{path} not found: see this module's docstring for how to get it", file=sys.stderr)
        return 2
    import tifffile

    import napari_tower

    a = tifffile.imread(path)
    imgs, labs = a[args.image_channel], a[args.label_channel].astype(np.int32)
    if args.zoom != 1:
        from skimage.transform import rescale

        imgs = np.stack([rescale(im.astype(np.float32), args.zoom, order=1) for im in imgs])
        labs = np.stack([np.kron(lb, np.ones((args.zoom, args.zoom), lb.dtype)) for lb in labs])
    ft_scale = args.finetune_scale if args.finetune_scale == "auto" else float(args.finetune_scale)
    train = [int(f) for f in args.train_frames.split(",")]
    test = [t for t in range(len(imgs)) if t not in train]
    train_imgs, train_labs = [imgs[t] for t in train], [labs[t] for t in train]
    test_imgs, test_labs = [imgs[t] for t in test], [labs[t] for t in test]
    if args.split != "frames":
        mid = imgs.shape[-1] // 2
        left, right = (slice(None), slice(0, mid)), (slice(None), slice(mid, None))
        tr, te = (left, right) if args.split == "left-right" else (right, left)
        train_imgs, train_labs = [a[tr] for a in train_imgs], [a[tr] for a in train_labs]
        test_imgs, test_labs = [a[te] for a in test_imgs], [a[te] for a in test_labs]
    rows = []
    t0 = time.perf_counter()
    preds = [classical_segment(im) for im in test_imgs]
    rows.append(("Otsu + watershed (classical)", "–", *map(_mean_sd, score(preds, test_labs)), "–"))
    import warnings

    from napari_tower.errors import FitWarning

    for model in [m for m in args.first_click.split(",") if m]:
        with warnings.catch_warnings(record=True) as caught:  # the first click's FitWarning, per image
            warnings.simplefilter("always")
            preds = [napari_tower.segment(im, model=model, device="cpu") for im in test_imgs]
        flagged = sum(issubclass(w.category, FitWarning) for w in caught)
        rows.append((f"TOWER `{model}`, not fine-tuned (first click; {flagged} of {len(test_imgs)} warned)", "–",
                     *map(_mean_sd, score(preds, test_labs)), "card's"))
    log(f"references done in {time.perf_counter() - t0:.0f} s")
    seeds = [int(x) for x in args.seeds.split(",")]
    for base in [b for b in args.bases.split(",") if b]:
        runs = []
        for seed in seeds:
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                out = napari_tower.finetune(train_imgs, train_labs, base=base,
                                            max_minutes=args.minutes, seed=seed, device="cpu", output=Path(d) / "m",
                                            scale=ft_scale, head_warmup=args.head_warmup)
                secs = time.perf_counter() - t0
                method = napari_tower.load_model(out, "cpu").card["postprocess"].get("method", "watershed")
                preds = [napari_tower.segment(im, model=out, device="cpu") for im in test_imgs]
            runs.append((secs, *score(preds, test_labs), method))
            log(f"{base} seed {seed}: Dice {runs[-1][1]:.3f} AP {runs[-1][2]:.3f} ({method})")
        secs, dices, aps, methods = zip(*runs)
        rows.append((f"TOWER fine-tuned from `{base}`", f"{np.mean(secs):.0f}", _mean_sd(dices), _mean_sd(aps), ", ".join(methods)))
    m = machine()
    if args.split == "frames":
        what = (f"fine-tuned on frames {train}, scored on frames {test} (same time-lapse: correlated with the "
                "training frames)")
    else:
        first, second = args.split.split("-")
        what = (f"fine-tuned on the {first} half of frames {train}, scored on the {second} half of frames {test} "
                "(other cells of the same time-lapse)")
    lines = [
        "## Whole cells in transmitted light (few-shot, 2 annotated frames)" + (f", frames enlarged {args.zoom}x" if args.zoom != 1 else "")
        + ("" if args.split == "frames" else f", {args.split.replace('-', ' to ')} halves")
        + (f", head warm-up {args.head_warmup:g}" if args.head_warmup else ""),
        "",
        f"ndev-sampledata 0.0.3 scratch assay (BSD-3): transmitted-light channel, whole-cell labels; "
        f"{what}. {args.minutes:g} min CPU budget, seed(s) {args.seeds} (mean ± std over seeds when several), fine-tuning scale {args.finetune_scale}. Machine: {m['cpu']}, "
        f"{m['usable_cpus']} CPUs.",
        "",
        "```",
        "python -m benchmarks.whole_cells " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "```",
        "",
        "| method | training s | Dice | AP@0.5 | separation (chosen per run) |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {s} | {d} | {a_} | {m} |" for n, s, d, a_, m in rows]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.out:
        tag = (f"-zoom{args.zoom}" if args.zoom != 1 else "") + (f"-scale{args.finetune_scale}" if ft_scale != "auto" else "") \
            + (f"-{args.split}" if args.split != "frames" else "") + (f"-warmup{args.head_warmup:g}" if args.head_warmup else "")
        write_section(Path(args.out), section, start=START.replace(":start", f"{tag}:start"), end=END.replace(":end", f"{tag}:end"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
