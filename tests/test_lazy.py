"""Lazy input (OME-Zarr 0.4/0.5, plain zarr, TIFF, bioio) and the CLI's zarr path."""
import pickle

import numpy as np
import pytest
import tifffile

zarr = pytest.importorskip("zarr")
da = pytest.importorskip("dask.array")

from napari_tower.errors import InputError  # noqa: E402
from napari_tower.io.lazy import LazyImage, intensity_range, open_lazy  # noqa: E402
from napari_tower.io.omezarr import open_labels, write_labels_zarr  # noqa: E402


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_is_dask_with_axes_and_voxel_size(tmp_path, version, write_ngff):
    data = np.random.default_rng(0).integers(0, 1000, (1, 1, 6, 40, 30), dtype=np.uint16)
    write_ngff(tmp_path / "a.ome.zarr", data, "tczyx", [1, 1, 2.0, 0.5, 0.25], version)
    img = open_lazy(tmp_path / "a.ome.zarr")
    assert isinstance(img.data, da.Array)  # nothing read yet
    assert img.axes == "ZYX" and img.shape == (6, 40, 30)
    assert img.voxel_size == pytest.approx((2.0, 0.5, 0.25))
    assert np.array_equal(img.read((slice(1, 3), slice(5, 20), slice(None))), data[0, 0, 1:3, 5:20])
    again = pickle.loads(pickle.dumps(img))  # workers re-open the path
    assert again.path == img.path and again.shape == img.shape


def test_plain_zarr_array_and_tiff(tmp_path):
    data = np.arange(8 * 32 * 32, dtype=np.uint16).reshape(8, 32, 32)
    zarr.open_array(str(tmp_path / "p.zarr"), mode="w", shape=data.shape, dtype=data.dtype, chunks=(2, 16, 16))[...] = data
    img = open_lazy(tmp_path / "p.zarr")
    assert img.axes is None and np.array_equal(img.read((slice(None),) * 3), data)
    tifffile.imwrite(tmp_path / "s.tif", data, imagej=True, metadata={"axes": "ZYX", "spacing": 3.0})
    t = open_lazy(tmp_path / "s.tif")
    assert isinstance(t.data, da.Array) and t.axes == "ZYX"
    assert np.array_equal(t.read((slice(3, 5), slice(None), slice(0, 7))), data[3:5, :, :7])
    assert t.voxel_size[0] == 3.0


def test_missing_and_foreign_paths(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_lazy(tmp_path / "nope.zarr")
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match="not a zarr"):
        open_lazy(tmp_path / "folder")
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(InputError, match="cannot open"):
        open_lazy(tmp_path / "bad.tif")


def test_intensity_range_ignores_zero_padding():
    rng = np.random.default_rng(1)
    img = np.zeros((4, 200, 200), np.uint16)
    img[:, :100, :100] = rng.integers(100, 200, (4, 100, 100))
    lo, hi = intensity_range(LazyImage(img, "ZYX"))
    assert 100 <= lo < 110 and 195 < hi <= 200


def test_write_and_open_labels_zarr(tmp_path):
    lab = np.zeros((3, 20, 20), np.uint16)
    lab[1, 5:9, 5:9] = 4
    out = write_labels_zarr(tmp_path / "l.ome.zarr", lab, "ZYX", (1.5, 0.2, 0.2))
    assert not (tmp_path / "l.ome.zarr.part").exists()
    assert np.array_equal(np.asarray(open_labels(out)), lab)
    assert open_lazy(out).voxel_size == pytest.approx((1.5, 0.2, 0.2))


def test_cli_segments_a_zarr_folder_into_ome_zarr(tmp_path, write_ngff):
    from napari_tower.cli import main
    from napari_tower.metrics import average_precision

    import napari_tower

    data_dir = __import__("pathlib").Path(napari_tower.__file__).parent / "data"
    image = tifffile.imread(data_dir / "nuclei_image.tif")
    truth = tifffile.imread(data_dir / "nuclei_labels.tif")
    if image.ndim != 2:
        pytest.skip("the bundled sample is not 2D")
    write_ngff(tmp_path / "in.ome.zarr", image, "yx", [0.3, 0.3], "0.4")
    rc = main(["segment", str(tmp_path / "in.ome.zarr"), "-o", str(tmp_path / "out"), "--device", "cpu",
               "--block-size", "256", "--halo", "96"])
    assert rc == 0
    out = tmp_path / "out" / "in.ome.zarr"
    labels = np.asarray(open_labels(out))
    assert labels.shape == image.shape
    assert open_lazy(out).voxel_size[1:] == pytest.approx((0.3, 0.3))
    # blocks lose nothing: about as good as the whole image (which scores ~0.8 on this sample)
    assert average_precision(labels, truth) > 0.6
    rc = main(["segment", str(tmp_path / "in.ome.zarr"), "-o", str(tmp_path / "out2"), "--device", "cpu",
               "--output-format", "zarr", "--block-size", "0"])
    assert rc == 1  # a bad block size is an error for that input, not a crash


def test_bioio_path_is_lazy_with_axes(tmp_path):
    """Formats without a reader of our own (CZI, ND2, LIF with their bioio plugins) go
    through bioio's dask_data; exercised here with an OME-TIFF and bioio-ome-tiff."""
    pytest.importorskip("bioio_ome_tiff")
    from napari_tower.io.lazy import _open_bioio, _squeeze

    data = np.random.default_rng(1).integers(0, 4000, (5, 24, 20), dtype=np.uint16)
    path = tmp_path / "s.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "ZYX", "PhysicalSizeZ": 2.0, "PhysicalSizeY": 0.5,
                                                     "PhysicalSizeX": 0.5})
    arr, axes = _open_bioio(path)
    assert isinstance(arr, da.Array) and axes == "TCZYX"
    arr, axes = _squeeze(arr, axes)
    assert axes == "ZYX" and np.array_equal(arr[1:3].compute(), data[1:3])
