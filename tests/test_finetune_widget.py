"""Fine-tuning inside napari: background training, live curve, cancel, the full correction loop."""
from __future__ import annotations

import numpy as np
import pytest

import napari_tower
from napari_tower._widgets.finetune_widget import FinetuneWidget
from napari_tower._widgets.segment_widget import SegmentWidget

from conftest import wait_idle

pytestmark = pytest.mark.gui


def _wait(widget, qtbot, timeout=180_000):
    wait_idle(widget, qtbot, timeout)


def test_viewer_stays_responsive_and_cancel_keeps_a_model(make_napari_viewer, qtbot, small_image):
    from qtpy.QtCore import QTimer

    viewer = make_napari_viewer()
    img, lab = small_image
    viewer.add_image(img, name="img")
    viewer.add_labels(lab, name="annotations")
    w = FinetuneWidget(viewer)
    w._minutes.value = 5
    w._name.value = "cancelled-model"
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(50)
    assert w.start() is not None
    qtbot.waitUntil(lambda: len(w.plot.series.get("loss", [])) >= 2, timeout=120_000)
    n_ticks = len(ticks)
    qtbot.wait(500)
    assert len(ticks) > n_ticks  # the event loop kept running during training
    import time

    t = time.monotonic()
    w.cancel()
    _wait(w, qtbot, timeout=30_000)
    assert time.monotonic() - t < 10
    timer.stop()
    assert w.last_error is None, w.last_error
    assert w.saved_model is not None and w.saved_model.name == "cancelled-model"
    assert napari_tower.segment(img, model=w.saved_model).shape == img.shape


def test_correct_finetune_and_segment_again(make_napari_viewer, qtbot, sample):
    """The human-in-the-loop path: segment, paint a correction, fine-tune on it, segment again."""
    viewer = make_napari_viewer()
    img, _ = sample
    viewer.add_image(img, name="nuclei")
    seg = SegmentWidget(viewer)
    assert seg.start() is not None
    _wait(seg, qtbot)
    out = viewer.layers["nuclei TOWER labels"]
    # the user corrects: erases one object and paints a new one in empty space
    first = int(np.unique(out.data)[1])
    out.data = np.where(out.data == first, 0, out.data)
    empty = np.argwhere(out.data == 0)[0]
    out.paint(tuple(empty), int(out.data.max()) + 1)
    ft = FinetuneWidget(viewer)
    ft._image.value = viewer.layers["nuclei"]
    ft._annotations.value = out
    ft._minutes.value = 0.25
    ft._name.value = "corrected"
    assert ft.start() is not None
    _wait(ft, qtbot)
    assert ft.last_error is None, ft.last_error
    assert len(ft.plot.series["loss"]) >= 2
    assert ft.previews >= 1 and "nuclei TOWER preview" in viewer.layers
    # the new model is offered in the segment widget at once
    assert "corrected" in seg._model.choices
    seg._model.value = "corrected"
    assert seg.start() is not None
    _wait(seg, qtbot)
    assert seg.last_error is None
    again = [l for l in viewer.layers if l.name.startswith("nuclei TOWER labels [")]
    assert again and again[0].data.shape == img.shape and again[0].data.max() > 10


def test_missing_layers_reported(make_napari_viewer):
    viewer = make_napari_viewer()
    w = FinetuneWidget(viewer)
    assert w.start() is None
    assert "choose an image layer" in w.last_error
