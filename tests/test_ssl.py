"""Self-supervised pretraining: proxy transforms, losses, data, the training loop, CLI.

Everything is tiny (64-pixel views, batches of 4, a few steps) so the module runs in
about a minute on a laptop CPU.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch

from napari_tower.errors import InputError, ModelError
from napari_tower.ssl import (
    PretrainConfig,
    ProxyConfig,
    ViewSampler,
    byol_loss,
    collect_planes,
    corrupt,
    info_nce,
    load_checkpoint,
    load_planes,
    pretrain_iter,
    proxy,
)
from napari_tower.ssl import pretrain as pretrain_mod

TINY = {"crop": 64, "batch_size": 4, "log_every": 1}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny convolutions run faster on one thread, and much faster on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def planes(sample):
    img = sample[0].astype(np.float32)
    img = (img - np.percentile(img, 1)) / (np.percentile(img, 99.8) - np.percentile(img, 1))
    return [np.ascontiguousarray(img[:96, :112]), np.ascontiguousarray(img[150:230, 200:300])]


def _rng(seed=0):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- proxy transforms


def test_nonlinear_curve_is_monotone_and_keeps_out_of_range_values():
    ramp = np.linspace(-0.2, 1.2, 2001, dtype=np.float32).reshape(1, -1)
    for seed in range(5):
        out = proxy.nonlinear_curve(ramp, _rng(seed), strength=1.0)
        assert out.shape == ramp.shape and out.dtype == np.float32
        assert np.all(np.diff(out[0]) >= -1e-6), "the curve must be monotone increasing"
        outside = (ramp < 0) | (ramp > 1)
        np.testing.assert_array_equal(out[outside], ramp[outside])
        ends = proxy.nonlinear_curve(np.array([[0.0, 1.0]], np.float32), _rng(seed), strength=1.0)
        np.testing.assert_allclose(ends, [[0.0, 1.0]], atol=1e-6)  # the curve fixes 0 and 1
    changed = proxy.nonlinear_curve(ramp, _rng(1), strength=1.0)
    assert np.abs(changed - ramp).max() > 0.02
    same = proxy.nonlinear_curve(ramp, _rng(1), strength=0.0)  # strength 0 = identity
    np.testing.assert_allclose(same, ramp, atol=2e-3)


def test_local_shuffle_keeps_each_windows_values():
    img = _rng(0).random((40, 36)).astype(np.float32)
    before = img.copy()
    out = proxy.local_shuffle(img, _rng(1), fraction=1.0, min_window=4, max_window=4)
    np.testing.assert_array_equal(img, before)  # pure: input untouched
    assert not np.array_equal(out, img)
    for y in range(0, 40, 4):
        for x in range(0, 36, 4):
            a, b = img[y : y + 4, x : x + 4], out[y : y + 4, x : x + 4]
            np.testing.assert_array_equal(np.sort(a, axis=None), np.sort(b, axis=None))
    none = proxy.local_shuffle(img, _rng(1), fraction=0.0)
    np.testing.assert_array_equal(none, img)


def test_inpainting_changes_only_inside_boxes():
    img = _rng(0).random((64, 64)).astype(np.float32) * 0.5 + 0.25
    out, mask = proxy.inpaint_with_mask(img, _rng(3), max_boxes=3, strength=0.4)
    assert mask.any() and not mask.all()
    np.testing.assert_array_equal(out[~mask], img[~mask])
    assert np.mean(out[mask] != img[mask]) > 0.99
    assert out[mask].min() >= img.min() and out[mask].max() <= img.max()  # noise over the image's range
    np.testing.assert_array_equal(proxy.inpaint(img, _rng(3), max_boxes=3, strength=0.4), out)


def test_outpainting_keeps_one_box_exactly():
    img = _rng(0).random((64, 80)).astype(np.float32)
    out, keep = proxy.outpaint_with_mask(img, _rng(2), strength=0.5)
    ys, xs = np.nonzero(keep)
    assert keep[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()  # one rectangle
    assert 0.2 < keep.mean() < 0.8
    np.testing.assert_array_equal(out[keep], img[keep])
    assert np.mean(out[~keep] != img[~keep]) > 0.99
    np.testing.assert_array_equal(proxy.outpaint(img, _rng(2), strength=0.5), out)


def test_poisson_gaussian_noise_has_the_expected_variance():
    c, peak, read = 0.5, 100.0, 0.05
    img = np.full((256, 256), c, np.float32)
    out = proxy.poisson_gaussian_noise(img, _rng(0), peak=peak, read_std=read)
    assert abs(out.mean() - c) < 2e-3
    expected = c / peak + read**2
    assert abs(out.var() / expected - 1) < 0.05
    # shot noise grows with the signal
    bright = proxy.poisson_gaussian_noise(np.full((128, 128), 1.0, np.float32), _rng(1), peak=peak, read_std=0.0)
    dim = proxy.poisson_gaussian_noise(np.full((128, 128), 0.1, np.float32), _rng(1), peak=peak, read_std=0.0)
    assert bright.var() > 5 * dim.var()


def test_blur_illumination_and_contrast():
    img = _rng(0).random((64, 64)).astype(np.float32)
    blurred = proxy.gaussian_blur(img, _rng(0), sigma=2.0)
    assert blurred.var() < 0.2 * img.var() and abs(blurred.mean() - img.mean()) < 0.01
    lit = proxy.illumination(img, _rng(0), strength=1.0)
    assert not np.allclose(lit, img)
    ones = proxy.illumination(np.ones((64, 64), np.float32), _rng(0), strength=1.0)
    assert np.abs(np.diff(ones, axis=0)).max() < 0.05 and np.abs(np.diff(ones, axis=1)).max() < 0.05  # smooth field
    stained = proxy.stain_contrast(img, _rng(4), strength=1.0)
    assert not np.allclose(stained, img)
    np.testing.assert_array_equal(np.argsort(stained, axis=None, kind="stable"), np.argsort(img, axis=None, kind="stable"))


def test_transmitted_light_renders_phase_halo_dic_relief_and_absorption():
    yy, xx = np.mgrid[:96, :96]
    r = np.hypot(yy - 48, xx - 48)
    disk = (r < 12).astype(np.float32)  # a bright nucleus on a dark field
    inside, halo, far = r < 6, (r > 13) & (r < 16), r > 35

    phase = proxy.transmitted_light(disk, _rng(0), strength=1.0, mode="phase")
    assert phase[inside].mean() < phase[far].mean() < phase[halo].mean()  # dark object, bright halo
    bright = proxy.transmitted_light(disk, _rng(0), strength=1.0, mode="brightfield")
    assert bright[inside].mean() < bright[far].mean() - 0.3  # absorbs: dark on a bright field
    dic = proxy.transmitted_light(disk, _rng(0), strength=1.0, mode="dic")
    rim = (r > 9) & (r < 13)
    # relief: the rim is bright on one side and dark on the opposite one, the field level between
    rim_vals = dic[rim]
    assert rim_vals.max() - dic[far].mean() > 0.3 and dic[far].mean() - rim_vals.min() > 0.3
    assert abs(dic[inside].mean() - dic[far].mean()) < 0.1
    for mode in proxy.TRANSMITTED_MODES:  # the plane's intensity range is kept
        out = proxy.transmitted_light(disk, _rng(1), strength=1.0, mode=mode)
        assert -0.1 < np.percentile(out, 1) and np.percentile(out, 99.8) < 1.1
    np.testing.assert_array_equal(proxy.transmitted_light(disk, _rng(0), strength=0.0), disk)  # 0 = identity
    with pytest.raises(ValueError, match="mode"):
        proxy.transmitted_light(disk, _rng(0), mode="darkfield")
    # off by default (older configs draw as before); on, corrupt renders some views
    assert ProxyConfig().transmitted_p == 0
    only = ProxyConfig(curve_p=0, shuffle_p=0, paint_p=0, blur_p=0, noise_p=0, illumination_p=0, stain_p=0, transmitted_p=1.0)
    assert not np.allclose(corrupt(disk, only, _rng(2)), disk)


def test_corrupt_is_pure_accepts_tensors_and_never_paints_twice(monkeypatch):
    img = _rng(0).random((48, 48)).astype(np.float32)
    before = img.copy()
    cfg = ProxyConfig()
    out = corrupt(img, cfg, _rng(1))
    np.testing.assert_array_equal(img, before)  # the clean image stays the target
    assert out.shape == img.shape and out.dtype == np.float32 and not np.array_equal(out, img)
    t = torch.from_numpy(img)[None]
    tout = corrupt(t, cfg, _rng(1))
    assert isinstance(tout, torch.Tensor) and tout.shape == t.shape
    np.testing.assert_allclose(tout[0].numpy(), out, rtol=1e-6, atol=1e-6)  # same draws, same result

    calls = []
    real_in, real_out = proxy.inpaint, proxy.outpaint
    monkeypatch.setattr(proxy, "inpaint", lambda *a, **k: (calls.append("in"), real_in(*a, **k))[1])
    monkeypatch.setattr(proxy, "outpaint", lambda *a, **k: (calls.append("out"), real_out(*a, **k))[1])
    only_paint = ProxyConfig(curve_p=0, shuffle_p=0, blur_p=0, noise_p=0, illumination_p=0, stain_p=0, paint_p=1.0, inpaint_rate=0.5)
    rng = _rng(5)
    seen = set()
    for _ in range(40):
        calls.clear()
        corrupt(img, only_paint, rng)
        assert len(calls) == 1
        seen.add(calls[0])
    assert seen == {"in", "out"}


# --------------------------------------------------------------------------- losses


def test_info_nce_known_value():
    t = 0.5
    e = torch.eye(2)
    z = torch.stack([e[0], e[1]])  # two samples with orthogonal embeddings, each view identical
    # anchor e0: positive sim 1, negatives e1 (view 1) and e1 (view 2) with sim 0
    expected = math.log(1 + 2 * math.exp(-1 / t))
    assert info_nce(z, z.clone(), t).item() == pytest.approx(expected, rel=1e-6)
    assert info_nce(3 * z, 0.5 * z, t).item() == pytest.approx(expected, rel=1e-6)  # L2-normalised


def test_info_nce_matches_a_hand_computation():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    t = 0.3
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    n = 3
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        num = math.exp(float(z[i] @ z[pos]) / t)
        den = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(2 * n) if k != i)
        total += -math.log(num / den)
    assert info_nce(z1, z2, t).item() == pytest.approx(total / (2 * n), rel=1e-5)
    assert info_nce(z1, z2, t).item() == pytest.approx(info_nce(z2, z1, t).item(), rel=1e-6)  # symmetric


def test_byol_loss_values():
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert byol_loss(p, p).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(p, -p).item() == pytest.approx(4.0)
    assert byol_loss(p, p.flip(1)).item() == pytest.approx(2.0)


# --------------------------------------------------------------------------- data


def test_collect_planes_from_files_and_folders(tmp_path, small_image):
    from skimage.io import imsave

    img = small_image[0]
    d = tmp_path / "imgs"
    d.mkdir()
    tifffile.imwrite(d / "a.tif", img)
    rgb = np.stack([img / img.max() * 255] * 3, axis=-1).astype(np.uint8)
    rgb[..., 1] //= 2
    imsave(d / "b.png", rgb, check_contrast=False)
    tifffile.imwrite(d / "stack.tif", np.stack([img, img[::-1], img[:, ::-1]]))  # ZYX: 3 planes
    tifffile.imwrite(d / "movie.tif", np.stack([img, img]).astype(np.uint16), imagej=True, metadata={"axes": "TYX"})
    (d / "broken.tif").write_bytes(b"not a tiff")
    (d / "notes.txt").write_text("not an image")
    warnings = []
    planes, used = load_planes([d], warn=warnings.append)
    assert len(planes) == 1 + 1 + 3 + 2
    assert [f.name for f in used] == ["a.tif", "b.png", "movie.tif", "stack.tif"]
    assert len(warnings) == 1 and "broken.tif" in warnings[0]
    for p in planes:
        assert p.ndim == 2 and p.dtype == np.float32 and p.shape == img.shape
        assert abs(np.percentile(p, 1)) < 1e-4 and abs(np.percentile(p, 99.8) - 1) < 1e-3
    assert len(collect_planes([d / "a.tif"])) == 1
    with pytest.raises(InputError, match="no usable image planes"):
        collect_planes([d / "broken.tif", d / "notes.txt"], warn=lambda m: None)


def test_view_sampler_gives_two_views_of_the_same_region():
    plane = _rng(0).random((100, 90)).astype(np.float32)
    s = ViewSampler([plane], crop=32, rng=_rng(1), min_scale=1.0, jitter=0.0)
    v1, v2 = s.pairs(6)
    assert v1.shape == v2.shape == (6, 32, 32) and v1.dtype == np.float32
    for a, b in zip(v1, v2):
        variants = [np.rot90(f, k) for f in (a, a[:, ::-1]) for k in range(4)]
        assert any(np.array_equal(v, b) for v in variants)
    resized = ViewSampler([plane], crop=64, rng=_rng(2)).pairs(2)[0]
    assert resized.shape == (2, 64, 64)


# --------------------------------------------------------------------------- the training loop


def _run(planes, out, max_steps=2, **cfg):
    reports = list(pretrain_iter(planes, {**TINY, **cfg}, "cpu", out, max_steps=max_steps))
    return reports


@pytest.mark.parametrize("cfg, keys", [
    ({"method": "tower"}, {"restore", "nce"}),
    ({"method": "simclr"}, {"nce"}),
    ({"method": "byol"}, {"byol"}),
    ({"method": "tower", "use_proxy": False}, {"restore", "nce"}),
    ({"method": "tower", "use_nce": False}, {"restore"}),
    ({"method": "tower", "use_restore": False}, {"nce"}),
])
def test_each_method_runs_and_saves_a_pretrained_model(tmp_path, planes, cfg, keys):
    out = tmp_path / "m"
    reports = _run(planes, out, max_steps=2, **cfg)
    steps = [r for r in reports if r.result is None]
    assert [r.step for r in steps] == [1, 2]
    assert all(set(r.metrics) == keys and np.isfinite(r.loss) for r in steps)
    assert reports[-1].result == out
    card = json.loads((out / "card.json").read_text())
    assert card["kind"] == "pretrained" and card["pretraining"]["method"] == cfg["method"]
    assert card["pretraining"]["steps"] == 2 and card["pretraining"]["n_planes"] == len(planes)
    assert card["pretraining"]["config"]["use_proxy"] == cfg.get("use_proxy", True)
    assert card["postprocess"]["prob_threshold"] == 0.5
    assert (out / "weights.safetensors").is_file() and (out / "checkpoint.safetensors").is_file()
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 2
    assert not list(out.glob("*.tmp"))


def test_restoration_target_is_the_clean_view(tmp_path, planes, monkeypatch):
    corrupted_inputs, targets = [], []
    from napari_tower.ssl import batches as batches_mod

    real_corrupt, real_restore = batches_mod.corrupt, pretrain_mod.restore_loss

    def spy_corrupt(img, cfg, rng):
        corrupted_inputs.append(np.array(img))
        return real_corrupt(img, cfg, rng)

    def spy_restore(pred, clean):
        targets.append(clean.detach().cpu().numpy()[:, 0])
        return real_restore(pred, clean)

    monkeypatch.setattr(batches_mod, "corrupt", spy_corrupt)
    monkeypatch.setattr(pretrain_mod, "restore_loss", spy_restore)
    _run(planes, tmp_path / "m", max_steps=1, method="tower")
    assert len(targets) == 1 and len(corrupted_inputs) == 2 * TINY["batch_size"]
    np.testing.assert_array_equal(targets[0], np.stack(corrupted_inputs))


def test_resume_continues_the_step_count_and_matches_an_uninterrupted_run(tmp_path, planes):
    out = tmp_path / "m"
    n = 0

    def stop_after_two():
        nonlocal n
        n += 1
        return n >= 2

    first = list(pretrain_iter(planes, TINY, "cpu", out, max_steps=4, should_stop=stop_after_two))
    assert first[-1].result == out and first[-1].step == 2
    assert json.loads((out / "card.json").read_text())["pretraining"]["stopped_early"] is True
    _, state = load_checkpoint(out)
    assert state["step"] == 2

    second = list(pretrain_iter(planes, TINY, "cpu", out, max_steps=4, resume=True))
    assert second[0].message == "resumed from step 2"
    assert [r.step for r in second if r.result is None and r.loss is not None] == [3, 4]
    card = json.loads((out / "card.json").read_text())
    assert card["pretraining"]["steps"] == 4 and card["pretraining"]["stopped_early"] is False

    whole = tmp_path / "whole"
    list(pretrain_iter(planes, TINY, "cpu", whole, max_steps=4))
    from napari_tower.model.weights import load_network

    a, _ = load_network(out)
    b, _ = load_network(whole)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(va, vb, rtol=1e-4, atol=1e-5, msg=k)

    with pytest.raises(InputError, match="other settings"):
        next(pretrain_iter(planes, {**TINY, "method": "simclr"}, "cpu", out, max_steps=6, resume=True))


def test_data_workers_give_the_same_batches_in_order_whatever_their_number(planes):
    from napari_tower.ssl.batches import BatchMaker, BatchPool
    from napari_tower.ssl.proxy import ProxyConfig

    maker = BatchMaker(planes, 32, 2, seed=3, independent_crops=False, view_cfg=ProxyConfig())
    direct = [maker(i) for i in range(5, 9)]
    assert direct[0][0].shape == (4, 32, 32) and not np.array_equal(direct[0][0], direct[0][1])  # corrupted views
    assert not np.array_equal(direct[0][1], direct[1][1])
    for workers in (1, 3):
        pool = BatchPool(maker, workers, start=5)
        try:
            got = [pool.get() for _ in range(4)]
        finally:
            pool.close()
        assert not os.path.exists(pool._planes_file)  # the workers' shared copy of the planes is gone
        for (v, c), (dv, dc) in zip(got, direct):
            np.testing.assert_array_equal(v, dv)
            np.testing.assert_array_equal(c, dc)


def test_a_dead_data_worker_is_a_clear_error_not_a_hang(planes):
    from napari_tower.ssl.batches import BatchMaker, BatchPool

    pool = BatchPool(BatchMaker(planes, 32, 2, 0, True, None), 2)
    try:
        pool.get()
        for p in pool._procs:
            p.kill()
        with pytest.raises(RuntimeError, match="data worker stopped.*--workers 0"):
            for _ in range(8):  # the batches already read can still come out first
                pool.get()
    finally:
        pool.close()


def test_pretraining_with_data_workers_resumes_and_records_them(tmp_path, planes):
    out = tmp_path / "m"
    list(pretrain_iter(planes, TINY, "cpu", out, max_steps=2, workers=2))
    reports = list(pretrain_iter(planes, TINY, "cpu", out, max_steps=4, workers=1, resume=True))
    assert reports[0].message == "resumed from step 2" and reports[-1].result == out
    card = json.loads((out / "card.json").read_text())["pretraining"]
    assert card["steps"] == 4 and card["data_workers"] == 1
    with pytest.raises(InputError, match="workers"):
        next(pretrain_iter(planes, TINY, "cpu", tmp_path / "x", max_steps=1, workers=-1))


def test_time_budget_ends_training_cleanly(tmp_path, planes):
    out = tmp_path / "m"
    # 60 ms and no step limit: the budget alone ends the run (one step on a slow machine, a few on a fast one)
    reports = list(pretrain_iter(planes, TINY, "cpu", out, max_minutes=0.001))
    steps = reports[-1].step
    assert reports[-1].result == out and 1 <= steps < 1000
    assert "min)" in reports[0].message
    card = json.loads((out / "card.json").read_text())
    assert card["pretraining"]["steps"] == steps and card["pretraining"]["max_minutes"] == 0.001


def test_a_failed_checkpoint_write_leaves_the_previous_one(tmp_path, planes, monkeypatch):
    out = tmp_path / "m"
    _run(planes, out, max_steps=1)
    good = (out / "checkpoint.safetensors").read_bytes()
    import safetensors.torch

    def crash(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        list(pretrain_iter(planes, TINY, "cpu", out, max_steps=2, resume=True))
    monkeypatch.undo()
    assert (out / "checkpoint.safetensors").read_bytes() == good
    assert load_checkpoint(out)[1]["step"] == 1
    reports = list(pretrain_iter(planes, TINY, "cpu", out, max_steps=2, resume=True))  # and it resumes
    assert reports[-1].step == 2 and not list(out.glob("*.tmp"))


def test_pretrained_model_loads_as_a_finetuning_base(tmp_path, planes):
    from napari_tower.train.finetune import base_network, default_arch

    out = tmp_path / "pre"
    _run(planes, out, max_steps=1)
    net, name = base_network(str(out))
    assert net.cfg.widths == default_arch().widths and name == "pre"
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 5, 32, 32)  # flow maps added for fine-tuning


def test_pretraining_continues_from_the_bundled_tower_weights(tmp_path, planes):
    from napari_tower.model.weights import BUNDLED_DIR, load_network

    tower, _ = load_network(BUNDLED_DIR / "tower")
    # a learning rate of ~0 leaves the weights where they start: the base's, restoration head included
    random_start = _run(planes, tmp_path / "random", max_steps=1, method="tower", lr=1e-12)
    reports = list(pretrain_iter(planes, {**TINY, "method": "tower", "lr": 1e-12}, "cpu", tmp_path / "from_tower",
                                 max_steps=1, base="tower"))
    net, card = load_network(tmp_path / "from_tower")
    assert card["pretraining"]["base"] == "tower" and card["architecture"] == json.loads(
        (BUNDLED_DIR / "tower" / "card.json").read_text())["architecture"]
    for name, p in tower.state_dict().items():
        if p.dtype.is_floating_point and "running" not in name:
            torch.testing.assert_close(net.state_dict()[name], p, atol=1e-6, rtol=0, msg=name)
    # the trained restoration head restores corrupted views far better than a random start
    restore = lambda rs: rs[0].metrics["restore"]  # noqa: E731
    assert restore(reports) < 0.5 * restore(random_start)
    with pytest.raises(ModelError):
        list(pretrain_iter(planes, TINY, "cpu", tmp_path / "bad", max_steps=1, base=str(tmp_path / "nowhere")))
    assert not (tmp_path / "bad").exists()  # nothing written for a base that is not there


def test_head_warmup_keeps_the_pretrained_parts_fixed_at_first(tmp_path, planes, small_image):
    from napari_tower.train.annotations import annotated_planes
    from napari_tower.train.finetune import _load_base, pretrained_parts
    from napari_tower.train.trainer import TrainSettings, train

    out = tmp_path / "pre"
    _run(planes, out, max_steps=1)
    net, _, card = _load_base(str(out))
    assert pretrained_parts(card) == ("encoder", "decoder", "fullres", "refine")  # TOWER restores: decoder too
    assert pretrained_parts({}) == () and pretrained_parts({"kind": "pretrained", "pretraining": {"config": {
        "method": "simclr", "use_restore": False}}}) == ("encoder",)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    settings = TrainSettings(max_steps=10, batch_size=2, crop=64, lr=1e-3, log_every=1, val_every=10**9,
                             frozen=pretrained_parts(card), frozen_until=0.2)
    moved = {}
    for p in train(net, annotated_planes(*small_image), None, settings, torch.device("cpu")):
        if p.result is None:
            sd = net.state_dict()
            moved[p.step] = {part: any(not torch.equal(sd[k], start[k]) for k in sd if k.startswith(part + "."))
                             for part in ("encoder", "decoder", "seg_head")}
    warm = 2  # steps 1 and 2 start before 0.2 of the 10 steps
    # the random head learns from the first step; encoder and decoder (weights and batch-norm
    # statistics) only once the warm-up is over
    assert all(moved[s]["seg_head"] and not moved[s]["encoder"] and not moved[s]["decoder"] for s in range(1, warm + 1))
    assert moved[10]["encoder"] and moved[10]["decoder"]
    assert all(p.requires_grad for p in net.parameters())  # nothing left frozen for later use


def test_bad_settings_are_input_errors(tmp_path, planes):
    with pytest.raises(InputError, match="crop"):
        next(pretrain_iter(planes, {"crop": 50}, "cpu", tmp_path, max_steps=1))
    with pytest.raises(InputError, match="ablations"):
        next(pretrain_iter(planes, {"method": "simclr", "use_proxy": False}, "cpu", tmp_path, max_steps=1))
    with pytest.raises(InputError, match="nothing to train"):
        next(pretrain_iter(planes, {"use_nce": False, "use_restore": False}, "cpu", tmp_path, max_steps=1))
    with pytest.raises(InputError, match="steps"):
        next(pretrain_iter(planes, {}, "cpu", tmp_path))
    with pytest.raises(Exception, match="multiple of 16"):
        PretrainConfig(crop=50)
    with pytest.raises(InputError, match="2D"):
        next(pretrain_iter([np.zeros((2, 8, 8))], {}, "cpu", tmp_path, max_steps=1))


# --------------------------------------------------------------------------- CLI


def _cli(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "napari_tower.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


def test_cli_pretrain_runs_on_a_folder_and_rejects_a_bad_path(tmp_path, small_image):
    d = tmp_path / "imgs"
    d.mkdir()
    tifffile.imwrite(d / "a.tif", small_image[0])
    tifffile.imwrite(d / "b.tif", small_image[0][::-1].copy())
    out = tmp_path / "pre"
    r = _cli("pretrain", "--images", d, "--output", out, "--max-steps", 2, "--crop", 64, "--batch-size", 4, "--device", "cpu",
             "--transmitted-light", 0.5)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out) and "pretrain" in r.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["kind"] == "pretrained" and card["pretraining"]["steps"] == 2
    assert card["pretraining"]["config"]["proxy"]["transmitted_p"] == 0.5
    assert [m["file"] for m in card["pretraining"]["data"]] == ["a.tif", "b.tif"]
    assert all(len(m["sha256"]) == 64 for m in card["pretraining"]["data"])

    helptext = _cli("pretrain", "--help").stdout
    for flag in ("--images", "--output", "--method", "--max-steps", "--max-minutes", "--resume", "--device", "--seed",
                 "--no-proxy", "--no-nce", "--no-restore", "--transmitted-light", "--base"):
        assert flag in helptext
    wrong = _cli("pretrain", "--images", d, "--output", tmp_path / "y", "--max-steps", 1, "--transmitted-light", 2)
    assert wrong.returncode == 2 and "transmitted_p" in wrong.stderr and not (tmp_path / "y" / "card.json").exists()
    ignored = _cli("pretrain", "--images", d, "--output", tmp_path / "z", "--max-steps", 1, "--method", "simclr",
                   "--transmitted-light", 0.5)
    assert ignored.returncode == 2 and "--method tower" in ignored.stderr

    bad = _cli("pretrain", "--images", tmp_path / "nope", "--output", tmp_path / "x")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "nope" in bad.stderr and "Traceback" not in bad.stderr
