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


def _worker_processes() -> list[int]:
    """Pids of this process's pretraining data workers (Linux /proc)."""
    import os
    from pathlib import Path

    pids = []
    for d in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (d / "cmdline").read_bytes()
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"napari_tower.ssl._batch_worker" in cmd and ppid == os.getpid():
            pids.append(int(d.name))
    return pids


@pytest.mark.skipif(not __import__("os").path.isdir("/proc"), reason="counts worker processes through /proc (Linux)")
def test_stop_with_data_workers_saves_and_leaves_no_worker_behind(make_napari_viewer, qtbot, small_image, monkeypatch):
    """As on a GPU, where batches come from worker processes started inside napari's thread."""
    import json

    from napari_tower.ssl import pretrain as pretrain_mod

    monkeypatch.setattr(pretrain_mod, "default_workers", lambda device_type: 2)
    viewer = make_napari_viewer()
    viewer.add_image(small_image[0], name="unlabelled")
    w = PretrainWidget(viewer)
    w._layers.value = [viewer.layers["unlabelled"]]
    w._minutes.value = 5.0
    w._name.value = "my-tower-workers"
    worker = w.start()
    qtbot.waitUntil(lambda: len(w.plot.series.get("loss", [])) >= 1, timeout=120_000)
    assert len(_worker_processes()) == 2
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        w._cancel.changed.emit(True)  # "Stop (save so far)"
    assert w.last_error is None, w.last_error
    card = json.loads((w.saved_model / "card.json").read_text())["pretraining"]
    assert card["data_workers"] == 2 and card["stopped_early"] is True and card["steps"] >= 1
    assert _worker_processes() == []
