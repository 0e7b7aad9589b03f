"""``napari-tower``: headless segmentation (and, later, training) from the shell.

Progress goes to stderr; each bad input gets one line and the others are still
processed; the exit status is non-zero if anything failed.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

def _scale_arg(text: str):
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def _ints_arg(text: str):
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None
    if any(v < 0 for v in vals):
        raise argparse.ArgumentTypeError(f"sizes must not be negative, got {text!r}")
    return vals[0] if len(vals) == 1 else vals


def _err(msg: str) -> None:
    print(f"napari-tower: error: {msg}", file=sys.stderr, flush=True)


def expand_inputs(inputs: list[str]) -> list[Path]:
    from .io.files import expand_image_paths

    return expand_image_paths(inputs)


class StderrProgress:
    """One updating line per file on a terminal; plain lines when stderr is a file."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.total = None

    def __call__(self, p) -> None:
        now = time.monotonic()
        # at most one line a second, but always the first of a new stage (e.g. "3 of 8 blocks already written")
        if p.total > 1 and p.step < p.total and now - self.last < 1.0 and p.total == self.total:
            return
        self.last, self.total = now, p.total
        line = f"{self.prefix} {p.message}" + (f" loss={p.loss:.4f}" if p.loss is not None else "")
        print(("\r" + line + "\033[K") if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self):
        if self.tty:
            print(file=sys.stderr)


def cmd_segment(args) -> int:
    from .api import ModelCache, cluster_client, output_folder, predict_config, segment_to_iter
    from .errors import OutputError, TowerError
    from .progress import run_to_end

    models = ModelCache(args.device)
    options = dict(prob_threshold=args.prob_threshold, seed_threshold=args.seed_threshold, split_depth=args.split_depth,
                   nonconvex_split_depth=args.nonconvex_split_depth, min_size=args.min_size, tile=args.tile,
                   scale=args.scale, method=args.method, tta=args.tta or None, z_assembly=args.z_assembly,
                   views_3d=args.views_3d, denoise=args.denoise)
    try:  # a bad model or unusable options are one error for the whole run, not one per file
        predict_config(models.preload(args.model, args.objects), **options)
    except TowerError as e:
        _err(str(e))
        return 2
    files = expand_inputs(args.inputs)
    if not files:
        _err("no input images found")
        return 2
    try:  # an output folder that cannot be made fails once, not once per input
        if not args.labels_group:
            output_folder(args.output)
    except OutputError as e:
        _err(str(e))
        return 2
    failed = 0
    try:
        with cluster_client(args.scheduler, args.scheduler_file, args.workers) as client:
            for i, f in enumerate(files, 1):
                bar = StderrProgress(f"[{i}/{len(files)}] {f.name}:")
                t0 = time.monotonic()
                try:
                    done = run_to_end(segment_to_iter(
                        f, args.output, args.model, args.device, args.axes, output_format=args.output_format,
                        client=client, block_size=args.block_size, halo=args.halo, resume=args.resume,
                        labels_group=args.labels_group, track=args.track, voxel_size=args.voxel_size, objects=args.objects,
                        models=models, **options), bar)
                except OutputError as e:  # the next inputs would meet the same full or read-only disk
                    bar.close()
                    _err(str(e))
                    if len(files) > i:
                        _err(f"stopped before the other {len(files) - i} input(s)")
                    return 1
                except (TowerError, ValueError) as e:
                    bar.close()
                    failed += 1
                    _err(str(e) if str(f) in str(e) else f"{f}: {e}")
                    continue
                except MemoryError:
                    bar.close()
                    failed += 1
                    _err(f"{f}: out of memory (try a smaller --tile)")
                    continue
                bar.close()
                count = "" if done.objects is None else f"{done.objects} objects "
                used = f", model {done.model}" if args.model == "auto" else ""
                print(f"[{i}/{len(files)}] {f.name}: {count}-> {done.path} ({time.monotonic() - t0:.1f}s{used})",
                      file=sys.stderr, flush=True)
                if done.warning:
                    print(f"napari-tower: warning: {f}: {done.warning}", file=sys.stderr, flush=True)
    except TowerError as e:  # the cluster could not be reached
        _err(str(e))
        return 2
    if failed:
        _err(f"{failed} of {len(files)} inputs failed")
    return 1 if failed else 0


