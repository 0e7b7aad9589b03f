"""Flow targets, their augmentation and flow following (instances of irregular cells)."""
from __future__ import annotations

import numpy as np
import pytest

from napari_tower.metrics import average_precision
from napari_tower.predict.flow_dynamics import instances_from_flows
from napari_tower.predict.postprocess import instances_from_maps
from napari_tower.predict.segment import rot90_maps
from napari_tower.train.flows import flows
from napari_tower.train.targets import seg_targets


def c_and_disc() -> np.ndarray:
    """A C-shaped cell (concave, its centroid outside it) touching a round one."""
    yy, xx = np.mgrid[:90, :120]
    r = np.hypot(yy - 45, xx - 45)
    lab = np.zeros((90, 120), np.int32)
    lab[(r > 18) & (r < 34) & ~((xx > 45) & (abs(yy - 45) < 12))] = 1
    lab[np.hypot(yy - 45, xx - 92) < 16] = 2
    return lab


def test_flows_are_unit_vectors_inside_objects_and_zero_outside(sample):
    lab = sample[1][:256, :256]
    f = flows(lab)
    norm = np.hypot(f[0], f[1])
    assert np.all(norm[lab == 0] == 0)
    inside = lab > 0
    assert np.mean(np.abs(norm[inside] - 1) < 1e-3) > 0.99  # the centre pixel alone may be flat


@pytest.mark.parametrize("labels", ["sample", "concave"])
def test_following_true_flows_recovers_the_objects(sample, labels):
    lab = sample[1] if labels == "sample" else c_and_disc()
    out = instances_from_flows(lab > 0, flows(lab), min_size=0)
    assert average_precision(out, lab, threshold=0.9) > 0.95


def test_flows_separate_a_concave_cell_from_its_neighbour():
    lab = c_and_disc()
    t = seg_targets(lab)
    by_flows = instances_from_maps(t[0], t[2], min_size=0, flow=t[3:5], method="flows")
    assert by_flows.max() == 2 and average_precision(by_flows, lab, threshold=0.9) == 1.0


def test_quarter_turns_turn_the_vectors(sample):
    lab = np.ascontiguousarray(sample[1][:161, :203])  # odd sides: the centre pixels stay the same
    maps = np.concatenate([np.zeros((3,) + lab.shape, np.float32), flows(lab)])
    turned = rot90_maps(maps, 1)[3:]
    expected = flows(np.rot90(lab))
    inside = np.rot90(lab) > 0
    cos = (turned * expected).sum(0)[inside]
    assert np.mean(cos > 0.99) > 0.97


def test_augmented_crops_keep_flows_pointing_to_the_centre(small_image):
    from napari_tower.train.annotations import plane_sample
    from napari_tower.train.augment import BatchSampler

    img, lab = small_image
    s = plane_sample(img.astype(np.float32) / 255, lab, sparse=False)
    sampler = BatchSampler([s], crop=96, scale_range=(1.0, 1.0), seed=3)
    _, y, _ = sampler.batch(16)
    y = y.numpy()
    for t in y:  # flows must climb the centerness of the same (rotated, flipped) crop
        gy, gx = np.gradient(t[2])
        inside = (t[0] > 0.5) & (np.hypot(gy, gx) > 0.05)
        cos = (t[3] * gy + t[4] * gx) / np.maximum(np.hypot(gy, gx) * np.hypot(t[3], t[4]), 1e-6)
        assert cos[inside].mean() > 0.5
