"""Dock widget "Fine-tune TOWER": train on the annotated frames of a Labels layer, in the background."""
from __future__ import annotations

import threading
import time

import numpy as np
from magicgui.widgets import (
    CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, LineEdit, ProgressBar, PushButton,
)

from ..api import finetune_iter, list_models
from ..errors import TowerError
from ..model.weights import export_model, import_model
from ._common import GuardedRun, Reporting, error_message, quiet_if_gone
from ._events import on_models_changed, plugin_events
from ._plot import CurvePlot
from .segment_widget import AXES_CHOICES, layer_axes

KINDS = [("dense instance labels (0 = background)", False), ("sparse: 0 unannotated, 1 background, >=2 objects", True)]


def save_unfinished(training, stop: threading.Event) -> threading.Thread:
    """Finish an abandoned fine-tuning run (its worker was aborted, e.g. by the viewer closing):
    stop it at its next step so that it saves what it learnt, in a thread of its own."""
    stop.set()

    def drain():
        try:
            for _ in training:
                pass
        except Exception:  # noqa: BLE001 (no widget is left to report to; the last good model stays)
            pass

    thread = threading.Thread(target=drain, name="napari-tower-finetune-save", daemon=True)
    thread.start()
    return thread


def split_hold_out(labels: np.ndarray, n_lead: int):
    """(train labels, (plane index, held-out labels)) holding out the last annotated plane."""
    if n_lead == 0:
        return labels, None
    flat = labels.reshape((-1,) + labels.shape[n_lead:])
    annotated = [i for i in range(flat.shape[0]) if flat[i].any()]
    if len(annotated) < 2:
        return labels, None
    k = annotated[-1]
    train = labels.copy()
    train.reshape(flat.shape)[k] = 0
    return train, (np.unravel_index(k, labels.shape[:n_lead]), flat[k].copy())


