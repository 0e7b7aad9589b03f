"""Few-shot fine-tuning through the API and the CLI: conventions, errors, saved models."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch

import napari_tower
from napari_tower import InputError, ModelError
from napari_tower.metrics import dice
from napari_tower.train.annotations import annotated_planes, plane_sample
from napari_tower.train.finetune import FAST_LR, GENTLE_LR


def test_finetune_saves_a_model_that_segments(tmp_path, small_image):
    img, lab = small_image
    out = napari_tower.finetune(img, lab, base="default", epochs=3, seed=0, device="cpu", output=tmp_path / "m")
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["base"] == "default" and card["training"]["steps"] >= 3
    # a trained segmentation head that already finds these nuclei: the gentler rate
    assert card["training"]["base_zero_shot_ap50"] > 0.5 and card["training"]["lr"] == 1e-3
    # ... whose encoder is kept as it is: only the decoder and heads learn
    assert card["training"]["encoder_frozen"] is True
    tuned, base = napari_tower.load_model(out, "cpu").net, napari_tower.load_model("default", "cpu").net
    enc_t, enc_b = tuned.encoder.state_dict(), base.encoder.state_dict()
    assert all(torch.equal(enc_t[k], enc_b[k]) for k in enc_b)
    assert not torch.equal(tuned.decoder.state_dict()[next(iter(base.decoder.state_dict()))],
                           base.decoder.state_dict()[next(iter(base.decoder.state_dict()))])
    assert card["postprocess"]["scale"] == 1.0  # trained at the user's scale: no auto upsampling
    areas = np.bincount(np.unique(lab, return_inverse=True)[1].ravel())[1:]
    assert card["postprocess"]["min_size"] == max(15, int(0.2 * np.median(areas)))  # fragments << the user's objects
    labels = napari_tower.segment(img, model=out)
    assert labels.shape == img.shape and dice(labels, lab) > 0.8
    # both separation methods were scored on the annotations and the better one is the model's
    choice = card["method_choice"]["ap50"]
    expected = "flows" if choice["flows"] > choice["watershed"] + card["method_choice"]["flows_margin"] else "watershed"
    assert card["postprocess"]["method"] == expected
    assert card["heads"][3:] == ["flow y", "flow x"]
    other = {"watershed": "flows", "flows": "watershed"}[card["postprocess"]["method"]]
    assert dice(napari_tower.segment(img, model=out, method=other), lab) > 0.7


def test_images_the_base_does_not_know_are_learnt_at_the_fast_rate(tmp_path):
    # textured noise with large square "cells": nothing like the default model's nuclei
    rng = np.random.default_rng(0)
    lab = np.kron(np.arange(1, 17).reshape(4, 4), np.ones((40, 40), int))
    lab[::40, :] = 0
    lab[:, ::40] = 0
    img = rng.normal(0, 1, lab.shape) * (1 + (lab % 3))
    out = napari_tower.finetune(img, lab, base="default", epochs=1, seed=0, device="cpu", output=tmp_path / "m")
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["base_zero_shot_ap50"] < 0.2 and card["training"]["lr"] == FAST_LR
    assert card["training"]["encoder_frozen"] is False  # foreign images: the encoder learns too


def test_large_objects_are_learnt_and_segmented_downscaled(tmp_path, small_image):
    img, lab = small_image
    big_img, big_lab = (np.kron(a, np.ones((4, 4), a.dtype)) for a in (img, lab))  # nuclei ~4x wider
    out = napari_tower.finetune(big_img, big_lab, base="default", epochs=2, seed=0, device="cpu", output=tmp_path / "m")
    card = json.loads((out / "card.json").read_text())
    assert 0.25 <= card["postprocess"]["scale"] < 0.6 and card["training"]["scale"] == card["postprocess"]["scale"]
    labels = napari_tower.segment(big_img, model=out)
    assert labels.shape == big_img.shape and dice(labels, big_lab) > 0.8


def test_same_seed_same_model(tmp_path, small_image):
    img, lab = small_image
    a = napari_tower.finetune(img, lab, base="none", epochs=2, seed=3, device="cpu", output=tmp_path / "a")
    b = napari_tower.finetune(img, lab, base="none", epochs=2, seed=3, device="cpu", output=tmp_path / "b")
    ma, mb = napari_tower.load_model(a, "cpu"), napari_tower.load_model(b, "cpu")
    assert ma.card["training"]["lr"] == FAST_LR  # random head: the faster rate
    for (ka, va), (kb, vb) in zip(ma.net.state_dict().items(), mb.net.state_dict().items()):
        assert ka == kb and np.allclose(va.numpy(), vb.numpy(), atol=1e-4), ka


def test_only_annotated_planes_are_used(small_image):
    img, lab = small_image
    stack_img = np.stack([img, img, img])
    stack_lab = np.stack([np.zeros_like(lab), lab, np.zeros_like(lab)])
    samples = annotated_planes(stack_img, stack_lab, "TYX")
    assert len(samples) == 1


def test_sparse_labels_ignore_unannotated_pixels(small_image):
    _, lab = small_image
    sparse = np.zeros_like(lab, dtype=np.int32)
    sparse[:40, :] = 1  # background marked in a band
    ids = [i for i in np.unique(lab) if i][::2]
    for i in ids:  # every other nucleus
        sparse[lab == i] = i + 1
    s = plane_sample(np.zeros(lab.shape, np.float32), sparse, sparse=True)
    assert s.valid.sum() == (sparse > 0).sum()
    assert s.targets[0][s.valid].sum() == sum((lab == i).sum() for i in ids)
    assert s.labels.max() == len(ids)


@pytest.mark.parametrize(
    "labels, sparse, match",
    [
        (np.zeros((160, 192), np.int32), False, "no annotation"),
        (np.ones((10, 10), np.int32), False, "do not match"),
        (np.full((160, 192), -1), False, "negative"),
        (np.full((160, 192), 0.5), False, "integers"),
        ("background-as-1", False, "sparse mode"),
        ("ones-only", True, "need 1 for background"),
    ],
)
def test_bad_annotations_get_one_clear_error(small_image, labels, sparse, match):
    lab = small_image[1]
    if isinstance(labels, str):
        labels = np.where(lab > 0, lab + 1, 1) if labels == "background-as-1" else (lab > 0).astype(np.int32) * 0 + 1
    with pytest.raises(InputError, match=match):
        napari_tower.finetune(small_image[0], labels, epochs=1, sparse=sparse, device="cpu")


def test_unknown_base(small_image):
    with pytest.raises(ModelError, match="unknown model"):
        napari_tower.finetune(*small_image, base="nope", epochs=1, device="cpu")


def test_export_import_round_trip(tmp_path, small_image):
    from napari_tower.model.weights import export_model, import_model

    out = napari_tower.finetune(*small_image, epochs=1, device="cpu", output=tmp_path / "shared-model")
    z = export_model(out, tmp_path / "share.zip")
    path = import_model(z)
    assert path.name == "shared-model" and "shared-model" in napari_tower.list_models()
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a valid zip"):
        import_model(tmp_path / "bad.zip")


def test_cli_finetune_then_segment(tmp_path, small_image):
    img, lab = small_image
    tifffile.imwrite(tmp_path / "img.tif", img)
    tifffile.imwrite(tmp_path / "lab.tif", lab)
    run = lambda *a: subprocess.run([sys.executable, "-m", "napari_tower.cli", *map(str, a)], capture_output=True, text=True, timeout=600)
    r = run("finetune", "--images", tmp_path / "img.tif", "--labels", tmp_path / "lab.tif", "--output", tmp_path / "m",
            "--epochs", "2", "--seed", "0", "--device", "cpu", "--encoder", "train")
    assert r.returncode == 0, r.stderr
    # a familiar base would keep its encoder; --encoder train overrides that
    assert json.loads((tmp_path / "m" / "card.json").read_text())["training"]["encoder_frozen"] is False
    r = run("segment", tmp_path / "img.tif", "-o", tmp_path / "out", "--model", tmp_path / "m")
    assert r.returncode == 0, r.stderr
    assert tifffile.imread(tmp_path / "out" / "img.tif").shape == img.shape
    tifffile.imwrite(tmp_path / "small.tif", lab[:50])
    r = run("finetune", "--images", tmp_path / "img.tif", "--labels", tmp_path / "small.tif", "--output", tmp_path / "m2", "--epochs", "1")
    assert r.returncode == 2 and "do not match" in r.stderr and "Traceback" not in r.stderr


def test_validation_runs_on_its_own_schedule_and_reports_best(small_image):
    """Validation every ``val_every`` steps even when that is not a multiple of ``log_every``."""
    import torch

    from napari_tower.progress import run_to_end
    from napari_tower.train.data import make_sample
    from napari_tower.train.finetune import base_network
    from napari_tower.train.trainer import TrainSettings, train

    img, lab = small_image
    s = make_sample(img, lab, rgb=False)
    net, _ = base_network("default")
    seen = []
    settings = TrainSettings(max_steps=7, batch_size=2, crop=64, val_every=3, log_every=5, seed=0)
    result = run_to_end(train(net, [s], [s], settings, torch.device("cpu"), on_best=lambda n, m: seen.append(m)))
    val_steps = [h["step"] for h in result.history if "ap50" in h]
    assert val_steps == [3, 6, 7]
    assert seen and all(0 <= m["dice"] <= 1 for m in seen)
    assert result.best_score == max(h["ap50"] + h["dice"] for h in result.history if "ap50" in h)


@pytest.mark.parametrize(
    "card, zero_shot, lr, keep",
    [
        ({}, None, FAST_LR, False),  # none: random initialisation
        ({"kind": "pretrained"}, None, FAST_LR, False),  # tower: untrained head
        ({"kind": "segmentation"}, 0.05, FAST_LR, False),  # foreign images (whole cells from default)
        ({"kind": "segmentation"}, 0.45, GENTLE_LR, False),  # a new source of a known kind (H&E it never saw)
        ({"kind": "segmentation"}, 0.64, GENTLE_LR, True),  # images the base already segments well
    ],
)
def test_training_rule_follows_the_zero_shot_score(card, zero_shot, lr, keep):
    from napari_tower.train.finetune import base_lr, keeps_encoder

    assert base_lr(card, zero_shot) == lr
    assert keeps_encoder(card, zero_shot) is keep
