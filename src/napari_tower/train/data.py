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
