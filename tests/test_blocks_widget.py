"""The segment widget on a dask-backed layer: block by block, never read whole."""
from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
pytest.importorskip("zarr")

from napari_tower._widgets.segment_widget import SegmentWidget  # noqa: E402
from napari_tower.io.lazy import LazyImage  # noqa: E402
from napari_tower.metrics import average_precision  # noqa: E402

from conftest import wait_idle

pytestmark = pytest.mark.gui


def test_widget_segments_a_dask_layer_blockwise(make_napari_viewer, qtbot, sample, monkeypatch):
    img, truth = sample
    big = np.tile(img, (2, 2))  # 4 blocks of the default 512 px
    viewer = make_napari_viewer()
    viewer.add_image(da.from_array(big, chunks=(256, 256)), name="big", scale=(0.5, 0.5))
    reads = []
    orig = LazyImage.read

    def spy(self, slices):
        out = orig(self, slices)
        reads.append(out.size)
        return out

    monkeypatch.setattr(LazyImage, "read", spy)
    widget = SegmentWidget(viewer)
    assert widget.start() is not None
    wait_idle(widget, qtbot, timeout=240_000)
    assert widget.last_error is None
    out = viewer.layers["big TOWER labels"]
    assert not isinstance(out.data, np.ndarray)  # lazily loaded from the OME-Zarr
    assert out.data.shape == big.shape and tuple(out.scale) == (0.5, 0.5)
    assert "OME-Zarr" in widget._status.value
    # two strided samples (the intensity range, and the "auto" model choice: at most 2 and 1 Mpx,
    # here the whole small layer), then the 4 blocks with their halos
    samples, blocks = reads[:-4], reads[-4:]
    assert len(samples) == 2 and max(samples) <= 2_000_000
    assert max(blocks) < big.size / 2
    labels = np.asarray(out.data)
    h, w = img.shape
    for y, x in [(0, 0), (h, w)]:  # a corner copy and one surrounded by block faces
        assert average_precision(labels[y:y + h, x:x + w], truth) > 0.68  # whole image: 0.77 (test_widget)
