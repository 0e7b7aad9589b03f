"""Block-wise segmentation: grid, stitching across faces, resume, OME-Zarr output."""
import json

import numpy as np
import pytest

pytest.importorskip("zarr")

from _fake_models import BlobModel, balls  # noqa: E402

from napari_tower.blocks.grid import block_grid, chunk_shape  # noqa: E402
from napari_tower.blocks.run import ALIGN, segment_blocks_iter  # noqa: E402
from napari_tower.blocks.stitch import face_pairs, merge_mapping  # noqa: E402
from napari_tower.config import PredictConfig  # noqa: E402
from napari_tower.errors import Cancelled, InputError  # noqa: E402
from napari_tower.io.lazy import LazyImage  # noqa: E402
from napari_tower.io.omezarr import open_labels  # noqa: E402
from napari_tower.metrics import average_precision  # noqa: E402
from napari_tower.progress import run_to_end  # noqa: E402

CFG = PredictConfig(min_size=5, split_depth=0.2, norm_range=(0.0, 1000.0))


def test_grid_interiors_tile_the_image():
    shape = (10, 100, 70)
    grid = block_grid(shape, (4, 32, 32), (2, 8, 8), align=(1, 16, 16))
    cover = np.zeros(shape, int)
    for b in grid:
        cover[b.interior] += 1
        for i, o, n in zip(b.interior, b.outer, shape):
            assert o.start <= i.start and o.stop >= i.stop and 0 <= o.start and o.stop <= n
        assert b.outer[1].start % 16 == 0 and b.outer[2].start % 16 == 0
        assert tuple(s.stop - s.start for s in b.crop) == b.shape
    assert (cover == 1).all()
    assert len(grid) == 3 * 4 * 3
    assert chunk_shape((64, 512, 500), (16, 256, 256)) == (16, 256, 250)


def test_face_pairs_merge_cut_objects_not_touching_neighbours():
    low = np.zeros((10, 10), int)
    high = np.zeros((10, 10), int)
    low[2:6, 2:6] = 1   # object 1 continues as object 7 across the face
    high[2:6, 2:7] = 7
    low[7:9, 0:9] = 2   # object 2 only grazes object 8, a different nucleus
    high[8:10, 8:10] = 8
    pairs = face_pairs(low, high)
    assert [tuple(p) for p in pairs] == [(1, 7)]
    lut = merge_mapping(8, np.array([[1, 7], [7, 3]]))
    assert lut[1] == lut[7] == lut[3] != lut[2] and lut[0] == 0
    assert sorted(set(lut[1:].tolist())) == list(range(1, 7))


def _image(truth):
    return (truth > 0).astype(np.uint16) * 800 + 20


def _run(tmp_path, img, block, name, model=None, **kw):
    model = model or BlobModel()
    axes = "ZYX" if img.ndim == 3 else "YX"
    out = run_to_end(segment_blocks_iter(model, LazyImage(img, axes), tmp_path / name, CFG, block_shape=block,
                                         halo=kw.pop("halo", 12), skip_below=kw.pop("skip_below", 0), **kw))
    return np.asarray(open_labels(out)), model


def test_objects_cut_by_two_and_four_blocks_come_out_whole(tmp_path):
    # 2D, blocks of 32: one disc on a face between two blocks, one on a corner of four
    truth = balls((96, 96), [(32, 16), (64, 64), (16, 80)], 7)
    labels, _ = _run(tmp_path, _image(truth), (32, 32), "a.ome.zarr")
    assert labels.max() == 3 and len(np.unique(labels)) == 4
    assert average_precision(labels, truth, 0.9) == 1.0
    # the same objects whatever the block size (objects smaller than the halo)
    other, _ = _run(tmp_path, _image(truth), (48, 40), "b.ome.zarr")
    assert average_precision(other, labels, 0.99) == 1.0


