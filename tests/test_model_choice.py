"""model="auto" (the default): the fluorescence specialist for 2D fluorescence, the general
model for stains, brightfield and Z stacks, decided once per image."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_tower
from napari_tower.cli import main
from napari_tower.errors import ModelError
from napari_tower.model.choice import FLUORESCENCE, GENERAL

DATA = Path(napari_tower.__file__).parent / "data"


def _sample():
    return tifffile.imread(DATA / "nuclei_image.tif")


def test_bundled_images_are_routed_by_modality():
    img = _sample()
    assert napari_tower.choose_model(img) == FLUORESCENCE
    assert napari_tower.choose_model(np.stack([img] * 3, axis=-1)) == FLUORESCENCE  # gray stored as RGB
    one_lit = np.zeros(img.shape + (3,), img.dtype)
    one_lit[..., 1] = img
    assert napari_tower.choose_model(one_lit) == FLUORESCENCE  # a green-channel export
    assert napari_tower.choose_model(img.max() - img) == GENERAL  # dark nuclei on a bright background
    assert napari_tower.choose_model(np.stack([img] * 4), axes="TYX") == FLUORESCENCE
    assert napari_tower.choose_model(tifffile.imread(DATA / "nuclei3d_image.tif")) == GENERAL  # Z stacks
    assert napari_tower.choose_model(np.zeros((64, 64), np.uint8)) == GENERAL  # nothing to go on


@pytest.mark.data
def test_dsb_modalities_are_routed(dsb_root):
    from skimage.io import imread

    rows = list(csv.DictReader(open(dsb_root / "index.csv")))
    for modality, expected in (("fluorescence", FLUORESCENCE), ("histology", GENERAL), ("brightfield", GENERAL)):
        picked = [r for r in rows if r["modality"] == modality][:8]
        got = {napari_tower.choose_model(imread(dsb_root / "images" / f"{r['id']}.png")) for r in picked}
        assert got == {expected}, modality


def test_auto_is_the_chosen_models_labels_and_the_cli_says_which(tmp_path, capsys):
    img = _sample()
    auto = napari_tower.segment(img, device="cpu")
    assert np.array_equal(auto, napari_tower.segment(img, model=FLUORESCENCE, device="cpu"))
    tifffile.imwrite(tmp_path / "fluo.tif", img)
    tifffile.imwrite(tmp_path / "bright.tif", img.max() - img)
    assert main(["segment", str(tmp_path / "fluo.tif"), str(tmp_path / "bright.tif"), "-o", str(tmp_path / "out"),
                 "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "fluo.tif: " in err and f"model {FLUORESCENCE})" in err and f"model {GENERAL})" in err
    assert np.array_equal(tifffile.imread(tmp_path / "out" / "fluo.tif"), auto)


def test_auto_is_not_a_model_to_load_or_export():
    with pytest.raises(ModelError, match="per image"):
        napari_tower.load_model("auto")
    assert main(["models"]) == 0
