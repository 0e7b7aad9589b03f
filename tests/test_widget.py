"""The "Segment with TOWER" dock widget in a real napari viewer (under Xvfb)."""
from __future__ import annotations

import numpy as np
import pytest

from napari_tower._widgets.segment_widget import SegmentWidget
from napari_tower.metrics import average_precision

from conftest import wait_idle

pytestmark = pytest.mark.gui


def _run(widget, qtbot, timeout=120_000):
    worker = widget.start()
    assert worker is not None
    wait_idle(widget, qtbot, timeout)
    return worker


def test_widget_writes_labels_layer_and_updates_it(make_napari_viewer, qtbot, sample):
    viewer = make_napari_viewer()
    img, truth = sample
    viewer.add_image(img, name="nuclei", scale=(0.5, 0.25), translate=(10, 20))
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget._image.value.name == "nuclei"
    _run(widget, qtbot)
    assert widget.last_error is None
    out = viewer.layers["nuclei TOWER labels"]
    assert out.data.shape == img.shape and np.issubdtype(out.data.dtype, np.integer)
    assert tuple(out.scale) == (0.5, 0.25) and tuple(out.translate) == (10, 20)
    assert average_precision(out.data, truth) > 0.68  # measured 0.77
    assert widget._progress.value == widget._progress.max  # a finished run reads 100%
    n_layers, n_first = len(viewer.layers), int(out.data.max())
    widget._min_size.value = 400  # a second run with other settings updates the same layer
    _run(widget, qtbot)
    assert len(viewer.layers) == n_layers
    assert viewer.layers["nuclei TOWER labels"] is out
    assert 0 < out.data.max() < n_first


def test_widget_never_overwrites_a_painted_or_foreign_layer(make_napari_viewer, qtbot, small_image):
    viewer = make_napari_viewer()
    img, _ = small_image
    viewer.add_image(img, name="cells")
    mine = viewer.add_labels(np.zeros(img.shape, np.int32), name="cells TOWER labels")
    mine.data[0:5, 0:5] = 7
    widget = SegmentWidget(viewer)
    _run(widget, qtbot)
    assert mine.data[0:5, 0:5].max() == 7 and mine.data.max() == 7
    ours = viewer.layers["cells TOWER labels [2]"]
    # the user paints into our output: the next run must leave it alone too
    ours.paint((2, 2), 99)
    before = ours.data.copy()
    _run(widget, qtbot)
    assert np.array_equal(ours.data, before)
    assert "cells TOWER labels [3]" in viewer.layers


def test_widget_handles_stacks_and_rgb(make_napari_viewer, qtbot, small_image):
    viewer = make_napari_viewer()
    img, _ = small_image
    viewer.add_image(np.stack([img] * 3), name="movie")
    widget = SegmentWidget(viewer)
    widget._axes.value = "TYX"
    widget._track.value = False  # per-frame objects, ids unique across the movie (linking: test_widget_3d.py)
    _run(widget, qtbot)
    lab = viewer.layers["movie TOWER labels"].data
    assert lab.shape == (3, *img.shape)
    assert not set(np.unique(lab[0])[1:]) & set(np.unique(lab[1])[1:])
    rgb = np.stack([(img / img.max() * 255).astype(np.uint8)] * 3, axis=-1)
    viewer.add_image(rgb, name="rgb", rgb=True)
    widget._image.value = viewer.layers["rgb"]
    _run(widget, qtbot)
    assert viewer.layers["rgb TOWER labels"].data.shape == img.shape


def test_bad_layer_reports_error_and_keeps_viewer(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    bad = np.zeros((64, 64), np.float32)
    bad[3, 3] = np.nan
    viewer.add_image(bad, name="bad")
    widget = SegmentWidget(viewer)
    _run(widget, qtbot)
    assert "NaN" in widget.last_error
    assert [l.name for l in viewer.layers] == ["bad"]
    assert widget._run.enabled


def test_cancel_stops_and_leaves_layers_alone(make_napari_viewer, qtbot, small_image):
    viewer = make_napari_viewer()
    img, _ = small_image
    viewer.add_image(np.stack([img] * 400), name="stack")  # still running when cancelled, even on a busy machine
    widget = SegmentWidget(viewer)
    assert widget.start() is not None
    # the viewer keeps processing events while the worker runs
    qtbot.waitUntil(lambda: widget._progress.value >= 1, timeout=60_000)
    widget.cancel()
    wait_idle(widget, qtbot, timeout=60_000)
    assert "cancelled" in widget.last_error
    assert "stack TOWER labels" not in viewer.layers
    assert widget._run.enabled


def test_sample_data_contribution_loads_image_and_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-tower", "nuclei")
    assert {"nuclei", "nuclei ground truth"} <= {l.name for l in viewer.layers}


def test_widget_shows_the_chosen_model_s_own_post_processing(make_napari_viewer, tmp_path):
    import json
    import shutil

    from napari_tower.model.weights import resolve_model_dir

    folder = tmp_path / "cells"
    shutil.copytree(resolve_model_dir("default"), folder)
    card = json.loads((folder / "card.json").read_text())
    card["postprocess"].update(scale=0.536, split_depth=0.35, min_size=120)  # as a fine-tune on large cells writes
    (folder / "card.json").write_text(json.dumps(card))
    widget = SegmentWidget(make_napari_viewer())
    assert widget._scale.value == "auto" and widget._split.value == pytest.approx(0.2)
    widget._model_dir.value = folder
    assert widget._scale.value == "0.536" and widget._split.value == pytest.approx(0.35)
    assert widget._min_size.value == 120
