"""The bundled `cells` model: whole cells on the first click, chosen by --objects cells,
--model cells, auto's fallback for specks, and fine-tuning's base="auto"."""
from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import tifffile

import napari_tower
from napari_tower.errors import FitWarning, ModelError
from napari_tower.metrics import average_precision

from conftest import DSB

CELLS = DSB.parent / "bbbc030"


def _validation_dic(n: int):
    """The first n bbbc030 validation images (never trained on; the checkpoint was selected on
    all 20 of them) with their labels."""
    import csv

    from skimage.io import imread

    if not (CELLS / "index.csv").is_file():
        pytest.skip(f"bbbc030 not found at {CELLS} (../shared/data beside the repo)")
    rows = [r for r in csv.DictReader(open(CELLS / "index.csv")) if r["split"] == "validation"][:n]
    out = []
    for r in rows:
        img = imread(CELLS / "images" / f"{r['id']}.png")
        out.append((img[..., 0] if img.ndim == 3 else img, tifffile.imread(CELLS / "labels" / f"{r['id']}.tif")))
    return out


@pytest.mark.data
def test_the_cells_model_segments_held_out_dic_cells_and_nuclei_models_do_not():
    scores = {"cells": [], "default": []}
    for img, truth in _validation_dic(3):
        for model in scores:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FitWarning)
                scores[model].append(average_precision(napari_tower.segment(img, model=model, device="cpu"), truth))
    # the card's validation AP@0.5 over all 20 is 0.83; a nuclei model finds specks (~0)
    assert np.mean(scores["cells"]) > 0.6 and np.mean(scores["cells"]) > np.mean(scores["default"]) + 0.4, scores


def test_objects_cells_and_model_cells_take_the_cells_model(tmp_path):
    from napari_tower._sample_data import cells_movie

    f = tmp_path / "frame.tif"
    tifffile.imwrite(f, cells_movie()[0])
    for flags in (["--objects", "cells"], ["--model", "cells"]):
        r = subprocess.run([sys.executable, "-m", "napari_tower.cli", "segment", str(f), "-o", str(tmp_path / "o"),
                            "--device", "cpu", *flags], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        assert "model cells" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert tifffile.imread(tmp_path / "o" / "frame.tif").max() > 20  # cells, not nothing


def test_auto_gives_specks_to_the_cells_model_and_says_so():
    from napari_tower._sample_data import cells_movie, cells_movie_labels

    frame, truth = cells_movie()[0], cells_movie_labels()[0]
    with pytest.warns(FitWarning, match="segmented as whole cells with the cells model"):
        auto = napari_tower.segment(frame, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        nuclei = napari_tower.segment(frame, device="cpu", objects="nuclei")
    assert np.array_equal(auto, napari_tower.segment(frame, model="cells", device="cpu"))
    assert average_precision(auto, truth) > average_precision(nuclei, truth) + 0.05


def test_a_doubtful_stain_stays_with_the_nuclei_model():
    """An H&E image whose nuclei result is flagged is reported, not handed to the cells model
    (trained on no colour stain): on this dsb2018 histology image the cells model scored
    AP@0.5 0.05 against the nuclei model's 0.33 (benchmarks.routing --segment, 2026-12-07)."""
    from napari_tower.io.files import read_image

    path = DSB / "images" / "57bd029b19c1.png"
    if not path.is_file():
        pytest.skip(f"dsb2018 not found at {DSB} (../shared/data beside the repo)")
    image, axes = read_image(path)
    with pytest.warns(FitWarning, match="does not look like what the model knows") as record:
        auto = napari_tower.segment(image, axes=axes, device="cpu")
    assert not any("cells model" in str(w.message) for w in record)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        assert np.array_equal(auto, napari_tower.segment(image, axes=axes, model="default", device="cpu"))


def test_objects_cells_without_a_cells_model_is_one_clear_error(monkeypatch):
    from napari_tower.model import choice

    monkeypatch.setattr(choice, "cells_available", lambda: False)
    with pytest.raises(ModelError, match="no 'cells' model is installed"):
        choice.model_for_objects("auto", "cells")
    assert choice.model_for_objects("auto", "nuclei") == "auto"


def test_finetuning_whole_cells_starts_from_the_cells_model(tmp_path):
    from napari_tower._sample_data import cells_movie, cells_movie_labels
    from napari_tower.model.weights import load_network

    img, lab = cells_movie()[[0, 9]], cells_movie_labels()[[0, 9]]
    out = napari_tower.finetune(img, lab, axes="TYX", epochs=1, seed=0, device="cpu", output=tmp_path / "m")
    card = load_network(out)[1]["training"]
    assert card["base"] == "cells", card["base_choice"]
    assert card["base_choice"]["cells"] > max(v for k, v in card["base_choice"].items() if k != "cells")


def test_finetuning_nuclei_starts_from_a_nuclei_model(tmp_path, small_image):
    out = napari_tower.finetune(*small_image, epochs=1, seed=0, device="cpu", output=tmp_path / "m")
    from napari_tower.model.weights import load_network

    assert load_network(out)[1]["training"]["base"] in ("default", "nuclei-fluo")


def test_large_cells_keep_their_area_under_the_cells_models_auto_scale():
    # the sample's cells enlarged 3x (~90 px across, as in a ~1 Mpx phase-contrast image): the
    # half-size first look cuts them into pieces and measures them small; the pass enlarged
    # from that used to lose nearly all of them (foreground Dice 0.03 over 8 frames)
    from skimage.transform import rescale

    from napari_tower._sample_data import cells_movie, cells_movie_labels
    from napari_tower.metrics import dice

    img = rescale(cells_movie()[4].astype(np.float32), 3, order=1)
    truth = np.kron(cells_movie_labels()[4], np.ones((3, 3), np.int32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        labels = napari_tower.segment(img, model="cells", device="cpu")
    assert dice(labels, truth) > 0.6
