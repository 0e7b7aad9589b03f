"""The bundled default model on held-out dsb2018 validation images of each modality.

Thresholds sit well below the model's measured validation scores (docs/benchmarks/2d.md)
and well above what a broken or untrained model reaches, so a regression fails here.
"""
from __future__ import annotations

import numpy as np
import pytest

import napari_tower
from napari_tower.metrics import average_precision, dice
from napari_tower.train.data import dsb_index, dsb_split, read_dsb

pytestmark = [pytest.mark.data, pytest.mark.slow]

# modality: (images scored, min mean Dice, min mean AP@0.5)
THRESHOLDS = {"fluorescence": (8, 0.88, 0.70), "histology": (6, 0.82, 0.47), "brightfield": (2, 0.80, 0.45)}
# the default model's scores on the whole validation split are in docs/benchmarks/2d.md
# (2026-11-26, --arch fast: fluorescence AP 0.82, histology 0.56, brightfield 0.59)


@pytest.mark.parametrize("modality", sorted(THRESHOLDS))
def test_default_model_on_validation_split(dsb_root, model, modality):
    n, min_dice, min_ap = THRESHOLDS[modality]
    _, val = dsb_split(dsb_index(dsb_root))
    rows = [r for r in val if r["modality"] == modality][:n]
    assert rows, f"no {modality} images in the validation split"
    scores = []
    for r in rows:
        img, truth = read_dsb(dsb_root, r)
        labels = napari_tower.segment(img, model=model)
        assert labels.shape == truth.shape
        scores.append((dice(labels, truth), average_precision(labels, truth)))
    mean_dice, mean_ap = np.mean(scores, axis=0)
    assert mean_dice >= min_dice, f"{modality}: Dice {mean_dice:.3f} < {min_dice}"
    assert mean_ap >= min_ap, f"{modality}: AP@0.5 {mean_ap:.3f} < {min_ap}"


def test_validation_split_is_disjoint_and_stable(dsb_root):
    rows = dsb_index(dsb_root)
    train, val = dsb_split(rows)
    assert not {r["id"] for r in train} & {r["id"] for r in val}
    assert len(train) + len(val) == len(rows)
    card_val = napari_tower.load_model("default", "cpu").card["training"]["val_ids"]
    assert sorted(card_val) == sorted(r["id"] for r in val)
