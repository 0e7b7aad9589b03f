"""Long training from a recipe: exact resume, atomic state, and the microscope augmentations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_tower.train import recipe as recipe_cmd
from napari_tower.train.microscope import MicroscopeAugment, apply, hed_variant, low_light
from napari_tower.train.render_cells import MODALITIES, random_layout, render

RECIPE = """
name: tiny
description: test
task: test
base: none
arch: fast
sources:
  - {kind: synthetic_cells, count: 3, size: 64}
group_weights: {cells-synthetic: 1.0}
schedule: {steps: 6, batch_size: 2, crop: 32, warmup_steps: 2, ema_decay: 0.5}
augment: {photon_noise: 0.5, blur: 0.5, illumination: 0.5, jpeg: 0.5}
checkpoint_minutes: 0
"""


def _run(tmp_path, run, *extra):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(RECIPE)
    rc = recipe_cmd.main([str(spec), "--data-root", str(tmp_path), "--run-dir", str(tmp_path / run),
                          "--candidate", str(tmp_path / f"{run}-cand"), *extra])
    assert rc == 0
    return torch.load(tmp_path / run / "state.pt", weights_only=False)


def test_an_interrupted_run_resumed_ends_with_the_same_weights_as_an_uninterrupted_one(tmp_path):
    torch.set_num_threads(1)
    whole = _run(tmp_path, "whole")
    first = _run(tmp_path, "split", "--stop-after-steps", "3")
    assert first["state"]["step"] == 3
    assert not (tmp_path / "split" / "state.pt.part").exists()
    resumed = _run(tmp_path, "split", "--resume")
    assert resumed["state"]["step"] == whole["state"]["step"] == 6
    for k, v in whole["net"].items():
        assert torch.equal(v, resumed["net"][k]), k
    # the weight average resumes exactly too, and is not the raw weights
    for k, v in whole["ema"].items():
        assert torch.equal(v, resumed["ema"][k]), k
    w = "stem.0.weight" if "stem.0.weight" in whole["net"] else next(iter(whole["net"]))
    assert not torch.equal(whole["ema"][w], whole["net"][w])
    # the log has one loss row per 50 steps at most, and a header naming the columns
    assert (tmp_path / "split" / "log.csv").read_text().startswith("step,wall_hours,cpu_hours,loss")


def test_an_existing_state_is_not_overwritten_without_resume(tmp_path):
    _run(tmp_path, "r", "--stop-after-steps", "1")
    spec = tmp_path / "tiny.yaml"
    assert recipe_cmd.main([str(spec), "--data-root", str(tmp_path), "--run-dir", str(tmp_path / "r"),
                            "--candidate", str(tmp_path / "c")]) == 2


def test_a_warm_restart_from_the_candidate_warms_the_learning_rate_up_again(tmp_path):
    from napari_tower.model.weights import save_model
    from napari_tower.train.recipe_spec import load_recipe

    spec = tmp_path / "tiny.yaml"
    spec.write_text(RECIPE)
    recipe = load_recipe(spec)
    net = recipe_cmd.build_network(recipe)
    state = {"step": 4, "wall_seconds": 60.0, "cpu_seconds": 60.0}
    save_model(net, tmp_path / "cand", recipe_cmd.make_card(recipe, net, {"score": 0.5}, state, []))
    rc = recipe_cmd.main([str(spec), "--data-root", str(tmp_path), "--run-dir", str(tmp_path / "warm"),
                          "--candidate", str(tmp_path / "cand"), "--resume", "--stop-after-steps", "1"])
    assert rc == 0
    saved = torch.load(tmp_path / "warm" / "state.pt", weights_only=False)
    assert saved["state"]["step"] == 5 and saved["state"]["restarted_at"] == 4
    # the first step after the restart runs at 1/warmup of the schedule's rate, not all of it
    assert recipe_cmd.lr_at(4, recipe, 4) == pytest.approx(recipe_cmd.lr_at(4, recipe) / recipe.schedule.warmup_steps)
    assert recipe_cmd.lr_at(4 + recipe.schedule.warmup_steps, recipe, 4) == recipe_cmd.lr_at(4 + recipe.schedule.warmup_steps, recipe)


def test_anneal_brings_the_rate_down_to_its_floor_and_stops_there_also_across_a_resume(tmp_path):
    from napari_tower.train.recipe_spec import load_recipe

    _run(tmp_path, "a", "--stop-after-steps", "2")
    first = _run(tmp_path, "a", "--resume", "--anneal", "3", "--anneal-lr", "1e-4", "--stop-after-steps", "1")
    assert first["state"]["anneal"] == {"start": 2, "steps": 3, "lr": 1e-4}
    resumed = _run(tmp_path, "a", "--resume")  # the anneal is part of the state: it ends at 2 + 3, not 6
    assert resumed["state"]["step"] == 5
    recipe = load_recipe(tmp_path / "tiny.yaml")
    a = resumed["state"]["anneal"]
    assert recipe_cmd.lr_at(2, recipe, anneal=a) == pytest.approx(1e-4)
    assert recipe_cmd.lr_at(5, recipe, anneal=a) == pytest.approx(recipe.schedule.lr * recipe.schedule.min_lr_fraction)
    assert recipe_cmd.lr_at(1, recipe, anneal=a) == recipe_cmd.lr_at(1, recipe)  # before it: the schedule
    with pytest.raises(SystemExit):  # argparse's one-line error, nothing trained
        recipe_cmd.main([str(tmp_path / "tiny.yaml"), "--data-root", str(tmp_path), "--run-dir", str(tmp_path / "b"),
                         "--candidate", str(tmp_path / "bc"), "--anneal", "0"])
    assert not (tmp_path / "b").exists()


def test_low_light_follows_the_photon_budget():
    img = np.zeros((64, 64), np.float32)
    img[16:48, 16:48] = 200.0
    rng = np.random.default_rng(0)
    for photons in (10, 1000):
        noisy = low_light(img, photons, rng)
        bright = noisy[20:44, 20:44]
        # Poisson: mean = photons, variance = photons (+ read noise 2^2)
        assert abs(bright.mean() - photons) < 0.1 * photons
        assert abs(bright.var() - (photons + 4)) < 0.25 * (photons + 4)


def test_augmentations_keep_shape_and_finite_values_and_change_the_image():
    rng = np.random.default_rng(1)
    img = torch.from_numpy(render(random_layout(96, rng), rng, "fluorescence"))
    ref = img.flatten()[::3].clone()
    cfg = MicroscopeAugment(photon_noise=1, blur=1, illumination=1, contrast=1, jpeg=1)
    out = apply(img.clone(), ref, rng, cfg)
    assert out.shape == img.shape and torch.isfinite(out).all()
    assert (out - img).abs().mean() > 0.01


def test_stain_variants_stay_valid_rgb():
    rgb = np.random.default_rng(2).uniform(0.2, 0.9, (500, 3)).astype(np.float32)
    out = hed_variant(rgb, np.random.default_rng(3))
    assert out.shape == rgb.shape and (out >= 0).all() and (out <= 1).all()
    assert not np.allclose(out, rgb, atol=0.02)


@pytest.mark.parametrize("modality", MODALITIES)
def test_rendered_cells_are_told_apart_from_the_background(modality):
    rng = np.random.default_rng(4)
    labels = random_layout(128, rng)
    assert labels.max() >= 3
    img = render(labels, rng, modality)
    edge = np.abs(np.gradient(img)[0]) + np.abs(np.gradient(img)[1])
    # every modality shows something at the cells (bodies, halos, relief or rims), not noise alone
    inside = edge[labels > 0].mean() if modality in ("dic", "membrane") else abs(img[labels > 0].mean() - img[labels == 0].mean())
    assert inside > 0.03, modality