def _read_pairs(images: list[str], labels: list[str]):
    from .errors import InputError
    from .io.files import read_image

    imgs, labs = expand_inputs(images), expand_inputs(labels)
    if len(imgs) != len(labs):
        raise InputError(f"{len(imgs)} images but {len(labs)} label files: give one label file per image, in the same order")
    out_i, out_l = [], []
    for fi, fl in zip(imgs, labs):
        im, _ = read_image(fi)
        lb, _ = read_image(fl)
        if lb.ndim == 3 and lb.shape[-1] in (3, 4) and im.ndim == 2:
            raise InputError(f"{fl}: labels must be a single-channel integer image, not RGB")
        out_i.append(im)
        out_l.append(lb)
    return out_i, out_l


def cmd_finetune(args) -> int:
    from .api import finetune_iter
    from .errors import TowerError
    from .progress import run_to_end

    try:
        images, labels = _read_pairs(args.images, args.labels)
        validation = None
        if args.val_image:
            vi, vl = _read_pairs([args.val_image], [args.val_labels])
            validation = (vi[0], vl[0])
        bar = StderrProgress("finetune:")
        out = run_to_end(finetune_iter(
            images, labels, base=args.base, sparse=args.sparse,
            max_minutes=None if args.epochs else args.max_minutes, epochs=args.epochs,
            seed=args.seed, device=args.device, axes=args.axes, validation=validation,
            output=args.output, lr=args.lr, freeze_encoder={"auto": None, "train": False, "keep": True}[args.encoder],
        ), bar)
        bar.close()
    except TowerError as e:
        _err(str(e))
        return 2
    print(f"saved model to {out}; use it with: napari-tower segment IMAGES -o OUT --model {out}", file=sys.stderr)
    return 0


def cmd_pretrain(args) -> int:
    missing = [p for p in args.images if not Path(p).exists()]
    if missing:
        _err(f"{missing[0]}: no such file or folder")
        return 2
    from .errors import TowerError
    from .progress import run_to_end
    from .ssl.data import data_manifest, load_planes
    from .ssl.pretrain import make_config, pretrain_iter

    try:
        cfg = make_config(
            method=args.method, seed=args.seed, use_proxy=not args.no_proxy, use_nce=not args.no_nce,
            use_restore=not args.no_restore,
            **({"proxy": {"transmitted_p": args.transmitted_light}} if args.transmitted_light else {}),
            **{k: v for k, v in (("batch_size", args.batch_size), ("crop", args.crop), ("lr", args.lr),
                                                  ("lambda_nce", args.lambda_nce)) if v is not None},
        )
        max_minutes = args.max_minutes
        if args.max_steps is None and max_minutes is None:
            max_minutes = 30.0
        planes, files = load_planes(args.images, warn=lambda m: print(f"napari-tower: warning: {m}", file=sys.stderr, flush=True))
        print(f"pretrain: {len(planes)} plane(s) from {len(files)} file(s), method {cfg.method}", file=sys.stderr, flush=True)
        bar = StderrProgress("pretrain:")
        out = run_to_end(pretrain_iter(
            planes, cfg, args.device, args.output, max_steps=args.max_steps, max_minutes=max_minutes,
            resume=args.resume, manifest=data_manifest(files), base=args.base, workers=args.workers,
        ), bar)
        bar.close()
    except TowerError as e:
        _err(str(e))
        return 2
    print(f"saved pretrained model to {out}; fine-tune it with: napari-tower finetune --base {out} --images ... --labels ... --output ...",
          file=sys.stderr)
    print(out)
    return 0


def cmd_export(args) -> int:
    from .api import export
    from .errors import TowerError

    try:
        image = None
        if args.image:
            from .io.files import read_image

            image, _ = read_image(Path(args.image))
        bar = StderrProgress("export:")
        out = export(args.model, args.output, format=args.format, image=image, authors=args.author or None,
                     license=args.license, check=False if args.no_check else None, progress=bar)
        bar.close()
    except TowerError as e:
        _err(str(e))
        return 2
    print(f"wrote {out}; segment with it: napari-tower segment IMAGES -o OUT --model {out}", file=sys.stderr)
    print(out)
    return 0


