"""Labels written into the input OME-Zarr's own labels group (NGFF image-label)."""
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

zarr = pytest.importorskip("zarr")
pytest.importorskip("dask")

import napari_tower  # noqa: E402
from napari_tower.cli import main  # noqa: E402
from napari_tower.errors import InputError  # noqa: E402
from napari_tower.io.lazy import open_lazy  # noqa: E402
from napari_tower.io.omezarr import labels_target, open_labels  # noqa: E402
from napari_tower.metrics import average_precision  # noqa: E402

DATA = Path(napari_tower.__file__).parent / "data"


def _sample():
    return tifffile.imread(DATA / "nuclei_image.tif"), tifffile.imread(DATA / "nuclei_labels.tif")


def test_cli_writes_labels_into_an_ngff_04_input(tmp_path, write_ngff, capsys):
    image, truth = _sample()
    src = write_ngff(tmp_path / "in.ome.zarr", image, "yx", [0.3, 0.3], "0.4")
    common = ["--device", "cpu", "--block-size", "256"]
    assert main(["segment", str(src), "-o", str(tmp_path / "out"), "--labels-group"] + common) == 0
    target = src / "labels" / "tower"
    assert json.loads((src / "labels" / ".zattrs").read_text())["labels"] == ["tower"]
    attrs = json.loads((target / ".zattrs").read_text())
    assert attrs["image-label"]["source"]["image"] == "../../"
    assert attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] == [0.3, 0.3]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing went to OUTDIR
    labels = np.asarray(open_labels(target))
    assert labels.shape == image.shape and average_precision(labels, truth) > 0.6
    # the same labels as the separate output, and a second name is added beside the first
    assert main(["segment", str(src), "-o", str(tmp_path / "sep")] + common) == 0
    assert np.array_equal(labels, np.asarray(open_labels(tmp_path / "sep" / "in.ome.zarr")))
    assert main(["segment", str(src), "-o", str(tmp_path / "out"), "--labels-group", "second"] + common) == 0
    assert json.loads((src / "labels" / ".zattrs").read_text())["labels"] == ["tower", "second"]
    assert not list((src / "labels").glob("*.part"))

    # ome-zarr-py (which napari-ome-zarr uses) finds the labels from the image
    reader = pytest.importorskip("ome_zarr.reader")
    from ome_zarr.io import parse_url

    nodes = list(reader.Reader(parse_url(str(src)))())
    found = [n for n in nodes if reader.Label in {type(s) for s in n.specs}]
    assert len(found) == 2 and found[0].data[0].shape == image.shape


def test_api_writes_labels_into_an_ngff_05_input(tmp_path, write_ngff):
    image, truth = _sample()
    src = write_ngff(tmp_path / "in.ome.zarr", image[:256, :256], "yx", [0.5, 0.5], "0.5")
    out = napari_tower.segment_blocks(src, None, device="cpu", block_size=128, labels_group="nuclei")
    assert out == src / "labels" / "nuclei"
    meta = json.loads((src / "labels" / "zarr.json").read_text())
    assert meta["zarr_format"] == 3 and meta["attributes"]["ome"]["labels"] == ["nuclei"]
    ome = json.loads((out / "zarr.json").read_text())["attributes"]["ome"]
    assert ome["version"] == "0.5" and "image-label" in ome
    lazy = open_lazy(out)
    assert lazy.voxel_size[1:] == pytest.approx((0.5, 0.5))
    labels = np.asarray(open_labels(out))
    assert average_precision(labels, truth[:256, :256]) > 0.5


def test_labels_group_needs_an_ome_zarr_input(tmp_path, capsys, write_ngff):
    image, _ = _sample()
    tifffile.imwrite(tmp_path / "a.tif", image)
    assert main(["segment", str(tmp_path / "a.tif"), "-o", str(tmp_path / "out"), "--labels-group"]) == 1
    assert "not one" in capsys.readouterr().err
    plain = tmp_path / "plain.zarr"
    zarr.open_array(str(plain), mode="w", shape=(64, 64), dtype="uint8")
    with pytest.raises(InputError, match="OME-Zarr image only"):
        labels_target(plain, "tower")
    src = write_ngff(tmp_path / "in.ome.zarr", image[:64, :64], "yx", [1, 1])
    with pytest.raises(InputError, match="cannot name"):
        labels_target(src, "a/b")
