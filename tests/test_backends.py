"""Inference backends: ONNX Runtime gives torch's maps and labels, is cached, forced or
refused by NAPARI_TOWER_BACKEND, falls back to torch when it cannot run, and keeps torch out
of a CPU segmentation."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_tower.io.normalize import percentile_normalize
from napari_tower.model import backends
from napari_tower.predict.tower_model import load_model

ort = pytest.importorskip("onnxruntime")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_TOWER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(backends.ENV, raising=False)
    return tmp_path / "cache"


def test_onnx_runtime_gives_torch_maps_and_labels(cache, small_image, monkeypatch):
    import napari_tower
    from napari_tower.predict.tiling import predict_maps

    m = load_model("default", "cpu")
    assert m.backend.name == "onnxruntime"
    x = percentile_normalize(small_image[0].astype(np.float32))
    ref = backends.TorchBackend(m.net, m.device)  # the torch network, built on first use
    np.testing.assert_allclose(m.predict_maps(x), predict_maps(ref, x, None, divisor=m.arch.divisor), atol=1e-4)
    lab_onnx = napari_tower.segment(small_image[0], m)
    monkeypatch.setenv(backends.ENV, "torch")
    mt = load_model("default", "cpu")
    assert mt.backend.name == "torch"
    assert lab_onnx.max() > 3
    np.testing.assert_array_equal(lab_onnx, napari_tower.segment(small_image[0], mt))


def test_export_is_cached_and_reused(cache, monkeypatch):
    load_model("default", "cpu")
    files = list((cache / "onnx").iterdir())
    assert len(files) == 1 and files[0].suffix == ".onnx"

    def no_export(*a, **k):
        raise AssertionError("exported again")

    monkeypatch.setattr(backends, "export_onnx", no_export)
    assert load_model("default", "cpu").backend.name == "onnxruntime"


def test_failed_export_falls_back_to_torch_unless_onnx_is_forced(cache, monkeypatch):
    from napari_tower.errors import ModelError

    def broken(*a, **k):
        raise RuntimeError("no exporter here")

    monkeypatch.setattr(backends, "export_onnx", broken)
    with pytest.warns(RuntimeWarning, match="using torch"):
        assert load_model("default", "cpu").backend.name == "torch"
    monkeypatch.setenv(backends.ENV, "onnx")
    with pytest.raises(ModelError, match="ONNX Runtime"):
        load_model("default", "cpu")
    monkeypatch.setenv(backends.ENV, "fast")
    with pytest.raises(ModelError, match="auto, torch or onnx"):
        load_model("default", "cpu")


def test_corrupt_weights_are_refused_before_any_export(cache, tmp_path):
    import shutil

    from napari_tower.errors import ModelError
    from napari_tower.model.weights import resolve_model_dir

    d = tmp_path / "m"
    shutil.copytree(resolve_model_dir("default"), d)
    w = d / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ModelError, match="sha256"):
        load_model(str(d), "cpu")
    assert not (cache / "onnx").exists()


def test_cpu_segmentation_never_imports_torch(cache, tmp_path):
    """torch's import is 1.5-2 s of every command's start-up; with a cached export it is not needed."""
    load_model("default", "cpu")
    load_model("nuclei-fluo", "cpu")
    load_model("cells", "cpu")  # auto tries it when the nuclei result does not fit (noise does not)
    code = (
        "import sys, numpy as np\n"
        "from napari_tower.cli import main\n"
        "import tifffile\n"
        f"tifffile.imwrite(r'{tmp_path}/a.tif', (np.random.default_rng(0).random((64, 80)) * 255).astype(np.uint8))\n"
        f"tifffile.imwrite(r'{tmp_path}/s.tif', (np.random.default_rng(0).random((6, 40, 48)) * 255).astype(np.uint8))\n"
        f"assert main(['segment', r'{tmp_path}/a.tif', r'{tmp_path}/s.tif', '-o', r'{tmp_path}/out', '--device', 'cpu']) == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_linear_resize_matches_torch():
    import torch

    from napari_tower.predict.resample import resize_linear

    rng = np.random.default_rng(0)
    for shape, size in [((3, 37, 53), (74, 106)), ((2, 100, 80), (41, 33)), ((1, 9, 8), (9, 21))]:
        a = rng.random(shape, dtype=np.float32)
        want = torch.nn.functional.interpolate(torch.from_numpy(a)[None], size=size, mode="bilinear", align_corners=False)[0]
        np.testing.assert_allclose(resize_linear(a, size), want.numpy(), atol=1e-5)
    v = rng.random((12, 20, 16), dtype=np.float32)
    want = torch.nn.functional.interpolate(torch.from_numpy(v)[None, None], size=(25, 20, 7), mode="trilinear",
                                           align_corners=False)[0, 0]
    np.testing.assert_allclose(resize_linear(v, (25, 20, 7)), want.numpy(), atol=1e-5)


def test_arch_facts_without_torch_agree_with_the_network():
    from napari_tower.model import arch, network

    assert arch.FLOW_SCALE == network.FLOW_SCALE
    for cfg in (network.ArchConfig(), network.ArchConfig(widths=(8, 16, 32, 64, 128), stem_stride=2, seg_channels=5)):
        info = arch.ArchInfo.from_dict(cfg.to_dict())
        assert (info.divisor, info.seg_channels) == (cfg.divisor, cfg.seg_channels)
    assert arch.ArchInfo.from_dict({}) == arch.ArchInfo(network.ArchConfig().divisor, network.ArchConfig().seg_channels)


def test_auto_device_without_a_gpu_runs_onnx_even_with_a_gpu_build_of_torch(cache, monkeypatch):
    """pip's Linux torch is a CUDA build; on a machine without a GPU, 'auto' is the CPU all the same."""
    import torch

    monkeypatch.setattr(backends, "torch_may_accelerate", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert backends.wants_onnx("auto")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not backends.wants_onnx("auto")
    assert backends.wants_onnx("cpu")
