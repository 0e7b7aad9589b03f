"""Voxel size from file metadata: ImageJ TIFF, OME-TIFF, OME-Zarr 0.4/0.5, plain files."""
import json

import numpy as np
import pytest
import tifffile

from napari_tower.io.metadata import voxel_size


def test_imagej_hyperstack(tmp_path):
    p = tmp_path / "ij.tif"
    data = np.zeros((5, 16, 20), np.uint16)
    tifffile.imwrite(p, data, imagej=True, resolution=(1 / 0.25, 1 / 0.5),
                     metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"})
    assert voxel_size(p) == pytest.approx((2.0, 0.5, 0.25))


def test_ome_tiff(tmp_path):
    p = tmp_path / "a.ome.tif"
    tifffile.imwrite(p, np.zeros((4, 8, 8), np.uint8), ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeZ": 3.0, "PhysicalSizeY": 0.4, "PhysicalSizeX": 0.3})
    assert voxel_size(p) == pytest.approx((3.0, 0.4, 0.3))


def test_tiff_without_metadata_gives_none(tmp_path):
    p = tmp_path / "plain.tif"
    tifffile.imwrite(p, np.zeros((8, 8), np.uint8))
    assert voxel_size(p) is None


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr(tmp_path, version, write_ngff):
    p = tmp_path / "img.ome.zarr"
    write_ngff(p, np.zeros((2, 2, 2, 2), np.uint8), "czyx", [1.0, 2.5, 0.3, 0.2], version)
    assert voxel_size(p) == pytest.approx((2.5, 0.3, 0.2))


def test_ome_zarr_without_z_is_isotropic(tmp_path, write_ngff):
    p = tmp_path / "img2d.ome.zarr"
    write_ngff(p, np.zeros((2, 2), np.uint8), "yx", [0.7, 0.6])
    assert voxel_size(p) == pytest.approx((0.7, 0.7, 0.6))


def test_plain_zarr_and_missing_file(tmp_path):
    zarr = pytest.importorskip("zarr")
    zarr.open_array(str(tmp_path / "plain.zarr"), mode="w", shape=(4, 4), dtype="uint8")
    assert voxel_size(tmp_path / "plain.zarr") is None
    assert voxel_size(tmp_path / "nothing.tif") is None


def test_bioio_fallback_png(tmp_path):
    pytest.importorskip("bioio")
    from skimage.io import imsave

    p = tmp_path / "a.png"
    imsave(p, np.zeros((8, 8), np.uint8), check_contrast=False)
    assert voxel_size(p) is None or len(voxel_size(p)) == 3
    (tmp_path / "bad.zarr").mkdir()
    (tmp_path / "bad.zarr" / ".zattrs").write_text(json.dumps({"multiscales": [{"datasets": []}]}))
    assert voxel_size(tmp_path / "bad.zarr") is None


def test_png_and_jpeg_have_no_voxel_size_and_never_ask_bioio(tmp_path, monkeypatch, small_image):
    """bioio's plugin scan cost ~1 s per file; a folder of PNGs must not pay it, in the CLI either."""
    import sys
    import types

    from skimage.io import imsave

    from napari_tower.cli import main

    asked = []

    class NoBioio(types.ModuleType):
        def __getattr__(self, name):  # any use of bioio is recorded; voxel_size would swallow an error
            asked.append(name)
            raise AttributeError(name)

    monkeypatch.setitem(sys.modules, "bioio", NoBioio("bioio"))
    folder = tmp_path / "pngs"
    folder.mkdir()
    img = (small_image[0] / small_image[0].max() * 255).astype(np.uint8)
    for name in ("a.png", "b.png", "c.jpg"):
        imsave(folder / name, img, check_contrast=False)
        assert voxel_size(folder / name) is None
    assert main(["segment", str(folder), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tif", "b.tif", "c.tif"]
    assert asked == []


def test_other_formats_still_go_to_bioio(tmp_path, monkeypatch):
    import sys
    import types

    seen = []

    class Sizes:
        Z, Y, X = 2.0, 0.5, 0.5

    class FakeImage:
        def __init__(self, path, **kwargs):
            seen.append(kwargs)
            self.physical_pixel_sizes = Sizes()

    monkeypatch.setitem(sys.modules, "bioio", types.SimpleNamespace(BioImage=FakeImage))
    p = tmp_path / "scan.czi"
    p.write_bytes(b"")
    assert voxel_size(p) == pytest.approx((2.0, 0.5, 0.5))
    assert seen == [{"use_plugin_cache": True}]  # plugins discovered once per process, not per file
