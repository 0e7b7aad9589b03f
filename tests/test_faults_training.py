"""An interrupted fine-tuning leaves the last good model in its folder loadable."""
from __future__ import annotations

import numpy as np
import pytest

import napari_tower
from napari_tower.progress import run_to_end


@pytest.fixture
def trained(tmp_path, small_image):
    img, lab = small_image
    out = tmp_path / "mine"
    napari_tower.finetune(img, lab, output=out, epochs=1, device="cpu", seed=0)
    return out, (out / "weights.safetensors").read_bytes(), (out / "card.json").read_text()


def _unchanged(out, weights, card, img):
    assert (out / "weights.safetensors").read_bytes() == weights
    assert (out / "card.json").read_text() == card
    assert napari_tower.segment(img, model=out, device="cpu").shape == img.shape  # loads and runs


def test_ctrl_c_while_training_keeps_the_last_good_model(trained, small_image):
    out, weights, card = trained
    img, lab = small_image
    seen = []

    def interrupt(p):
        seen.append(p)
        if len(seen) == 3:
            raise KeyboardInterrupt  # what Ctrl-C raises in the CLI's progress loop

    with pytest.raises(KeyboardInterrupt):
        run_to_end(napari_tower.finetune_iter(img, lab, output=out, epochs=50, device="cpu", seed=1), interrupt)
    _unchanged(out, weights, card, img)


def test_interrupted_while_saving_keeps_the_last_good_model(trained, small_image, monkeypatch):
    out, weights, card = trained
    img, lab = small_image
    import safetensors.torch

    import napari_tower.model.weights as w

    real_save = safetensors.torch.save_file

    def dies_half_way(state, path, *args, **kwargs):
        real_save(state, path, *args, **kwargs)
        with open(path, "r+b") as fh:  # the process is killed with the new file half written
            fh.truncate(len(weights) // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", dies_half_way)  # imported where it is used
    monkeypatch.setattr(w, "save_file", dies_half_way, raising=False)  # or at the module's top
    with pytest.raises(KeyboardInterrupt):
        napari_tower.finetune(img, lab, output=out, epochs=1, device="cpu", seed=1)
    _unchanged(out, weights, card, img)
    assert not np.array_equal(np.frombuffer(weights[:64], np.uint8), np.zeros(64, np.uint8))


def test_killed_between_the_two_renames_loads_the_new_model(trained, small_image, monkeypatch):
    """save_model renames the weights, then the card; a kill between the two must not leave a
    folder whose card and weights disagree for good."""
    out, weights, card = trained
    img, lab = small_image
    import os

    real_replace = os.replace

    def killed_before_the_card(src, dst):
        if str(dst).endswith("card.json"):
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_before_the_card)
    with pytest.raises(KeyboardInterrupt):
        napari_tower.finetune(img, lab, output=out, epochs=1, device="cpu", seed=1)
    monkeypatch.setattr(os, "replace", real_replace)
    assert (out / "weights.safetensors").read_bytes() != weights  # the new weights went in
    assert (out / "card.json.tmp").is_file()
    assert napari_tower.segment(img, model=out, device="cpu").shape == img.shape  # loads: the card follows
    assert not (out / "card.json.tmp").exists()
