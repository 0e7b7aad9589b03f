"""Dock widget "Segment with TOWER": thin Qt shell over ``napari_tower.api``."""
from __future__ import annotations

import threading
from pathlib import Path


from magicgui.widgets import (
    CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, LineEdit, ProgressBar, PushButton, SpinBox,
)

from ..api import ModelCache, list_models, segment_to_iter
from ..model.choice import AUTO, GENERAL
from ..config import PostprocessConfig
from ._common import GuardedRun, Reporting, error_message, quiet_if_gone
from ._layers import write_labels_layer, write_tracks_layer

SCALE_CHOICES = ["auto", "0.5", "0.75", "1", "1.5", "2", "3"]


def _scale_value(choice: str):
    return choice if choice == "auto" else float(choice)


# (z_assembly, views_3d) for Z stacks
Z_CHOICES = [("3D: XY, XZ and YZ views", ("3d", "all")), ("3D: XY views only (faster)", ("3d", "xy")),
             ("plane by plane, linked by overlap", ("stitch", "all"))]


def parse_voxel_size(text: str):
    """'Z, Y, X' (commas or spaces) -> a tuple of three floats, '' -> None; ValueError otherwise."""
    parts = [p for p in str(text).replace(",", " ").split() if p]
    if not parts:
        return None
    if len(parts) != 3:
        raise ValueError(f"voxel size needs three numbers (Z, Y, X), got {text!r}")
    return tuple(float(p) for p in parts)


AXES_CHOICES = [("auto (3D = Z stack)", None), ("Z stack (ZYX)", "ZYX"), ("time-lapse (TYX)", "TYX"), ("TZYX", "TZYX")]


def layer_axes(layer, choice: str | None) -> str | None:
    """Axes for a napari image layer: colour from ``layer.rgb``, the rest from the choice."""
    ndim = layer.ndim
    # axis names the layer carries (a reader's or a sample's, e.g. ("t", "y", "x")) say what
    # a 3D array is better than a guess does
    named = "".join(str(a).upper() for a in getattr(layer, "axis_labels", ()))
    if ndim == 2:
        axes = "YX"
    elif choice and len(choice) == ndim:
        axes = choice
    elif len(named) == ndim and set(named) <= set("TZYX") and named.endswith("YX") and len(set(named)) == ndim:
        axes = named
    elif ndim == 3:
        axes = "ZYX"
    elif ndim == 4:
        axes = "TZYX"
    else:
        axes = None
    if axes and layer.rgb:
        axes += "C"
    return axes