def test_3d_ball_cut_by_eight_blocks_matches_the_whole_volume(tmp_path):
    from napari_tower.predict.segment import segment_iter

    truth = balls((24, 48, 48), [(12, 24, 24), (5, 8, 40)], 5)
    img = _image(truth)
    labels, _ = _run(tmp_path, img, (12, 24, 24), "c.ome.zarr", halo=(6, 12, 12))
    whole = run_to_end(segment_iter(BlobModel(), img, "ZYX", CFG))
    assert labels.max() == whole.max() == 2
    assert average_precision(labels, whole, 0.95) == 1.0  # the ball at the 8-block corner is one object
    assert average_precision(labels, truth, 0.5) == 1.0


def test_empty_blocks_are_skipped_without_the_model(tmp_path):
    truth = balls((256, 256), [(20, 20)], 6)
    img = _image(truth)
    labels, model = _run(tmp_path, img, (64, 64), "d.ome.zarr", halo=8, skip_below=0.05)
    assert labels.max() == 1 and average_precision(labels, truth, 0.9) == 1.0
    # the network runs only on blocks whose outer region holds the disc
    grid = block_grid(img.shape, (64, 64), (8, 8), (16, 16), (ALIGN, ALIGN))
    lit = sum(int(img[b.outer].max() > 100) for b in grid)
    assert model.calls == lit < len(grid) // 2


def test_resume_keeps_written_blocks_and_gives_the_same_output(tmp_path):
    truth = balls((96, 96), [(32, 16), (64, 64), (16, 80), (80, 20)], 7)
    img = _image(truth)
    full, _ = _run(tmp_path, img, (32, 32), "full.ome.zarr")
    model = BlobModel()
    seen = []
    gen = segment_blocks_iter(model, LazyImage(img, "YX"), tmp_path / "r.ome.zarr", CFG, block_shape=(32, 32),
                              halo=12, skip_below=0, should_stop=lambda: len(seen) >= 4)
    with pytest.raises(Cancelled):
        for p in gen:
            seen.append(p)
    part = tmp_path / "r.ome.zarr.part"
    assert part.is_dir() and not (tmp_path / "r.ome.zarr").exists()  # never half-written under the final name
    done = len(list((part / "_blocks").glob("*.npz")))
    assert 0 < done < 9
    with pytest.raises(InputError, match="other settings"):
        run_to_end(segment_blocks_iter(BlobModel(), LazyImage(img, "YX"), tmp_path / "r.ome.zarr", CFG,
                                       block_shape=(48, 48), halo=12, skip_below=0, resume=True))
    model2 = BlobModel()
    labels, _ = _run(tmp_path, img, (32, 32), "r.ome.zarr", model=model2, resume=True)
    assert model2.calls == 9 - done  # one predict_maps per remaining 2D block
    assert np.array_equal(labels, full)
    assert not part.exists()


def test_ome_zarr_output_metadata(tmp_path):
    truth = balls((8, 40, 40), [(4, 20, 20)], 4)
    img = LazyImage(_image(truth), "ZYX", voxel_size=(2.0, 0.5, 0.5))
    out = run_to_end(segment_blocks_iter(BlobModel(), img, tmp_path / "m.ome.zarr", CFG, skip_below=0))
    attrs = json.loads((out / ".zattrs").read_text())
    ms = attrs["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [2.0, 0.5, 0.5]
    assert not (out / "_local").exists() and not (out / "_blocks").exists()
    from napari_tower.io.metadata import voxel_size

    assert voxel_size(out) == (2.0, 0.5, 0.5)
    ome_zarr = pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    node = next(iter(Reader(parse_url(str(out)))()))
    assert np.array_equal(np.asarray(node.data[0]), np.asarray(open_labels(out)))
    assert ome_zarr is not None


def test_single_block_axes_keep_whole_chunks(tmp_path):
    import zarr

    truth = balls((6, 37, 41), [(3, 18, 20)], 4)  # prime sides, smaller than the block
    out = run_to_end(segment_blocks_iter(BlobModel(), LazyImage(_image(truth), "ZYX"), tmp_path / "p.ome.zarr", CFG,
                                         skip_below=0))
    assert zarr.open_array(str(out / "0"), mode="r").chunks == (6, 37, 41)
    assert np.asarray(open_labels(out)).max() == 1
