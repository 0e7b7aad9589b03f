"""The "Pretrain TOWER on my images" widget: runs in the background, saves a base for fine-tuning."""
from __future__ import annotations

import pytest

from napari_tower._widgets.finetune_widget import FinetuneWidget
from napari_tower._widgets.pretrain_widget import PretrainWidget
from napari_tower.train.finetune import base_network

pytestmark = pytest.mark.gui


def _pretrain(viewer, qtbot, name, start_from=None):
    """Run the widget for 0.1 minute on the viewer's "unlabelled" layer; returns it, finished."""
    w = PretrainWidget(viewer)
    w._layers.value = [viewer.layers["unlabelled"]]
    if start_from is not None:
        w._start_from.value = start_from
    w._minutes.value = 0.1
    w._name.value = name
    worker = w.start()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert w.last_error is None, w.last_error
    return w


def test_pretrain_from_layers_then_offer_as_base(make_napari_viewer, qtbot, small_image):
    viewer = make_napari_viewer()
    viewer.add_image(small_image[0], name="unlabelled")
    ft = FinetuneWidget(viewer)
    w = _pretrain(viewer, qtbot, "my-tower")
    assert w.saved_model is not None and w.saved_model.name == "my-tower"
    assert len(w.plot.series.get("loss", [])) >= 1
    net, name = base_network(w.saved_model)
    assert "my-tower" in ft._base.choices
    assert w._start_from.value == "random" and "my-tower" in w._start_from.choices


def test_pretrain_continues_from_the_bundled_tower(make_napari_viewer, qtbot, small_image):
    import json

    viewer = make_napari_viewer()
    viewer.add_image(small_image[0], name="unlabelled")
    w = _pretrain(viewer, qtbot, "my-tower-continued", start_from="tower")
    card = json.loads((w.saved_model / "card.json").read_text())
    assert card["pretraining"]["base"] == "tower"


def test_nothing_chosen_is_reported(make_napari_viewer):
    w = PretrainWidget(make_napari_viewer())
    assert w.start() is None and "choose image layers" in w.last_error
