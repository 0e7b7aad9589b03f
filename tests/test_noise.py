"""Photon-limited images are smoothed before the network; well-exposed ones are left alone."""
from __future__ import annotations

import numpy as np

import napari_tower
from napari_tower.io.noise import NOISY, denoise, noise_learned, noise_level
from napari_tower.io.normalize import percentile_normalize
from napari_tower.metrics import average_precision
from napari_tower.train.microscope import low_light


def test_noise_is_measured_on_the_grain_not_on_the_nuclei(sample):
    img, _ = sample
    clean = percentile_normalize(img.astype(np.float32))
    assert noise_level(clean) < NOISY
    assert denoise(clean) is clean  # untouched, not a smoothed copy
    levels = [noise_level(percentile_normalize(low_light(img, p, np.random.default_rng(0)))) for p in (100, 30, 10)]
    assert NOISY < levels[1] < levels[2] and levels[0] < levels[1]
    noisy = percentile_normalize(low_light(img, 10, np.random.default_rng(0)))
    assert noise_level(denoise(noisy)) < 0.5 * noise_level(noisy)


def test_a_low_light_image_is_segmented_far_better_with_denoise_auto(sample):
    img, truth = sample
    noisy = low_light(img, 10, np.random.default_rng(1))
    model = napari_tower.load_model("default", device="cpu")  # trained on well-exposed images only
    assert not noise_learned(model.card)
    ap_off = average_precision(napari_tower.segment(noisy, model=model, axes="YX", denoise="off"), truth)
    ap_auto = average_precision(napari_tower.segment(noisy, model=model, axes="YX"), truth)
    assert ap_auto > ap_off + 0.2, (ap_off, ap_auto)
    # a well-exposed image gets the same labels either way
    a = napari_tower.segment(img, model=model, axes="YX")
    b = napari_tower.segment(img, model=model, axes="YX", denoise="off")
    assert np.array_equal(a, b)


def test_a_model_that_learned_photon_noise_reads_the_grain_itself(sample):
    img, truth = sample
    noisy = low_light(img, 10, np.random.default_rng(1))
    model = napari_tower.load_model("nuclei-fluo", device="cpu")  # its recipe simulated 3-1000 photons
    assert noise_learned(model.card)
    auto = napari_tower.segment(noisy, model=model, axes="YX")
    assert np.array_equal(auto, napari_tower.segment(noisy, model=model, axes="YX", denoise="off"))  # not smoothed
    # and it reads it better than the well-exposed model after smoothing
    smoothed_default = napari_tower.segment(noisy, model="default", axes="YX", device="cpu")
    assert average_precision(auto, truth) > average_precision(smoothed_default, truth) + 0.05
