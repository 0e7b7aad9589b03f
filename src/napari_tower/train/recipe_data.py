"""Training samples and fixed validation items for a recipe's data sources."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.normalize import rgb_kind
from .data import (POLYP_GROUP, Sample, dsb_index, dsb_split, load_polyp_samples, make_sample, polyp_split,
                   read_dsb, read_polyp)
from .microscope import low_light
from .recipe_spec import Recipe, Source, ValItem

# what a card says of each source (the licence obliges us to credit the CC BY ones)
CREDITS = {
    "dsb2018": "2018 Data Science Bowl stage-1 training set (BBBC038, Caicedo et al. 2019), CC0",
    "polyp_nuclei": "polyp_nuclei: T. Pecot, 'Deep learning for biologists' course repository, "
                    "Polyp_Nuclei/Training, CC BY 4.0",
    "bbbc030": "BBBC030v1 (Koos et al., Sci Rep 2016), Broad Bioimage Benchmark Collection, CC BY 3.0",
    "synthetic_cells": "synthetic cell layouts rendered by napari_tower.train.render_cells",
}
BASE_CREDIT = "through its base model"


def data_credits(kinds: list[str], base: str | None, listed: list[str] | tuple = ()) -> list[str]:
    """A card's data credits: its sources' (or those it already ``listed``), and the data of the
    base model its weights started from."""
    import json

    from ..model.weights import CARD, resolve_model_dir

    out = list(listed) or [CREDITS[k] for k in kinds if k in CREDITS]
    if base and base not in ("none", "tower") and not any(d.startswith(BASE_CREDIT) for d in out):
        base_card = json.loads((resolve_model_dir(base) / CARD).read_text())
        out.append(f"{BASE_CREDIT} {base}: " + str((base_card.get("training") or {}).get("data", "")))
    return out


CELLS_GROUP = "cells-dic"
SYNTHETIC_GROUP = "cells-synthetic"


def _rescaled(img: np.ndarray, lab: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    from skimage.transform import rescale

    if factor == 1.0:
        return img, lab
    ch = -1 if img.ndim == 3 else None
    img = rescale(img.astype(np.float32), factor, order=1, preserve_range=True, anti_aliasing=factor < 1,
                  channel_axis=ch).astype(np.float32)
    lab = rescale(lab, factor, order=0, preserve_range=True, anti_aliasing=False).astype(lab.dtype)
    return img, lab


def _dsb(root: Path, src: Source, recipe: Recipe) -> tuple[list[Sample], list[ValItem]]:
    rows = [r for r in dsb_index(root) if src.modalities is None or r["modality"] in src.modalities]
    train_rows, val_rows = dsb_split(rows)
    samples = []
    for r in train_rows:
        img, lab = read_dsb(root, r)
        img = img[..., :3] if img.ndim == 3 else img
        stain = img.ndim == 3 and rgb_kind(img)[0] == "stain"
        s = make_sample(img, lab, rgb=img.ndim == 3, group=r["modality"])
        if stain:
            s.rgb = np.moveaxis(img.astype(np.float32) / 255.0, -1, 0).copy()
        samples.append(s)
    val = []
    for r in val_rows:
        img, lab = read_dsb(root, r)
        img = img[..., :3] if img.ndim == 3 else img
        val.append(ValItem(img, lab, img.ndim == 3, r["modality"], r["id"]))
    fluo = sorted((v for v in val if v.group == "fluorescence"), key=lambda v: v.name)[: recipe.validation.low_light_images]
    for photons in recipe.validation.low_light_photons:
        for i, v in enumerate(fluo):
            noisy = low_light(v.image, photons, np.random.default_rng(1000 + i))
            val.append(ValItem(noisy, v.labels, False, f"low-light-{photons:g}", v.name))
    return samples, val


def _polyp(root: Path, src: Source) -> tuple[list[Sample], list[ValItem]]:
    train_rows, val_rows = polyp_split(dsb_index(root))
    samples = load_polyp_samples(root, train_rows, upsample=src.upsample)
    val = []
    for r in val_rows:
        img, lab = read_polyp(root, r)
        val.append(ValItem(np.squeeze(img), np.squeeze(lab), False, POLYP_GROUP, r["id"]))
    return samples, val


def _bbbc030(root: Path, src: Source, recipe: Recipe) -> tuple[list[Sample], list[ValItem]]:
    """DIC CHO cells (~54 px across); the source's own train / validation split. Validation
    images stay at the source's size: the product's scale="auto" sizes a user's image too."""
    import tifffile
    from skimage.io import imread

    from .render_cells import render

    samples, val = [], []
    for r in dsb_index(root):
        img = imread(root / "images" / f"{r['id']}.png")
        img = img[..., 0] if img.ndim == 3 else img
        lab = tifffile.imread(root / "labels" / f"{r['id']}.tif")
        if r["split"] == "train":
            img_s, lab_s = _rescaled(img, lab, src.upsample)
            s = make_sample(img_s, lab_s, rgb=False, group=CELLS_GROUP)
            s.render = src.render
            samples.append(s)
        elif r["split"] == "validation":
            val.append(ValItem(img, lab, False, CELLS_GROUP, r["id"]))
    for modality in recipe.validation.rendered:
        for i, v in enumerate([v for v in val if v.group == CELLS_GROUP][: recipe.validation.rendered_images]):
            # rendered at the training size, shown at the source's: validation runs as a user's image would
            _, lab_s = _rescaled(v.image, v.labels, src.upsample)
            img, _ = _rescaled(render(lab_s, np.random.default_rng(2000 + i), modality), lab_s, 1 / src.upsample)
            img = img[: v.labels.shape[0], : v.labels.shape[1]]
            val.append(ValItem(img, v.labels, False, f"cells-{modality}", v.name))
    return samples, val


def _synthetic(src: Source, seed: int) -> list[Sample]:
    from .render_cells import random_layout, render

    rng = np.random.default_rng(10_000 + seed)
    out = []
    for _ in range(src.count):
        lab = random_layout(src.size, rng)
        s = make_sample(render(lab, rng), lab, rgb=False, group=SYNTHETIC_GROUP)
        s.render = 1.0
        out.append(s)
    return out


def load_recipe_data(recipe: Recipe, data_root: Path) -> tuple[list[Sample], list[ValItem]]:
    samples: list[Sample] = []
    val: list[ValItem] = []
    for src in recipe.sources:
        if src.kind == "synthetic_cells":
            samples += _synthetic(src, recipe.seed)
            continue
        root = Path(data_root) / src.kind
        if not (root / "index.csv").is_file():
            raise FileNotFoundError(f"{root}: no index.csv; --data-root must hold the folder {src.kind}/")
        if src.kind == "dsb2018":
            s, v = _dsb(root, src, recipe)
        elif src.kind == "polyp_nuclei":
            s, v = _polyp(root, src)
        else:
            s, v = _bbbc030(root, src, recipe)
        samples += s
        val += v
    return samples, val
