"""Segment an image block by block into an OME-Zarr, in this process or on dask.distributed.

Two passes, both resumable:
1. each block is read with its halo, segmented by ``predict.segment.segment_iter`` (the
   same model and post-processing as a whole image), cropped to its interior with ids
   1..n, written to the scratch array ``_local``; its count and face planes go to
   ``_blocks/<i>.npz``, written last and atomically, so it marks the block as done;
2. ids are offset per block, objects meeting across faces merged, and every block's
   labels rewritten into dataset ``0`` through one lookup table.
All of it happens in ``OUT.part``, renamed to ``OUT`` when complete. A block task is
idempotent, so dask may rerun it on another worker when one dies; ``resume`` keeps the
blocks already marked done.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..config import PredictConfig
from ..errors import Cancelled, InputError
from ..io.lazy import LazyImage, intensity_range
from ..io.omezarr import create_labels, finish, part_path
from ..predict.axes import check_axes, guess_axes
from ..predict.segment import segment_iter
from ..progress import Progress, run_to_end
from .grid import Block, block_grid, chunk_shape, grid_shape
from .stitch import crop_relabel, face_pairs, faces_of, merge_mapping

DEFAULT_BLOCK = {"T": 1, "Z": 64, "Y": 512, "X": 512}
# Z stacks hold several float maps per voxel for the 3D assembly, and the network's XY-plane
# activations grow with the outer block: one process on 16-plane stacks peaked at 1049 MiB
# with 512-pixel blocks, 827 MiB with 320-pixel ones (docs/benchmarks/any-size.md); a 56-plane
# block of 256 (outer 56x479x479) peaked at 1027 MiB; on the 7x7 grid 224 peaked at
# 1023 MiB on one machine and 1072 on another, 192 at 1051, 128 at 935 (the 3D assembly of the
# outer block dominates, docs/benchmarks/any-size.md), so 128: within 1 GiB with margin, ~1.7x the time
DEFAULT_BLOCK_3D = {"T": 1, "Z": 64, "Y": 128, "X": 128}
# the network's maps 64 px inside a cut differ by up to 0.14 from the whole image's, 96 px
# inside by under 0.01 (receptive field): 96 px of context makes blocks match the whole image
DEFAULT_HALO = {"T": 0, "Z": 8, "Y": 96, "X": 96}
# outer blocks start on multiples of this in Y and X: the network's strides (its input
# divisor, 32 for the bundled models) then fall on the same pixels as for the whole image
ALIGN = 32
CHUNK_TARGET = {"T": 1, "Z": 16, "Y": 256, "X": 256}
SCRATCH = ("_local", "_blocks", "run.json")

_MODELS: dict = {}  # one loaded model per worker process (and per model reference)


def _model(model):
    """A model object, or a picklable loader (functools.partial) called once per process."""
    if isinstance(model, functools.partial):
        key = (getattr(model.func, "__qualname__", ""), model.args, tuple(sorted(model.keywords.items())))
        if key not in _MODELS:
            _MODELS[key] = model()
        return _MODELS[key]
    return model


def _per_axis(value, axes: str, default: dict, name: str) -> tuple[int, ...]:
    """Per-axis sizes from None (defaults), an int (spatial axes) or a sequence for the
    spatial axes (T is always 1 block / 0 halo)."""
    spatial = [a for a in axes if a != "T"]
    if value is None:
        vals = [default[a] for a in spatial]
    elif isinstance(value, int):
        vals = [value] * len(spatial)
    else:
        vals = [int(v) for v in value]
        if len(vals) != len(spatial):
            raise InputError(f"{name} needs {len(spatial)} values for axes {''.join(spatial)}, got {len(vals)}")
    it = iter(vals)
    return tuple(default["T"] if a == "T" else next(it) for a in axes)


def _run_block(block: Block, model, image: LazyImage, axes: str, cfg: PredictConfig, part: str,
               skip_below: float, should_stop=None) -> int:
    """Pass 1 for one block (idempotent); returns its number of objects."""
    import zarr

    marker = Path(part) / "_blocks" / f"{block.index}.npz"
    if marker.is_file():
        return int(np.load(marker)["n"])
    data = image.read(block.outer)
    lo, hi = cfg.norm_range
    if skip_below > 0 and (float(data.max(initial=lo)) - lo) / max(hi - lo, 1e-6) < skip_below:
        labels, n = np.zeros(block.shape, np.uint32), 0  # nothing bright enough to be a nucleus
    else:
        lab = run_to_end(segment_iter(_model(model), data, axes, cfg, should_stop))
        labels, n = crop_relabel(lab, block.crop)
    zarr.open_array(str(Path(part) / "_local"), mode="r+")[block.interior] = labels
    merge_axes = [i for i, a in enumerate(axes) if a != "T"]
    tmp = marker.with_name(f"{block.index}.tmp.npz")
    np.savez(tmp, n=n, **faces_of(labels, merge_axes))
    os.replace(tmp, marker)
    return n


def _relabel_block(block: Block, part: str, offset: int, lut: np.ndarray) -> None:
    """Pass 2 for one block: local ids -> final ids (idempotent)."""
    import zarr

    g = zarr.open_group(str(part), mode="r+")
    loc = np.asarray(g["_local"][block.interior]).astype(np.int64)
    out = np.where(loc > 0, lut[np.where(loc > 0, loc + offset, 0)], 0).astype(np.uint32)
    g["0"][block.interior] = out


def _merge(grid: list[Block], part: Path, axes: str, counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Offsets per block and the lookup table that merges objects meeting across faces."""
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    by_pos = {b.position: b for b in grid}
    pairs = []
    for b in grid:
        fb = np.load(part / "_blocks" / f"{b.index}.npz")
        for ax, a in enumerate(axes):
            if a == "T":
                continue
            nb = by_pos.get(b.position[:ax] + (b.position[ax] + 1,) + b.position[ax + 1:])
            if nb is None:
                continue
            fn = np.load(part / "_blocks" / f"{nb.index}.npz")
            low = fb[f"hi{ax}"].astype(np.int64)
            high = fn[f"lo{ax}"].astype(np.int64)
            low[low > 0] += offsets[b.index]
            high[high > 0] += offsets[nb.index]
            pairs.append(face_pairs(low, high))
    pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    return offsets, merge_mapping(int(sum(counts)), pairs)


