"""Writing results back into the viewer without clobbering the user's work."""
from __future__ import annotations

import numpy as np

OWNER_KEY = "napari_tower_output"
EDITED_KEY = "napari_tower_edited"


def _mark_edited(layer):
    def on_paint(event=None):
        layer.metadata[EDITED_KEY] = True

    return on_paint


def write_labels_layer(viewer, image_layer, labels: np.ndarray, suffix: str = "TOWER labels"):
    """Create or update ``"<image> <suffix>"``, keeping the image's scale and translate.

    An output layer is reused only while it is ours and unpainted; a layer the user
    made or painted into is never overwritten: a new name is chosen instead.
    """
    base = f"{image_layer.name} {suffix}"
    name, k = base, 1
    while name in viewer.layers:
        layer = viewer.layers[name]
        ours = layer.metadata.get(OWNER_KEY) is True and not layer.metadata.get(EDITED_KEY, False)
        if ours and layer.data.shape == labels.shape:
            layer.data = labels
            layer.refresh()
            return layer
        k += 1
        name = f"{base} [{k}]"
    ndim = labels.ndim
    layer = viewer.add_labels(
        labels,
        name=name,
        scale=tuple(image_layer.scale)[-ndim:],
        translate=tuple(image_layer.translate)[-ndim:],
        metadata={OWNER_KEY: True},
    )
    paint_events = getattr(layer.events, "paint", None) or layer.events.data
    paint_events.connect(_mark_edited(layer))
    return layer


def write_tracks_layer(viewer, image_layer, labels: np.ndarray, graph: dict):
    """A Tracks layer (centroids, division graph) beside linked labels; replaced on each run."""
    from ..predict.tracking import tracks_data

    name = f"{image_layer.name} TOWER tracks"
    if name in viewer.layers:
        viewer.layers.remove(name)
    data = tracks_data(labels)
    if not len(data):
        return None
    ndim = labels.ndim
    return viewer.add_tracks(data, graph=graph, name=name, scale=tuple(image_layer.scale)[-ndim:],
                             translate=tuple(image_layer.translate)[-ndim:])