class FinetuneWidget(GuardedRun, Reporting, Container):
    def __init__(self, napari_viewer):
        self.viewer = napari_viewer
        self._image = ComboBox(label="image", choices=self._layers_of("Image"))
        self._annotations = ComboBox(label="annotations", choices=self._layers_of("Labels"))
        self._kind = ComboBox(label="annotation kind", choices=KINDS, value=False)
        self._axes = ComboBox(label="3D/4D axes", choices=AXES_CHOICES, value=None)
        self._base = ComboBox(label="start from", choices=self._bases)
        self._minutes = FloatSpinBox(label="minutes", min=0.1, max=600, step=0.5, value=3.0)
        self._device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"], value="auto")
        self._hold_out = CheckBox(text="hold out the last annotated frame for validation", value=False)
        self._name = LineEdit(label="save as", value="my-nuclei-model")
        self._train = PushButton(text="Fine-tune")
        self._cancel = PushButton(text="Stop (keep best)", enabled=False)
        self._progress = ProgressBar(label="time", min=0, max=100, value=0)
        self._status = Label(value="")
        self._export_path = FileEdit(label="export to", mode="w", filter="*.zip", value="")
        self._export = PushButton(text="Export model")
        self._export_bioimageio = PushButton(text="Export for bioimage.io", tooltip="a bioimage.io model package "
                                             "(runs in deepImageJ, ilastik, bioimageio.core; loads back here)")
        self._import_path = FileEdit(label="import", mode="r", filter="*.zip", value="")
        self._import = PushButton(text="Import model")
        super().__init__(widgets=[
            self._image, self._annotations, self._kind, self._axes, self._base, self._minutes, self._device,
            self._hold_out, self._name, self._train, self._cancel, self._progress, self._status,
            self._export_path, self._export, self._export_bioimageio, self._import_path, self._import,
        ])
        self.plot = CurvePlot("loss")
        self.native.layout().insertWidget(13, self.plot)
        self._train.changed.connect(self.start)
        self._cancel.changed.connect(self.cancel)
        self._export.changed.connect(self.export)
        self._export_bioimageio.changed.connect(self.export_bioimageio)
        self._import.changed.connect(self.import_)
        self._stop = threading.Event()
        self._worker = None
        self.last_error: str | None = None
        self.saved_model = None
        self.previews = 0
        ev = self.viewer.layers.events
        for e in (ev.inserted, ev.removed, ev.reordered):
            e.connect(lambda *_: self.reset_choices())
        on_models_changed(self._base.reset_choices)
        self._connect_guards()

    def _layers_of(self, kind: str):
        def choices(widget=None):
            import napari.layers

            cls = getattr(napari.layers, kind)
            return [(l.name, l) for l in self.viewer.layers if isinstance(l, cls)]

        return choices

    def _bases(self, widget=None):
        names = list(list_models())
        return ["auto", "default", "none"] + [n for n in names if n != "default"]

    # training -----------------------------------------------------------------------
    def start(self, event=None):
        from napari.qt.threading import create_worker

        image, labels = self._image.value, self._annotations.value
        if self._busy:  # Train pressed again while training: one run at a time
            self._report("already training: wait for it to finish, or press Cancel")
            return None
        if image is None or labels is None:
            self._report("choose an image layer and an annotation (Labels) layer")
            return None
        data = image.data[0] if image.multiscale else image.data
        axes = layer_axes(image, self._axes.value)
        lab = np.asarray(labels.data)
        n_lead = lab.ndim - 2
        validation = None
        if self._hold_out.value:
            lab, held = split_hold_out(lab, n_lead)
            if held is None:
                self._report("hold-out needs at least two annotated frames; training without validation")
            else:
                idx, vlab = held
                validation = (np.asarray(data[idx]), vlab)
        # preview on the frame the user is looking at
        step = self.viewer.dims.current_step
        lead_idx = tuple(int(s) for s in step[-(n_lead + 2):-2]) if n_lead else ()
        preview_image = np.asarray(data[lead_idx]) if n_lead else np.asarray(data)
        kwargs = dict(
            base=self._base.value, sparse=self._kind.value, max_minutes=self._minutes.value, device=self._device.value,
            axes=axes, validation=validation, name=self._name.value.strip() or None, should_stop=self._stop.is_set,
            preview_image=preview_image, preview_every=5.0,
        )
        self._stop.clear()
        self.last_error = None
        self.plot.clear()
        self._t0 = time.monotonic()
        budget = self._minutes.value * 60

        training = finetune_iter(data, lab, **kwargs)

        def work():
            saved = None
            # a plain loop, not "yield from": a worker aborted while the viewer closes drops this
            # generator without closing ``training``, which save_unfinished then runs to its save
            for p in training:
                if p.result is not None:
                    saved = p.result
                else:
                    yield p
            return saved

        def on_yield(p):
            self._progress.value = min(100, int(100 * (time.monotonic() - self._t0) / budget))
            self.plot.add("loss", p.step, p.loss)
            if "dice" in p.metrics:
                self.plot.add("val dice", p.step, p.metrics["dice"])
                self.plot.add("val AP50", p.step, p.metrics["ap50"])
            self._status.value = p.message + (f"  loss {p.loss:.3f}" if p.loss is not None else "")
            if p.preview is not None and not self._layer_gone(image):
                self.previews += 1
                self._show_preview(image, p.preview)

        def finished():
            self._end()
            self._set_running(False)

        # removing the image or its annotations stops training; what was learnt so far is saved
        self._begin(image, labels)
        worker = create_worker(work, _start_thread=False, _connect={
            "yielded": quiet_if_gone(on_yield), "returned": quiet_if_gone(self._on_done),
            "errored": quiet_if_gone(self._on_error), "finished": quiet_if_gone(finished),
            "aborted": lambda: save_unfinished(training, self._stop),
        })
        self._worker = worker
        self._set_running(True)
        self._status.value = "preparing annotations…"
        worker.start()
        return worker

    def _show_preview(self, image, labels2d):
        name = f"{image.name} TOWER preview"
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            if layer.data.shape == labels2d.shape:
                layer.data = labels2d
                return
        self.viewer.add_labels(labels2d, name=name, scale=tuple(image.scale)[-2:], translate=tuple(image.translate)[-2:],
                               opacity=0.5, metadata={"napari_tower_output": True})

    def cancel(self, event=None):
        self._stop.set()
        self._status.value = "stopping; the best model so far will be saved…"

    def _set_running(self, running: bool):
        self._train.enabled = not running
        self._cancel.enabled = running

    def _on_done(self, path):
        self.saved_model = path
        self._progress.value = 100
        method = ""
        try:
            from ..model.weights import read_card

            method = f", separates objects by {read_card(path)['postprocess']['method']}"
        except Exception:  # noqa: BLE001 (older cards have no method; the message is a courtesy)
            pass
        why = f"{self._stop_reason}; " if self._stop_reason else ""
        self._status.value = f"{why}saved '{path.name}' ({path}){method}; pick it in Segment with TOWER"
        plugin_events.models_changed.emit()

    def _on_error(self, exc):
        self._report(error_message(exc, "stopped before any model was saved"))

    # sharing --------------------------------------------------------------------------
    def export(self, event=None):
        target = str(self._export_path.value)
        model = self.saved_model or self._base.value
        if not target or target == ".":
            self._report("choose a .zip file to export to")
            return
        try:
            out = export_model(model, target)
            self._status.value = f"exported to {out}"
        except (TowerError, OSError) as e:
            self._report(str(e))

    def export_bioimageio(self, event=None):
        """Write a bioimage.io package in the background (tracing and a test prediction take seconds)."""
        from napari.qt.threading import create_worker

        from ..api import export_iter

        target = str(self._export_path.value)
        if not target or target == ".":
            self._report("choose a .zip file to export to")
            return None
        model = self.saved_model or self._base.value
        layer = self._image.value  # the test tensors and cover come from the user's own image when it is 2D gray
        image = None
        if layer is not None and not layer.multiscale and not layer.rgb and np.ndim(layer.data) == 2:
            image = np.asarray(layer.data)
        worker = create_worker(export_iter, model, target, format="bioimageio", image=image, _start_thread=False,
                               _connect={"yielded": lambda p: setattr(self._status, "value", p.message),
                                         "errored": lambda e: self._report(error_message(e, "export stopped"))})
        worker.yielded.connect(lambda p: p.result is not None and setattr(self._status, "value", f"exported to {p.result}"))
        self._export_bioimageio.enabled = False
        worker.finished.connect(lambda: setattr(self._export_bioimageio, "enabled", True))
        worker.start()
        return worker

    def import_(self, event=None):
        src = str(self._import_path.value)
        try:
            path = import_model(src)
            self._status.value = f"imported '{path.name}'"
            plugin_events.models_changed.emit()
        except (TowerError, OSError) as e:
            self._report(str(e))