def segment_blocks_iter(
    model,
    image: LazyImage,
    output,
    cfg: PredictConfig,
    axes: str | None = None,
    block_shape=None,
    halo=None,
    client=None,
    resume: bool = False,
    should_stop: Callable[[], bool] | None = None,
    skip_below: float = 0.05,
    retries: int = 3,
    ngff_version: str = "0.4",
) -> Iterator[Progress]:
    """Segment ``image`` into the OME-Zarr ``output``; yields a Progress per block.

    ``model`` is a loaded model (this process) or, with a ``client``, a picklable loader
    (``functools.partial(load_model, path, device)``) each worker calls once. Blocks whose
    brightest voxel is under ``skip_below`` of the image's intensity range are written
    empty without running the network. The last report's ``result`` is the output path.
    """
    axes = check_axes(image.shape, (axes or image.axes or guess_axes(image.shape)).upper())
    if axes.endswith("C"):
        raise InputError("block-wise segmentation takes single-channel images (axes YX, ZYX, TYX, TZYX)")
    block_shape = _per_axis(block_shape, axes, DEFAULT_BLOCK_3D if "Z" in axes else DEFAULT_BLOCK, "block size")
    block_shape = tuple(min(b, n) for b, n in zip(block_shape, image.shape))
    halo = _per_axis(halo, axes, DEFAULT_HALO, "halo")
    if cfg.norm_range is None:
        cfg = cfg.model_copy(update={"norm_range": intensity_range(image)})
    if getattr(cfg, "voxel_size", False) is None and image.voxel_size is not None:
        cfg = cfg.model_copy(update={"voxel_size": tuple(image.voxel_size)})  # the file's, unless the user gave one
    min_outer = tuple(16 if a in "YX" else 1 for a in axes)
    align = tuple(ALIGN if a in "YX" else 1 for a in axes)
    grid = block_grid(image.shape, block_shape, halo, min_outer, align)
    final = Path(output)
    part = part_path(final)
    run = {"shape": list(image.shape), "axes": axes, "block": list(block_shape), "halo": list(halo),
           "cfg": cfg.model_dump(mode="json"), "skip_below": skip_below}
    if part.exists():
        same = (part / "run.json").is_file() and json.loads((part / "run.json").read_text()) == run
        if resume and not same:
            raise InputError(f"cannot resume {part}: it was started with other settings (remove it or drop --resume)")
        if not resume:
            shutil.rmtree(part)
    # along an axis with a single block any chunk is written by one block only: do not let
    # an awkward side (e.g. a prime number of pixels) shrink the chunks to slivers
    targets = [CHUNK_TARGET[a] for a in axes]
    chunks = tuple(min(t, n) if g == 1 else c for c, t, n, g in
                   zip(chunk_shape(block_shape, targets), targets, image.shape, grid_shape(image.shape, block_shape)))
    create_labels(part, image.shape, chunks, axes, image.voxel_size, name=final.name, extra_arrays=("_local",),
                  version=ngff_version)
    (part / "_blocks").mkdir(exist_ok=True)
    (part / "run.json").write_text(json.dumps(run))

    n_blocks = len(grid)
    total = 2 * n_blocks
    done = {int(p.name.split(".")[0]) for p in (part / "_blocks").glob("*.npz") if ".tmp." not in p.name}
    todo = [b for b in grid if b.index not in done]
    step = n_blocks - len(todo)
    yield Progress(step, total, f"{step} of {n_blocks} blocks already written" if step else f"{n_blocks} blocks")
    args = dict(model=model, image=image, axes=axes, cfg=cfg, part=str(part), skip_below=skip_below)
    if client is None:
        for b in todo:
            if should_stop is not None and should_stop():
                raise Cancelled("segmentation cancelled")
            _run_block(b, should_stop=should_stop, **args)
            step += 1
            yield Progress(step, total, f"block {step}/{n_blocks}")
    elif todo:
        from distributed import as_completed

        if image.path is None:  # an in-memory array goes to the cluster once, not with every task
            args["image"] = client.scatter(image, broadcast=False)
        futures = client.map(_run_block, todo, pure=False, retries=retries, **args)
        try:
            for fut in as_completed(futures):
                fut.result()  # a block that failed on every retry stops the run here
                step += 1
                yield Progress(step, total, f"block {step}/{n_blocks}")
                if should_stop is not None and should_stop():
                    raise Cancelled("segmentation cancelled")
        finally:
            client.cancel([f for f in futures if not f.done()])

    counts = [int(np.load(part / "_blocks" / f"{b.index}.npz")["n"]) for b in grid]
    offsets, lut = _merge(grid, part, axes, counts)
    n_final = int(lut.max(initial=0))
    if client is None:
        for b in grid:
            if should_stop is not None and should_stop():
                raise Cancelled("segmentation cancelled")
            _relabel_block(b, str(part), int(offsets[b.index]), lut)
            step += 1
            yield Progress(step, total, f"writing block {step - n_blocks}/{n_blocks}")
    else:
        from distributed import as_completed

        lut_f = client.scatter(lut, broadcast=True)
        futures = [client.submit(_relabel_block, b, str(part), int(offsets[b.index]), lut_f, pure=False,
                                 retries=retries) for b in grid]
        for fut in as_completed(futures):
            fut.result()
            step += 1
            yield Progress(step, total, f"writing block {step - n_blocks}/{n_blocks}")
    out = finish(part, final, SCRATCH, ngff_version)
    yield Progress(total, total, f"done: {n_final} objects", result=out)
