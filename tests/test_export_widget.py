"""Widgets: Fine-tune TOWER's "Export for bioimage.io" and Segment with TOWER's "or file"."""
from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest
import yaml

from napari_tower._widgets.finetune_widget import FinetuneWidget
from napari_tower._widgets.segment_widget import SegmentWidget

pytestmark = pytest.mark.gui


def test_export_button_then_segment_from_the_package(make_napari_viewer, qtbot, tmp_path, small_image):
    from napari_tower.model.weights import resolve_model_dir

    folder = tmp_path / "cells"  # a saved model with post-processing of its own, as fine-tuning writes
    shutil.copytree(resolve_model_dir("default"), folder)
    card = json.loads((folder / "card.json").read_text())
    card["postprocess"].update(split_depth=0.35, min_size=40, scale=1.0)
    (folder / "card.json").write_text(json.dumps(card))

    viewer = make_napari_viewer()
    viewer.add_image(small_image[0], name="nuclei")
    ft = FinetuneWidget(viewer)
    ft.saved_model = folder
    ft._export_path.value = tmp_path / "cells.zip"
    worker = ft.export_bioimageio()
    with qtbot.waitSignal(worker.finished, timeout=180_000):
        pass
    assert ft.last_error is None and ft._status.value.startswith("exported to")
    with zipfile.ZipFile(tmp_path / "cells.zip") as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        test_input = np.load(zf.open("test_input.npy"))
    assert rdf["config"]["napari_tower"]["postprocess"]["split_depth"] == 0.35
    assert test_input.shape == (1, 1, 160, 192)  # the user's 2D image layer, not the bundled sample

    seg = SegmentWidget(viewer)
    seg._model_file.value = tmp_path / "cells.zip"
    assert seg._split.value == pytest.approx(0.35) and seg._min_size.value == 40  # the package's own settings
    worker = seg.start()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert seg.last_error is None
    import napari_tower

    expected = napari_tower.segment(small_image[0], folder, device="cpu")
    assert np.array_equal(viewer.layers["nuclei TOWER labels"].data, expected)
