"""Model files: save/load round trip, sha256 verification, corrupt and unknown models."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

import napari_tower
from napari_tower import ModelError
from napari_tower.model.network import ArchConfig, TowerNet
from napari_tower.model.weights import BUNDLED_DIR, save_model


@pytest.mark.parametrize("name", ["default", "nuclei-fluo", "cells"])
def test_bundled_models_have_cards_with_metrics_and_fit_the_wheel(name):
    d = BUNDLED_DIR / name
    card = json.loads((d / "card.json").read_text())
    assert card["name"] == name and card["sha256"] and card["architecture"]["widths"]
    assert "validation" in card["metrics"] and card["training"]["command"]
    data = card["training"]["data"]
    data = " ".join(data) if isinstance(data, list) else data  # recipe cards list one credit per source
    assert "BBBC038" in data  # every segmentation model descends from dsb2018 training
    if name == "nuclei-fluo":  # trained on polyp_nuclei too: credited, licence included
        assert "CC BY 4.0" in data and card["postprocess"]["nonconvex_split_depth"] > 0
    if name == "cells":
        assert "BBBC030" in data and "CC BY 3.0" in data and card["postprocess"]["method"] == "flows"
    assert (d / "weights.safetensors").stat().st_size < 25 * 2**20
    assert napari_tower.load_model(name, device="cpu").name == name  # sha256 checked on load


def test_round_trip_gives_identical_predictions(tmp_path, small_image):
    torch.manual_seed(0)
    net = TowerNet(ArchConfig(widths=(8, 16, 32)))
    save_model(net, tmp_path / "m", {"description": "test"})
    m = napari_tower.load_model(tmp_path / "m", device="cpu")
    x = torch.rand(1, 1, 64, 64)
    net.eval()
    with torch.no_grad():
        # loading folds batch norm into the convolutions and runs channels-last: equal up to float rounding
        assert torch.allclose(net(x), m.net(x.contiguous(memory_format=torch.channels_last)), rtol=1e-4, atol=1e-4)
    assert not list((tmp_path / "m").glob("*.tmp"))


def test_corrupt_weights_are_refused(tmp_path):
    d = tmp_path / "m"
    shutil.copytree(BUNDLED_DIR / "default", d)
    data = bytearray((d / "weights.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        napari_tower.load_model(d)


def test_truncated_weights_without_checksum_are_refused(tmp_path):
    d = tmp_path / "m"
    shutil.copytree(BUNDLED_DIR / "default", d)
    card = json.loads((d / "card.json").read_text())
    card.pop("sha256")
    (d / "card.json").write_text(json.dumps(card))
    (d / "weights.safetensors").write_bytes(b"\x00\x01garbage")
    with pytest.raises(ModelError, match="cannot read weights"):
        napari_tower.load_model(d)


def test_unknown_model_and_non_model_folder(tmp_path):
    with pytest.raises(ModelError, match="unknown model"):
        napari_tower.load_model("no-such-model")
    with pytest.raises(ModelError, match="not a napari-tower model directory"):
        napari_tower.load_model(tmp_path)


def test_user_models_are_listed(tmp_path):
    from napari_tower.model.weights import user_models_dir

    save_model(TowerNet(ArchConfig(widths=(8, 16))), user_models_dir() / "mine", {})
    assert "mine" in napari_tower.list_models()
    assert "default" in napari_tower.list_models()


def test_flows_on_a_model_without_flow_maps_is_one_clear_error(tmp_path, small_image):
    save_model(TowerNet(ArchConfig(widths=(8, 16), seg_channels=3)), tmp_path / "old", {"name": "old"})
    img = small_image[0]
    assert napari_tower.segment(img, model=tmp_path / "old", device="cpu").shape == img.shape
    with pytest.raises(napari_tower.InputError, match="predicts no flows"):
        napari_tower.segment(img, model=tmp_path / "old", device="cpu", method="flows")