def cmd_models(args) -> int:
    from .api import list_models
    from .model.weights import read_card, user_models_dir

    print("auto\t-\tsegment's default: nuclei-fluo for 2D single-channel images with a dark background, else default")
    for name, path in list_models().items():
        card = read_card(path)
        print(f"{name}\t{path}\t{card.get('description', '')}")
    print(f"(user models are saved in {user_models_dir()})", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="napari-tower",
        description="TOWER nuclei segmentation, headless. Progress is printed to stderr.",
    )
    from .versioning import __version__

    ap.add_argument("--version", action="version", version=f"napari-tower {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("segment", help="segment images into instance labels", description=(
        "Segment each INPUT (files or folders of tif, ome.tif, png, jpg, ...) and write "
        "OUTDIR/<input stem>.tif with integer instance labels (0 = background), same YX shape as the input."))
    s.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    s.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the label images (created)")
    s.add_argument("--model", default="auto", help="auto (the default: nuclei-fluo for 2D single-channel images with "
                   "a dark background, else default), a bundled or saved model name, a model directory, or a model zip "
                   "(napari-tower's, or a bioimage.io package napari-tower exported) (default: %(default)s)")
    s.add_argument("--objects", default="auto", choices=["auto", "nuclei", "cells"], help="what to segment, with --model "
                   "auto: cells = the bundled cells model; nuclei = the nuclei models only; auto = nuclei models, and an "
                   "image whose nuclei result is specks goes to the cells model when one is installed (default: %(default)s)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="auto = CUDA, then MPS, then CPU")
    s.add_argument("--axes", default=None, help="axes of every input, e.g. YX, YXC, ZYX, TYX, TZYX (default: from the file, else guessed; 3D = ZYX)")
    s.add_argument("--prob-threshold", type=float, default=None, help="foreground probability cut-off (default: the model's, 0.5)")
    s.add_argument("--split-depth", type=float, default=None, help="how deep the centerness must dip between two peaks to "
                   "keep two objects apart; lower splits more (default: the model's, 0.2; 0 = seeds by --seed-threshold)")
    s.add_argument("--nonconvex-split-depth", type=float, default=None, help="split objects that are not convex "
                   "(likely touching nuclei) again at this shallower depth; 0 = off (default: the model's: 0.05 for "
                   "nuclei-fluo, off for default)")
    s.add_argument("--seed-threshold", type=float, default=None, help="centerness cut-off for seeds when --split-depth is 0 (default: the model's)")
    s.add_argument("--min-size", type=int, default=None, help="remove objects smaller than this many pixels (default: the model's)")
    s.add_argument("--method", choices=["watershed", "flows"], default=None, help="how touching objects are separated: "
                   "watershed on centerness (nuclei) or following predicted flows (irregular cells; models with flow "
                   "maps only). Default: the model's (fine-tuning picks the better one on the annotations)")
    s.add_argument("--scale", type=_scale_arg, default=None, help="resize by this factor before segmenting, or 'auto': "
                   "a second pass at the size the model knows when the objects found are under 14 or over 30 px across (default: the model's)")
    s.add_argument("--tta", action="store_true", help="test-time augmentation: average over the four 90-degree "
                   "rotations (4x slower; helps dense histology)")
    s.add_argument("--denoise", choices=["auto", "off"], default=None, help="auto: grainy, photon-limited images are "
                   "smoothed before the network until their noise is that of a well-exposed image; others are left "
                   "as they are (default: auto)")
    s.add_argument("--tile", type=int, default=1024, help="tile side in pixels; lower it to use less memory (default: %(default)s)")
    st = s.add_argument_group("3D stacks and time-lapses")
    st.add_argument("--z-assembly", choices=["3d", "stitch"], default=None, help="Z stacks: 3d = segment the volume "
                    "as a whole (maps of XY, XZ and YZ planes, 3D watershed; the default), stitch = segment each XY "
                    "plane and link the planes by overlap (faster, weaker)")
    st.add_argument("--views-3d", choices=["all", "xy"], default=None, help="3d assembly: predict on the XY, XZ and "
                    "YZ planes (all, the default) or on XY planes only (xy, ~3x faster)")
    st.add_argument("--voxel-size", type=float, nargs=3, default=None, metavar=("Z", "Y", "X"), help="voxel size in "
                    "any one unit (default: from the file's metadata: ImageJ, OME-TIFF, OME-Zarr, bioio; else isotropic)")
    st.add_argument("--track", action="store_true", help="time-lapses (T axis): link each frame's objects to the "
                    "previous frame's by overlap so that an object keeps its id; also writes OUTDIR/<stem>_tracks.csv")
    big = s.add_argument_group("any size (block by block, OME-Zarr output, dask clusters)")
    big.add_argument("--output-format", choices=["tif", "zarr"], default=None, help="tif: one label TIFF per input; "
                     "zarr: OUTDIR/<name>.ome.zarr written block by block (default: zarr for .zarr inputs and inputs "
                     "over 512 MiB, tif otherwise)")
    big.add_argument("--block-size", type=_ints_arg, default=None, metavar="N[,N...]", help="block side per spatial "
                     "axis, e.g. 64,128,128 for ZYX (default: 64,128,128 for stacks, 512,512 for 2D; memory grows with it)")
    big.add_argument("--halo", type=_ints_arg, default=None, metavar="N[,N...]", help="context read around each block "
                     "per spatial axis (default: 8,96,96); objects smaller than the halo come out as on the whole image")
    big.add_argument("--labels-group", nargs="?", const="tower", default=None, metavar="NAME", help="OME-Zarr "
                     "inputs: write the labels into the input's own labels group (INPUT/labels/NAME, default name "
                     "tower; napari-ome-zarr opens them with the image) instead of OUTDIR")
    big.add_argument("--resume", action="store_true", help="keep the blocks an interrupted run already wrote "
                     "(OUTDIR/<name>.ome.zarr.part) and do the rest")
    big.add_argument("--scheduler", default=None, metavar="ADDRESS", help="run the blocks on this dask.distributed "
                     "scheduler (e.g. tcp://host:8786); each worker loads the model once")
    big.add_argument("--scheduler-file", default=None, metavar="FILE", help="the scheduler's JSON file (dask "
                     "scheduler --scheduler-file, dask-jobqueue, dask-mpi) instead of --scheduler")
    big.add_argument("--workers", type=int, default=None, metavar="N", help="start a local cluster of N worker "
                     "processes (1 thread each) for this run")
    s.set_defaults(func=cmd_segment)

    f = sub.add_parser("finetune", help="fine-tune a model on a few annotated images", description=(
        "Fine-tune from a base model on a few annotated images and save the result to OUTPUT "
        "(weights.safetensors + card.json), usable as 'segment --model OUTPUT'. Planes of stacks "
        "and movies that hold any annotation are used."))
    f.add_argument("--images", nargs="+", required=True, metavar="IMG", help="image files (or a folder)")
    f.add_argument("--labels", nargs="+", required=True, metavar="LAB", help="label files, one per image, same order and shape")
    f.add_argument("--output", required=True, metavar="DIR", help="model folder to write")
    f.add_argument("--sparse", action="store_true", help="labels are sparse: 0 = not annotated, 1 = background, >= 2 = objects")
    f.add_argument("--base", default="auto", help="auto (the bundled model that segments the annotations best), none, tower, "
                   "default, nuclei-fluo, cells, a saved model name or a model folder (default: %(default)s)")
    g = f.add_mutually_exclusive_group()
    g.add_argument("--max-minutes", type=float, default=3.0, help="training time budget (default: %(default)s)")
    g.add_argument("--epochs", type=int, default=None, help="train for N passes over the annotated pixels instead (deterministic)")
    f.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    f.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 1e-3 from a segmentation "
                   "model that already finds some of your objects, else 5e-3: from none, self-supervised weights, "
                   "or a model that finds almost none of them (AP@0.5 < 0.2 on your annotations))")
    f.add_argument("--encoder", default="auto", choices=["auto", "train", "keep"], help="train the encoder too, or keep "
                   "the base's and train the decoder and heads only (auto: keep it when the base is a segmentation "
                   "model that already segments your annotations well, AP@0.5 >= 0.55)")
    f.add_argument("--val-image", default=None, help="a held-out annotated image: the best weights on it are kept")
    f.add_argument("--val-labels", default=None, help="labels of --val-image")
    f.add_argument("--axes", default=None, help="axes of the images, e.g. YX, ZYX, TYX (default: from the file, else guessed)")
    f.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    f.set_defaults(func=cmd_finetune)

    pt = sub.add_parser("pretrain", help="self-supervised pretraining on unlabelled images", description=(
        "Pretrain the network on unlabelled images (every plane of 2D images, RGB, stacks and movies) "
        "and save it to OUTPUT (weights.safetensors + card.json) as a base for 'finetune --base OUTPUT'. "
        "tower = the TOWER method (restore corrupted views + InfoNCE); simclr and byol are the baselines. "
        "A checkpoint is written to OUTPUT every minute; --resume continues from it. "
        "Without --max-steps or --max-minutes, trains for 30 minutes."))
    pt.add_argument("--images", nargs="+", required=True, metavar="PATH", help="image files or folders (not recursive); unreadable files are skipped with a warning")
    pt.add_argument("--output", required=True, metavar="DIR", help="model folder to write (checkpoints go there too)")
    pt.add_argument("--method", default="tower", choices=["tower", "simclr", "byol"], help="pretraining method (default: %(default)s)")
    pt.add_argument("--max-steps", type=int, default=None, help="stop after N steps in all (counting steps before a --resume)")
    pt.add_argument("--max-minutes", type=float, default=None, help="stop after M minutes of training in all (default: 30 when no --max-steps)")
    pt.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.safetensors (same settings needed)")
    pt.add_argument("--base", default=None, metavar="MODEL", help="start from these weights instead of a random network: "
                    "'tower' (the bundled TOWER weights, restoration head included), 'default', or a model folder "
                    "(default: random)")
    pt.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="auto = CUDA, then MPS, then CPU")
    pt.add_argument("--workers", type=int, default=None, metavar="N",
                    help="processes that prepare batches ahead (default: none on the CPU, up to 8 on a GPU, "
                    "which one process cannot keep busy)")
    pt.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    pt.add_argument("--batch-size", type=int, default=None, help="regions per step, two views each (default: 16)")
    pt.add_argument("--crop", type=int, default=None, help="view side in pixels, a multiple of 16 (default: 128)")
    pt.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 1e-3)")
    pt.add_argument("--lambda-nce", type=float, default=None, help="tower: weight of InfoNCE against restoration (default: 0.1)")
    pt.add_argument("--transmitted-light", type=float, default=None, metavar="P",
                    help="tower: share of views rendered as phase contrast, DIC or brightfield (a proxy task for "
                    "corpora with few transmitted-light images; default 0)")
    pt.add_argument("--no-proxy", action="store_true", help="ablation (tower): no proxy-task corruption, plain augmented views")
    pt.add_argument("--no-nce", action="store_true", help="ablation (tower): no InfoNCE term")
    pt.add_argument("--no-restore", action="store_true", help="ablation (tower): no restoration term")
    pt.set_defaults(func=cmd_pretrain)

    m = sub.add_parser("models", help="list bundled and saved models", description="List the models that --model accepts by name.")
    m.set_defaults(func=cmd_models)

    e = sub.add_parser("export", help="pack a model into one zip to share (napari-tower or bioimage.io format)", description=(
        "Write MODEL (a name or model folder) to one zip. --format zip: napari-tower's own archive (weights + card). "
        "--format bioimageio: a bioimage.io model package (model format 0.5) that runs without napari-tower "
        "(TorchScript and PyTorch state dict weights, percentile normalisation, test tensors, a cover made from a "
        "prediction); when bioimageio.core is installed, 'bioimageio test' is run on it. Both load back with "
        "'segment --model FILE.zip' and give the same labels."))
    e.add_argument("model", metavar="MODEL", help="bundled or saved model name, or a model folder")
    e.add_argument("-o", "--output", required=True, metavar="FILE.zip", help="zip file to write")
    e.add_argument("--format", default="bioimageio", choices=["bioimageio", "zip"], help="(default: %(default)s)")
    e.add_argument("--image", default=None, metavar="IMG", help="bioimageio: a 2D gray image for the test tensors "
                   "and cover, centre-cropped to at most 256x256 (default: the bundled nuclei sample)")
    e.add_argument("--author", action="append", default=None, metavar="NAME", help="bioimageio: an author (repeat for "
                   "several; default: the card's, else 'napari-tower developers')")
    e.add_argument("--license", default=None, metavar="SPDX", help="bioimageio: licence of the weights (default: the "
                   "card's, else BSD-3-Clause)")
    e.add_argument("--no-check", action="store_true", help="bioimageio: do not run 'bioimageio test' even when "
                   "bioimageio.core is installed")
    e.set_defaults(func=cmd_export)
    return ap


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
