from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# exported networks (ONNX Runtime backend) are cached once per test session, not in the tester's cache
os.environ.setdefault("NAPARI_TOWER_CACHE", tempfile.mkdtemp(prefix="napari-tower-test-cache-"))
DSB = Path(os.environ.get("NAPARI_TOWER_DATA", REPO.parent / "shared" / "data")) / "dsb2018"


@pytest.fixture(autouse=True)
def _isolated_user_models(tmp_path, monkeypatch):
    """User models go to a temporary folder, never the tester's real data directory."""
    monkeypatch.setenv("NAPARI_TOWER_HOME", str(tmp_path / "tower_home"))


@pytest.fixture(scope="session")
def dsb_root() -> Path:
    if not (DSB / "index.csv").is_file():
        pytest.skip(f"dsb2018 data not found at {DSB} (it lives in ../shared/data beside the repo; "
                    "set NAPARI_TOWER_DATA to its parent folder)")
    return DSB


@pytest.fixture(scope="session")
def model():
    import napari_tower

    return napari_tower.load_model("default", device="cpu")


@pytest.fixture(scope="session")
def sample():
    from napari_tower._sample_data import sample_image, sample_labels

    return sample_image(), sample_labels()


@pytest.fixture(scope="session")
def small_image(sample):
    """A 160x192 crop of the sample with several nuclei: fast enough for many tests."""
    img, lab = sample
    return np.ascontiguousarray(img[100:260, 100:292]), np.ascontiguousarray(lab[100:260, 100:292])


def wait_idle(widget, qtbot, timeout=120_000):
    """Wait until the widget's run has ended. Its own handler of the worker's ``finished``,
    connected before the worker started, clears ``_busy``: unlike a ``waitSignal`` set up after
    ``start()``, this cannot miss a run that ends at once (a busy machine showed that race)."""
    qtbot.waitUntil(lambda: not widget._busy, timeout=timeout)


@pytest.fixture
def run_widget(qtbot):
    """Start a widget's background run and wait until its worker has finished."""
    def run(widget, timeout=300_000):
        worker = widget.start()
        assert worker is not None
        wait_idle(widget, qtbot, timeout)
        return worker

    return run


def _write_ngff(path, data, axes: str, scale, version: str = "0.4"):
    """A one-level OME-Zarr image (NGFF 0.4 = zarr v2, 0.5 = zarr v3) holding ``data``."""
    zarr = pytest.importorskip("zarr")
    g = zarr.open_group(str(path), mode="w", zarr_format=3 if version == "0.5" else 2)
    g.create_array("0", shape=data.shape, dtype=data.dtype, chunks=tuple(min(n, 16) for n in data.shape))[...] = data
    ms = {"axes": [{"name": a, "type": {"t": "time", "c": "channel"}.get(a, "space")} for a in axes],
          "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(scale)}]}]}
    if version == "0.5":
        g.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    else:
        g.attrs["multiscales"] = [dict(ms, version="0.4")]
    return path


@pytest.fixture
def write_ngff():
    """``write_ngff(path, data, axes, scale, version)`` writes a small OME-Zarr image."""
    return _write_ngff
