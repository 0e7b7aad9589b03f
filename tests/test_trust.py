"""A result that does not fit what the model knows is flagged: CLI warning line, API warning.

Whole cells in DIC (bbbc030) seen by the nuclei models come back as specks; the nuclei
validation images must not be flagged.
"""
from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import tifffile

import napari_tower
from napari_tower.errors import FitWarning
from napari_tower.predict.trust import judge, signals

from conftest import DSB

CELLS = DSB.parent / "bbbc030"


def _dic(i: int = 0) -> np.ndarray:
    from skimage.io import imread

    if not (CELLS / "index.csv").is_file():
        pytest.skip(f"bbbc030 not found at {CELLS} (../shared/data beside the repo)")
    img = imread(CELLS / "images" / f"cho{i + 1:02d}.png")
    return img[..., 0] if img.ndim == 3 else img


def test_specks_are_judged_unfit_and_few_round_objects_fit():
    specks = np.zeros((256, 256), np.int32)
    for i in range(60):  # 60 specks of 9 px
        y, x = divmod(i, 10)
        specks[20 * y + 5 : 20 * y + 8, 20 * x + 5 : 20 * x + 8] = i + 1
    fit = judge(specks)
    assert not fit.ok and "specks" in fit.reason and "--model cells" in fit.advice
    nuclei = np.zeros((256, 256), np.int32)
    for i in range(25):
        y, x = divmod(i, 5)
        nuclei[50 * y + 10 : 50 * y + 30, 50 * x + 10 : 50 * x + 30] = i + 1
    assert judge(nuclei).ok
    assert judge(specks[:40, :40]).ok  # a handful of small objects is an answer, not noise
    assert judge(np.stack([specks] * 3), stack=True).ok  # Z stacks are not judged
    movie = signals(np.stack([specks, specks]))
    assert movie["objects"] == 120 and movie["speck_share"] == 1.0


@pytest.mark.data
def test_nuclei_validation_images_are_not_flagged(dsb_root):
    from skimage.io import imread

    from napari_tower.train.data import dsb_index, dsb_split

    _, val = dsb_split(dsb_index(dsb_root))
    flagged = []
    for r in val[::3]:
        img = imread(dsb_root / "images" / f"{r['id']}.png")
        img = img[..., :3] if img.ndim == 3 else img
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            napari_tower.segment(img, device="cpu", axes="YXC" if img.ndim == 3 else "YX")
        flagged += [r["id"] for w in caught if issubclass(w.category, FitWarning)]
    assert not flagged


@pytest.mark.data
def test_whole_cells_seen_by_a_nuclei_model_warn_in_the_api_and_the_cli(tmp_path):
    img = _dic(0)
    with pytest.warns(FitWarning, match="does not look like what the model knows"):
        napari_tower.segment(img, model="nuclei-fluo", device="cpu")
    f = tmp_path / "dic.tif"
    tifffile.imwrite(f, img)
    r = subprocess.run([sys.executable, "-m", "napari_tower.cli", "segment", str(f), "-o", str(tmp_path / "out"),
                        "--model", "nuclei-fluo", "--device", "cpu"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("napari-tower: warning:")]
    assert len(lines) == 1 and str(f) in lines[0] and "--model cells" in lines[0], r.stderr
    assert (tmp_path / "out" / "dic.tif").is_file()  # the labels are still written


@pytest.mark.gui
@pytest.mark.data
def test_the_widget_shows_why_a_result_is_not_to_be_trusted(make_napari_viewer, qtbot, run_widget):
    from napari_tower._widgets.segment_widget import SegmentWidget

    viewer = make_napari_viewer()
    viewer.add_image(_dic(1)[:512, :512], name="dic")
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._objects.value = "nuclei"  # the nuclei models only: their result is specks here
    run_widget(widget)
    assert widget.last_error is None
    assert "dic TOWER labels" in viewer.layers  # the result is still shown
    # shown beside the result (the test viewer's window itself is not shown, so ask Qt whether it is hidden)
    assert not widget._fit.native.isHidden() and "does not look like" in widget._fit.value
    # a run that fits clears the message
    from napari_tower._sample_data import sample_image

    viewer.add_image(sample_image(), name="nuclei")
    widget._image.value = viewer.layers["nuclei"]
    run_widget(widget)
    assert widget._fit.native.isHidden()


@pytest.mark.gui
def test_a_layer_that_names_its_axes_is_taken_at_its_word(make_napari_viewer):
    from napari_tower._sample_data import cells_sample
    from napari_tower._widgets.segment_widget import layer_axes

    viewer = make_napari_viewer()
    (img, meta, _), _ = cells_sample()
    movie = viewer.add_image(img, **meta)  # as File > Open Sample > Cells loads it
    assert layer_axes(movie, None) == "TYX"
    assert layer_axes(viewer.add_image(img), None) == "ZYX"  # unnamed: a 3D array is a Z stack
    assert layer_axes(movie, "ZYX") == "ZYX"  # the widget's own choice wins


def test_a_model_unsure_of_much_of_the_image_is_not_trusted():
    labels = np.zeros((100, 100), np.int32)
    labels[10:30, 10:30] = 1  # one good-looking object: the specks rule has nothing to say
    unsure = {"unsure": 900, "sure": 1000, "pixels": 10_000}
    decisive = {"unsure": 200, "sure": 1000, "pixels": 10_000}
    empty = {"unsure": 10, "sure": 0, "pixels": 10_000}  # a field without objects: no ratio
    fit = judge(labels, maps=unsure)
    assert not fit.ok and "unsure" in fit.reason
    assert judge(labels, maps=decisive).ok and judge(labels, maps=empty).ok
