"""The segment widget on Z stacks (3D, voxel size from the layer) and time-lapses (linking, Tracks layer)."""
from __future__ import annotations

import numpy as np
import pytest

from napari_tower._widgets.segment_widget import SegmentWidget, parse_voxel_size
from napari_tower.metrics import average_precision

pytestmark = pytest.mark.gui


def test_anisotropic_stack_layer_is_segmented_in_3d(make_napari_viewer, run_widget):
    from napari_tower._sample_data import sample_stack, sample_stack_labels

    viewer = make_napari_viewer()
    img, truth = sample_stack()[16::2], sample_stack_labels()[16::2]  # every other plane: z step 2x
    viewer.add_image(img, name="stack", scale=(0.5, 0.25, 0.25))
    widget = SegmentWidget(viewer)
    assert parse_voxel_size(widget._voxel.value) == (0.5, 0.25, 0.25)  # pre-filled from the layer
    assert widget._z_assembly.value == ("3d", "all")
    widget._z_assembly.value = ("3d", "xy")  # faster; the 3-view default is tested in test_volume.py
    run_widget(widget)
    assert widget.last_error is None
    out = viewer.layers["stack TOWER labels"]
    assert tuple(out.scale) == (0.5, 0.25, 0.25)
    assert average_precision(out.data, truth) >= 0.65
    assert "XY plane" in widget._status.value or "objects" in widget._status.value


def test_movie_is_linked_through_time_with_a_tracks_layer(make_napari_viewer, run_widget, small_image):
    viewer = make_napari_viewer()
    img, _ = small_image
    movie = np.stack([np.roll(img, 2 * t, axis=1) for t in range(3)])
    viewer.add_image(movie, name="movie")
    widget = SegmentWidget(viewer)
    widget._axes.value = "TYX"
    assert widget._track.value  # on by default for time-lapses
    run_widget(widget)
    lab = viewer.layers["movie TOWER labels"].data
    ids0, ids2 = set(np.unique(lab[0])[1:]), set(np.unique(lab[2])[1:])
    assert len(ids0 & ids2) >= 0.7 * len(ids0)  # the same nuclei keep their ids
    tracks = viewer.layers["movie TOWER tracks"]
    assert tracks.data.shape[1] == 4 and len(np.unique(tracks.data[:, 0])) >= len(ids0)


def test_bad_voxel_size_is_reported(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((5, 32, 32), np.float32), name="s")
    widget = SegmentWidget(viewer)
    widget._voxel.value = "2, 1"
    assert widget.start() is None
    assert "three numbers" in widget.last_error


def test_3d_sample_opens(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-tower", "nuclei3d")
    assert viewer.layers["nuclei 3D"].data.shape == (60, 256, 256)
