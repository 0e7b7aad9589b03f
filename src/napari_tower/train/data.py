"""Training samples: normalised image + targets + a mask of the pixels the loss may use."""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.normalize import percentile_normalize, to_single_channel
from .targets import seg_targets


@dataclass
class Sample:
    image: np.ndarray  # (Y, X) float32, normalised
    targets: np.ndarray  # (3, Y, X) float32
    valid: np.ndarray | None = None  # (Y, X) bool; None = every pixel is annotated
    labels: np.ndarray | None = None  # instance labels, kept for validation scores
    group: str = ""
    # long training only (train.sampling): the RGB image (3, Y, X) in [0, 1] for stain
    # variation, and how often a whole-cell sample is rendered in another modality instead
    rgb: np.ndarray | None = None
    render: float = 0.0


def make_sample(image: np.ndarray, labels: np.ndarray, rgb: bool, group: str = "") -> Sample:
    img = percentile_normalize(to_single_channel(image, rgb))
    labels = np.asarray(labels).astype(np.int32)
    return Sample(img, seg_targets(labels), None, labels, group)


# --- dsb2018 (../shared/data) --------------------------------------------------------


def dsb_index(root: Path) -> list[dict]:
    with open(Path(root) / "index.csv") as f:
        return list(csv.DictReader(f))


def dsb_split(rows: list[dict], val_fraction: float = 0.15) -> tuple[list[dict], list[dict]]:
    """Fixed, stratified train/validation split: by modality, ordered by a hash of the id."""
    train, val = [], []
    for modality in sorted({r["modality"] for r in rows}):
        group = sorted((r for r in rows if r["modality"] == modality), key=lambda r: hashlib.sha1(r["id"].encode()).hexdigest())
        n_val = max(1, round(len(group) * val_fraction))
        val += group[:n_val]
        train += group[n_val:]
    return train, val


def read_dsb(root: Path, row: dict) -> tuple[np.ndarray, np.ndarray]:
    from skimage.io import imread
    import tifffile

    img = imread(Path(root) / "images" / f"{row['id']}.png")
    lab = tifffile.imread(Path(root) / "labels" / f"{row['id']}.tif")
    return img, lab


def load_dsb_samples(root: Path, rows: list[dict]) -> list[Sample]:
    out = []
    for r in rows:
        img, lab = read_dsb(root, r)
        if img.ndim == 3 and img.shape[-1] == 4:
            img = img[..., :3]
        out.append(make_sample(img, lab, rgb=img.ndim == 3, group=r["modality"]))
    return out


# --- polyp_nuclei (../shared/data): dense fluorescence tissue, uint16 tiles ---------------

POLYP_GROUP = "fluorescence-tissue"


def polyp_source(tile_id: str) -> str:
    """The acquisition a tile was cut from (``Polyp12__10837_39273``): tiles of one share it."""
    return tile_id.split("__component")[0]


def polyp_split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Fixed validation split of whole tiles: from every acquisition, the tile whose id has the
    smallest sha1 is held out (4 of the 24 tiles, one per acquisition, so that validation
    covers every polyp/field of the set and no tile is both trained and validated on)."""
    by_source: dict[str, list[dict]] = {}
    for r in rows:
        by_source.setdefault(polyp_source(r["id"]), []).append(r)
    val_ids = {min(g, key=lambda r: hashlib.sha1(r["id"].encode()).hexdigest())["id"] for g in by_source.values()}
    return [r for r in rows if r["id"] not in val_ids], [r for r in rows if r["id"] in val_ids]


def read_polyp(root: Path, row: dict) -> tuple[np.ndarray, np.ndarray]:
    import tifffile

    return (tifffile.imread(Path(root) / "images" / f"{row['id']}.tif"),
            tifffile.imread(Path(root) / "labels" / f"{row['id']}.tif"))


def load_polyp_samples(root: Path, rows: list[dict], group: str = POLYP_GROUP, upsample: float = 1.0) -> list[Sample]:
    """Tiles as samples; ``upsample`` > 1 enlarges them first (labels by nearest neighbour, targets
    computed after), so that training sees these ~12 px nuclei also at the size ``scale="auto"``
    brings them to at inference (a second pass at up to 2x for nuclei under 14 px)."""
    from skimage.transform import rescale

    out = []
    for r in rows:
        img, lab = read_polyp(root, r)
        img, lab = np.squeeze(img).astype(np.float32), np.squeeze(lab)
        if upsample != 1.0:
            img = rescale(img, upsample, order=1, preserve_range=True, anti_aliasing=False).astype(np.float32)
            lab = rescale(lab, upsample, order=0, preserve_range=True, anti_aliasing=False).astype(lab.dtype)
        sample = make_sample(img, lab, rgb=False, group=group)
        sample.image = sample.image.astype(np.float32, copy=False)
        out.append(sample)
    return out
