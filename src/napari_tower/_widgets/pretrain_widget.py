"""Dock widget "Pretrain TOWER on my images": self-supervised, no annotation, in the background."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, Label, LineEdit, ProgressBar, PushButton, Select

from ..model.weights import user_models_dir
from ._common import Reporting, error_message
from ._events import on_models_changed, plugin_events
from ._plot import CurvePlot
from .segment_widget import AXES_CHOICES, layer_axes


class PretrainWidget(Reporting, Container):
    def __init__(self, napari_viewer):
        self.viewer = napari_viewer
        self._layers = Select(label="image layers", choices=self._image_layers)
        self._folder = FileEdit(label="or folder", mode="d", value="")
        self._axes = ComboBox(label="3D/4D axes", choices=AXES_CHOICES, value=None)
        self._method = ComboBox(label="method", choices=["tower", "simclr", "byol"], value="tower")
        # "tower" continues the bundled weights on these images instead of starting from random
        self._start_from = ComboBox(label="start from", choices=self._bases, value="random")
        self._minutes = FloatSpinBox(label="minutes", min=0.1, max=1440, step=1, value=10.0)
        self._device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"], value="auto")
        self._name = LineEdit(label="save as", value="my-tower")
        self._go = PushButton(text="Pretrain")
        self._cancel = PushButton(text="Stop (save so far)", enabled=False)
        self._progress = ProgressBar(label="time", min=0, max=100, value=0)
        self._status = Label(value="")
        super().__init__(widgets=[self._layers, self._folder, self._axes, self._method, self._start_from, self._minutes,
                                  self._device, self._name, self._go, self._cancel, self._progress, self._status])
        self.plot = CurvePlot("pretraining loss")
        self.native.layout().insertWidget(11, self.plot)
        on_models_changed(self._start_from.reset_choices)
        self._go.changed.connect(self.start)
        self._cancel.changed.connect(lambda *_: self._stop.set())
        self._stop = threading.Event()
        self.last_error: str | None = None
        self.saved_model = None
        ev = self.viewer.layers.events
        for e in (ev.inserted, ev.removed, ev.reordered):
            e.connect(lambda *_: self._layers.reset_choices())

    def _image_layers(self, widget=None):
        from napari.layers import Image

        return [(l.name, l) for l in self.viewer.layers if isinstance(l, Image)]

    def _bases(self, widget=None):
        from ..api import list_models

        return ["random"] + list(list_models())

    def _planes(self):
        from ..ssl.data import collect_planes, planes_of

        planes = []
        for layer in self._layers.value or []:
            data = layer.data[0] if layer.multiscale else layer.data
            planes += planes_of(data, layer_axes(layer, self._axes.value))
        folder = self._folder_path()
        if folder is not None:
            planes += collect_planes([folder])
        return planes

    def _folder_path(self):
        folder = self._folder.value
        if folder and str(folder) not in ("", ".") and Path(folder).is_dir():
            return Path(folder)
        return None

    def start(self, event=None):
        from napari.qt.threading import create_worker

        from ..ssl.pretrain import make_config, pretrain_iter

        if not self._layers.value and self._folder_path() is None:
            self._report("choose image layers or a folder of images")
            return None
        name = self._name.value.strip() or "my-tower"
        out = user_models_dir() / name
        method, minutes, device = self._method.value, self._minutes.value, self._device.value
        base = None if self._start_from.value == "random" else self._start_from.value
        self._stop.clear()
        self.last_error = None
        self.plot.clear()
        t0 = time.monotonic()

        def work():
            yield "reading images…"
            planes = self._planes()
            saved = None
            for p in pretrain_iter(planes, make_config(method=method), device, out, max_minutes=minutes,
                                   should_stop=self._stop.is_set, base=base):
                if p.result is not None:
                    saved = p.result
                else:
                    yield p
            return saved

        def on_yield(p):
            if isinstance(p, str):
                self._status.value = p
                return
            self._progress.value = min(100, int(100 * (time.monotonic() - t0) / (minutes * 60)))
            self.plot.add("loss", p.step, p.loss)
            self._status.value = p.message

        worker = create_worker(work, _start_thread=False, _connect={
            "yielded": on_yield, "returned": self._on_done, "errored": self._on_error,
            "finished": lambda: self._set_running(False),
        })
        self._set_running(True)
        worker.start()
        return worker

    def _set_running(self, running):
        self._go.enabled = not running
        self._cancel.enabled = running

    def _on_done(self, path):
        self.saved_model = path
        self._progress.value = 100
        self._status.value = f"saved '{path.name}': a base for Fine-tune TOWER"
        plugin_events.models_changed.emit()

    def _on_error(self, exc):
        self._report(error_message(exc, "stopped"))
