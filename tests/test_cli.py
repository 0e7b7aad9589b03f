"""The ``napari-tower`` command as a user runs it (a real subprocess)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile
from skimage.io import imsave

from napari_tower.metrics import average_precision


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "napari_tower.cli", *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("sub", ["", "segment", "models"])
def test_help_explains_every_subcommand(sub):
    r = run_cli(*([sub] if sub else []), "--help")
    assert r.returncode == 0
    assert "usage: napari-tower" in r.stdout
    if sub == "segment":
        for flag in ("--output", "--model", "--device", "--axes", "--prob-threshold", "--min-size", "--tile"):
            assert flag in r.stdout


def test_segment_files_and_folders_keeps_going_after_a_bad_file(tmp_path, sample, small_image):
    img, truth = sample
    inputs = tmp_path / "in"
    inputs.mkdir()
    tifffile.imwrite(inputs / "a.ome.tif", img)
    imsave(inputs / "b.png", (small_image[0] / small_image[0].max() * 255).astype(np.uint8), check_contrast=False)
    (inputs / "broken.tif").write_bytes(b"this is not a tiff")
    out = tmp_path / "out"
    r = run_cli("segment", inputs, "-o", out, "--device", "cpu")
    assert r.returncode == 1, r.stderr
    assert "broken.tif" in r.stderr and "cannot read" in r.stderr
    assert r.stderr.count("napari-tower: error:") == 2  # the bad file, then the summary
    a = tifffile.imread(out / "a.tif")
    assert a.shape == img.shape and np.issubdtype(a.dtype, np.integer)
    assert average_precision(a, truth) > 0.68  # measured 0.77
    b = tifffile.imread(out / "b.tif")
    assert b.shape == small_image[0].shape and b.max() > 0
    assert not (out / "broken.tif").exists()


def test_all_good_inputs_exit_zero_and_report_progress(tmp_path, small_image):
    f = tmp_path / "x.tif"
    tifffile.imwrite(f, small_image[0])
    r = run_cli("segment", f, "-o", tmp_path / "o", "--scale", "auto", "--tta")
    assert r.returncode == 0, r.stderr
    assert "x.tif" in r.stderr and "objects" in r.stderr
    assert (tmp_path / "o" / "x.tif").is_file()


def test_bad_scale_is_one_clear_line(tmp_path, small_image):
    f = tmp_path / "x.tif"
    tifffile.imwrite(f, small_image[0])
    r = run_cli("segment", f, "-o", tmp_path / "o", "--scale", "big")
    assert r.returncode == 2 and "expected a number or 'auto'" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("segment", f, "-o", tmp_path / "o", "--scale", "9")
    assert r.returncode == 2 and "scale must be 'auto' or between 0.25 and 4" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o" / "x.tif").exists()


def test_unknown_model_is_one_clear_line(tmp_path, small_image):
    f = tmp_path / "x.tif"
    tifffile.imwrite(f, small_image[0])
    r = run_cli("segment", f, "-o", tmp_path / "o", "--model", "nope")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "unknown model 'nope'" in r.stderr
    assert "Traceback" not in r.stderr


def test_models_lists_auto_and_the_bundled_models():
    r = run_cli("models")
    names = [line.split("\t")[0] for line in r.stdout.splitlines()]
    assert r.returncode == 0 and names[0] == "auto" and {"default", "nuclei-fluo"} <= set(names)