class SegmentWidget(GuardedRun, Reporting, Container):
    """Pick an image layer and a model; results land in a Labels layer named after the image."""

    def __init__(self, napari_viewer):
        self.viewer = napari_viewer
        self._image = ComboBox(label="image", choices=self._image_layers, nullable=False)
        self._model = ComboBox(label="model", choices=self._model_names)
        self._objects = ComboBox(label="objects", choices=["auto", "nuclei", "cells"], value="auto",
                                 tooltip="with model auto: cells = the cells model; nuclei = nuclei models only; auto = "
                                 "nuclei models, and images whose nuclei result is specks go to the cells model")
        self._model_dir = FileEdit(label="or folder", mode="d", value="", tooltip="a model directory (weights.safetensors + card.json)")
        self._model_file = FileEdit(label="or file", mode="r", filter="*.zip", value="",
                                    tooltip="a model zip: napari-tower's, or a bioimage.io package napari-tower exported")
        self._device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"], value="auto")
        self._prob = FloatSpinBox(label="probability", min=0.05, max=0.95, step=0.05, value=0.5, tooltip="foreground probability cut-off")
        self._split = FloatSpinBox(label="split depth", min=0.0, max=0.9, step=0.05, value=0.2,
                                   tooltip="lower splits touching objects more, higher merges more")
        self._method = ComboBox(label="separation", choices=["watershed", "flows"], value="watershed",
                                tooltip="watershed on centerness (nuclei) or following predicted flows (irregular "
                                "cells; fine-tuned models pick the better one on their annotations)")
        self._min_size = SpinBox(label="min size (px)", min=0, max=100000, value=15, tooltip="smaller objects are removed")
        self._scale = ComboBox(label="scale", choices=SCALE_CHOICES, value="auto",
                               tooltip="resize before segmenting; auto upsamples when the nuclei found are small")
        self._tta = CheckBox(text="rotation averaging (4x slower)", value=False,
                             tooltip="average the predictions over the four 90-degree rotations")
        self._axes = ComboBox(label="3D/4D axes", choices=AXES_CHOICES, value=None)
        self._z_assembly = ComboBox(label="Z stacks", choices=Z_CHOICES, value=("3d", "all"),
                                    tooltip="3D: the stack segmented as a volume (nuclei whole in Z); plane by "
                                    "plane: each XY plane on its own, linked by overlap (faster, weaker)")
        self._voxel = LineEdit(label="voxel size Z, Y, X", value="",
                               tooltip="filled from the layer's scale; Z is resampled to the XY pixel size")
        self._track = CheckBox(text="link objects through time (T axis)", value=True,
                               tooltip="an object keeps its id through the movie; adds a Tracks layer")
        self._run = PushButton(text="Segment with TOWER")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", min=0, max=1, value=0, visible=True)
        self._status = Label(value="")
        # why a result is not to be trusted, shown beside it until the next run
        self._fit = Label(value="", visible=False)
        self._fit.native.setWordWrap(True)  # before any text: a long line would widen the whole dock
        super().__init__(widgets=[
            self._image, self._model, self._objects, self._model_dir, self._model_file, self._device, self._prob, self._split, self._method, self._min_size,
            self._scale, self._tta, self._axes, self._z_assembly, self._voxel, self._track, self._run, self._cancel, self._progress, self._status,
            self._fit,
        ])
        self._model.changed.connect(self._load_defaults)
        self._model_dir.changed.connect(self._load_defaults)
        self._model_file.changed.connect(self._load_defaults)
        self._shown_defaults: dict = {}
        self._load_defaults()
        self._run.changed.connect(self.start)
        self._image.changed.connect(self._fill_voxel_size)
        self._fill_voxel_size()
        self._cancel.changed.connect(self.cancel)
        self._stop = threading.Event()
        self._worker = None
        self._models = ModelCache("auto")
        self.last_error: str | None = None
        self._connect_guards()
        layers = self.viewer.layers.events
        for ev in (layers.inserted, layers.removed, layers.reordered):
            ev.connect(lambda e=None: self._image.reset_choices())
        from ._events import on_models_changed

        on_models_changed(self.refresh_models)

    # choices ------------------------------------------------------------------------
    def _image_layers(self, widget=None):
        from napari.layers import Image

        return [(l.name, l) for l in self.viewer.layers if isinstance(l, Image)]

    def _model_names(self, widget=None):
        return [AUTO, *list_models()]

    def refresh_models(self):
        self._model.reset_choices()

    def _load_defaults(self, event=None):
        """Show the chosen model's own post-processing defaults (a fine-tuned model knows its object size)."""
        from ..model.weights import read_card, resolve_model_dir

        src = self._model_source()
        try:  # "auto" shows the general model's values; those left untouched follow the chosen model
            post = read_card(resolve_model_dir(GENERAL if src == AUTO else src)).get("postprocess", {})
        except Exception:  # noqa: BLE001 (an unreadable model is reported when it is run)
            return
        self._shown_defaults = {"prob_threshold": post.get("prob_threshold"), "split_depth": post.get("split_depth"),
                                "method": post.get("method"), "min_size": post.get("min_size"), "scale": post.get("scale")}
        if "prob_threshold" in post:
            self._prob.value = post["prob_threshold"]
        self._split.value = post.get("split_depth", PostprocessConfig.model_fields["split_depth"].default)
        self._method.value = post.get("method", "watershed")
        if "min_size" in post:
            self._min_size.value = post["min_size"]
        scale = post.get("scale", 1.0)
        if scale == "auto":
            self._scale.value = "auto"
            return
        choice = next((c for c in SCALE_CHOICES[1:] if float(c) == scale), f"{float(scale):g}")
        if choice not in SCALE_CHOICES:  # a fine-tuned model's own scale (large objects are learnt downscaled)
            self._scale.choices = ["auto", *sorted([*SCALE_CHOICES[1:], choice], key=float)]
        self._scale.value = choice

    def _fill_voxel_size(self, event=None):
        layer = self._image.value
        if layer is not None and layer.ndim - (1 if layer.rgb else 0) >= 3:
            self._voxel.value = ", ".join(f"{s:g}" for s in tuple(layer.scale)[-3:])
        else:
            self._voxel.value = ""

    # running ------------------------------------------------------------------------
    def _model_source(self):
        file = self._model_file.value
        if file and str(file) not in ("", ".") and Path(file).is_file():
            return Path(file)
        folder = self._model_dir.value
        if folder and str(folder) not in ("", ".") and Path(folder).is_dir():
            return Path(folder)
        return self._model.value

    def _models_for(self, device: str) -> ModelCache:
        """Models stay loaded between runs on the same device setting."""
        if self._models.device != device:
            self._models = ModelCache(device)
        return self._models

    def _set_running(self, running: bool):
        self._run.enabled = not running
        self._cancel.enabled = running

    def start(self, event=None):
        """Segment the chosen layer in a background thread; returns the worker."""
        from napari.qt.threading import create_worker

        layer = self._image.value
        if layer is None:
            self._report("choose an image layer first")
            return None
        if self._busy:  # Segment pressed again while a run is going: one run at a time
            self._report("already segmenting: wait for it to finish, or press Cancel")
            return None
        data = layer.data[0] if layer.multiscale else layer.data
        axes = layer_axes(layer, self._axes.value)
        try:
            voxel_size = parse_voxel_size(self._voxel.value) if axes and "Z" in axes else None
        except ValueError as e:
            self._report(str(e))
            return None
        z_assembly, views_3d = self._z_assembly.value
        options = dict(prob_threshold=self._prob.value, split_depth=self._split.value, min_size=self._min_size.value,
                       scale=_scale_value(self._scale.value), tta=self._tta.value, method=self._method.value,
                       z_assembly=z_assembly, views_3d=views_3d)
        track = bool(self._track.value and axes and axes.startswith("T"))
        self._stop.clear()
        self.last_error = None

        src = self._model_source()
        objects = self._objects.value if src == AUTO else "auto"
        self._fit.value, self._fit.visible = "", False
        if src == AUTO:  # untouched fields follow the chosen model's card
            options = {k: (None if self._shown_defaults.get(k, object()) == v else v) for k, v in options.items()}

        def work():
            yield "loading model"
            done = None
            # a dask- or zarr-backed layer (e.g. from napari-ome-zarr) is never read whole: the
            # API sends it block by block into an OME-Zarr beside the system's temp files
            for p in segment_to_iter(data, None, src, axes=axes, track=track, voxel_size=voxel_size, objects=objects,
                                     should_stop=self._stop.is_set, models=self._models_for(self._device.value),
                                     **options):
                if p.result is not None:
                    done = p.result
                    continue
                yield p
            return done

        self._begin(layer)
        worker = create_worker(
            work,
            _start_thread=False,
            _connect={
                "yielded": quiet_if_gone(self._on_progress),
                "returned": quiet_if_gone(lambda done: self._on_done(layer, done)),
                "errored": quiet_if_gone(self._on_error),  # replaces superqt's default re-raise
                "finished": quiet_if_gone(self._finished),
            },
        )
        self._worker = worker
        self._set_running(True)
        self._progress.value = 0
        self._status.value = f"segmenting {layer.name}…"
        worker.start()
        return worker

    def cancel(self, event=None):
        self._stop.set()
        self._status.value = "cancelling…"

    def _on_progress(self, p):
        if isinstance(p, str):
            self._status.value = p
            return
        self._progress.max = max(p.total, 1)
        self._progress.value = p.step
        self._status.value = p.message

    def _finished(self):
        self._end()
        self._set_running(False)

    def _on_done(self, layer, done):
        if done is None:
            return
        # the final report carries the result and is not yielded, so the bar is filled here
        self._progress.value = self._progress.max
        if self._layer_gone(layer):  # removed after the last block: nothing to attach the labels to
            self._report(f"layer '{layer.name}' was removed: its labels were not added")
            return
        out = write_labels_layer(self.viewer, layer, done.labels)
        if done.graph is not None:
            write_tracks_layer(self.viewer, layer, done.labels, done.graph)
        if done.warning:
            from napari.utils.notifications import show_warning

            self._fit.value = f"<b>Check this result:</b> {done.warning}"
            self._fit.visible = True
            show_warning(f"{layer.name}: {done.warning}")
        if done.objects is not None:
            self._status.value = f"{done.objects} objects -> {out.name}"
        else:  # lazy OME-Zarr labels: counting would read them all
            self._status.value = f"done -> {out.name} (OME-Zarr, loaded lazily)"

    def _on_error(self, exc):
        self._report(error_message(exc, (self._stop_reason or "cancelled") + "; no layer was changed"))
