"""Faults in the viewer: none raises into napari; workers stop; the last good model and labels stay.

pytest-qt fails a test on any exception raised in a Qt slot or callback, so "nothing raised into
napari" is checked by every test here, beside what each asserts.
"""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

import napari_tower
from napari_tower._widgets.finetune_widget import FinetuneWidget
from napari_tower._widgets.segment_widget import SegmentWidget

from conftest import wait_idle

pytestmark = pytest.mark.gui




def _stack(small_image, n=40):
    img, _ = small_image
    return np.stack([img] * n)


def test_image_removed_during_segmentation(make_napari_viewer, qtbot, small_image):
    viewer = make_napari_viewer()
    # long enough (~20 s or more) that the run is surely still going when the layer goes, even
    # when progress reports reach the GUI late on a busy machine
    layer = viewer.add_image(_stack(small_image, n=400), name="stack")
    mine = viewer.add_labels(np.ones((4, 4), np.uint8), name="my labels")
    widget = SegmentWidget(viewer)
    widget._axes.value = "TYX"  # plane by plane: the stop flag is polled between planes
    assert widget.start() is not None
    qtbot.waitUntil(lambda: widget._progress.value >= 1, timeout=60_000)
    viewer.layers.remove(layer)
    wait_idle(widget, qtbot, timeout=60_000)
    assert "layer 'stack' was removed" in widget.last_error and "no layer was changed" in widget.last_error
    assert [lay.name for lay in viewer.layers] == ["my labels"] and mine.data.sum() == 16
    assert widget._run.enabled


def test_segment_pressed_twice(make_napari_viewer, qtbot, small_image):
    viewer = make_napari_viewer()
    viewer.add_image(small_image[0], name="img")
    widget = SegmentWidget(viewer)
    worker = widget.start()
    assert worker is not None
    assert widget.start() is None  # the second press while the first runs
    assert "already segmenting" in widget.last_error
    wait_idle(widget, qtbot)
    assert [lay.name for lay in viewer.layers] == ["img", "img TOWER labels"]
    again = widget.start()  # once finished, it runs again
    assert again is not None
    wait_idle(widget, qtbot)
    assert [lay.name for lay in viewer.layers] == ["img", "img TOWER labels"]  # its own layer, reused


def test_viewer_closed_during_segmentation(make_napari_viewer, qtbot, small_image):
    viewer = make_napari_viewer()
    viewer.add_image(_stack(small_image, n=400), name="stack")  # surely still running when closed
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="segment")
    widget._axes.value = "TYX"
    worker = widget.start()
    qtbot.waitUntil(lambda: widget._progress.value >= 1, timeout=60_000)
    stop = widget._stop
    ended, planes = [], []
    worker.finished.connect(lambda: ended.append(True))
    worker.yielded.connect(lambda p: planes.append(p))
    viewer.close()
    # the worker stops on its own, long before the 400 planes (closing may already deliver its end)
    qtbot.waitUntil(lambda: bool(ended) and not worker.is_running, timeout=30_000)
    assert stop.is_set()
    assert len(planes) < 10  # reports after the close: it stopped instead of segmenting the other planes


def test_dask_layer_file_disappears(make_napari_viewer, qtbot, small_image, tmp_path):
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    img, _ = small_image
    path = tmp_path / "lazy.tif"
    tifffile.imwrite(path, img)
    # pixels are read from the file whenever they are needed, as napari's lazy readers do
    lazy = da.from_delayed(dask.delayed(tifffile.imread)(str(path)), shape=img.shape, dtype=img.dtype)
    viewer = make_napari_viewer()
    viewer.add_image(lazy, name="lazy", contrast_limits=(0, 255))
    path.unlink()
    widget = SegmentWidget(viewer)
    assert widget.start() is not None
    wait_idle(widget, qtbot, timeout=60_000)
    assert widget.last_error is not None
    assert "cannot read the pixels" in widget.last_error and "lazy.tif" in widget.last_error
    assert not widget.last_error.startswith("unexpected")
    assert [lay.name for lay in viewer.layers] == ["lazy"]
    assert widget._run.enabled


def test_image_removed_during_finetuning_keeps_the_model(make_napari_viewer, qtbot, small_image):
    viewer = make_napari_viewer()
    img, lab = small_image
    image = viewer.add_image(img, name="img")
    viewer.add_labels(lab, name="annotations")
    w = FinetuneWidget(viewer)
    w._minutes.value = 5
    w._name.value = "interrupted"
    assert w.start() is not None
    assert w.start() is None and "already training" in w.last_error  # pressed twice
    qtbot.waitUntil(lambda: len(w.plot.series.get("loss", [])) >= 2, timeout=120_000)
    viewer.layers.remove(image)
    wait_idle(w, qtbot, timeout=60_000)
    assert w.saved_model is not None and w.saved_model.name == "interrupted"
    assert "layer 'img' was removed" in w._status.value
    assert napari_tower.segment(img, model=w.saved_model).shape == img.shape  # the model trained so far loads


def test_viewer_closed_during_finetuning_keeps_the_model(make_napari_viewer, qtbot, small_image):
    viewer = make_napari_viewer()
    img, lab = small_image
    viewer.add_image(img, name="img")
    viewer.add_labels(lab, name="annotations")
    w = FinetuneWidget(viewer)
    viewer.window.add_dock_widget(w, name="finetune")
    w._minutes.value = 5
    w._name.value = "closed"
    assert w.start() is not None
    qtbot.waitUntil(lambda: len(w.plot.series.get("loss", [])) >= 2, timeout=120_000)
    viewer.close()
    # closing aborts the worker; the run is stopped at its next step and saves what it learnt
    qtbot.waitUntil(lambda: "closed" in napari_tower.list_models(), timeout=60_000)  # not the 5 minutes
    saved = napari_tower.list_models()["closed"]
    assert napari_tower.segment(img, model=saved).shape == img.shape
