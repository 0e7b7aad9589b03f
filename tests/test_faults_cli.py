"""Faults met through the CLI: each is one ``napari-tower: error:`` line, no traceback, a non-zero
exit, and nothing half-written under a final name; a full disk is finished by ``--resume``.

The full-disk and read-only tests mount a small tmpfs (CI runs as root); where mounting is not
permitted they are skipped, saying so.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_tower.cli import main

ERROR = "napari-tower: error: "


def _errors(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith(ERROR)]


@pytest.fixture(scope="module")
def image_tif(tmp_path_factory, sample):
    path = tmp_path_factory.mktemp("in") / "nuclei.tif"
    tifffile.imwrite(path, sample[0])
    return path


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "2m", read_only: bool = False):
    """A small tmpfs at ``path`` (root and a kernel that allows it), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    try:
        run = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot mount a tmpfs here ({e}); the full-disk tests need root")
    if run.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({run.stderr.strip()}); the full-disk tests need root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def _fill(folder: Path, leave: int) -> Path:
    """A ballast file that leaves ``leave`` bytes free on ``folder``'s disk."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    ballast = folder / "ballast"
    with open(ballast, "wb") as fh:
        fh.write(b"\0" * max(free - leave, 0))
    return ballast


def _read_zarr_labels(path: Path) -> np.ndarray:
    from napari_tower.io.omezarr import open_labels

    return np.asarray(open_labels(path))


def test_output_under_a_file(image_tif, tmp_path, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the output folder should go")
    assert main(["segment", str(image_tif), "-o", str(blocker / "run1")]) == 2
    errors = _errors(capsys.readouterr().err)
    assert len(errors) == 1 and f"{blocker} is a file, not a folder" in errors[0]
    assert blocker.read_text().startswith("a file")  # untouched


def test_read_only_output_folder(image_tif, tmp_path, capsys):
    out = tmp_path / "ro"
    if os.geteuid() == 0:  # root writes through file modes: only a read-only mount refuses it
        ctx = tmpfs(out, "1m", read_only=True)
    else:
        out.mkdir()
        out.chmod(0o555)
        ctx = contextlib.nullcontext(out)
    with ctx:
        assert main(["segment", str(image_tif), "-o", str(out)]) == 2
        errors = _errors(capsys.readouterr().err)
        assert len(errors) == 1 and "no permission to write" in errors[0] and str(out) in errors[0]
        assert list(out.iterdir()) == []


@pytest.mark.slow
def test_full_disk_while_writing_ome_zarr_then_resume(image_tif, tmp_path, capsys):
    args = ["--output-format", "zarr", "--block-size", "256", "--model", "nuclei-fluo"]
    assert main(["segment", str(image_tif), "-o", str(tmp_path / "clean"), *args]) == 0
    clean = _read_zarr_labels(tmp_path / "clean" / "nuclei.ome.zarr")
    capsys.readouterr()
    with tmpfs(tmp_path / "small") as disk:
        # room for the group and a block or two, not for the scratch arrays and the labels of all four
        ballast = _fill(disk, 88 * 1024)
        out = disk / "out"
        assert main(["segment", str(image_tif), "-o", str(out), *args]) == 1
        errors = _errors(capsys.readouterr().err)
        assert len(errors) == 1, errors
        m = re.search(r"out/nuclei\.ome\.zarr: disk full while writing \((\d+) finished blocks? kept in "
                      r"nuclei\.ome\.zarr\.part\).*--resume", errors[0])
        assert m, errors[0]
        assert not (out / "nuclei.ome.zarr").exists()  # nothing under the final name
        assert (out / "nuclei.ome.zarr.part").is_dir()
        ballast.unlink()  # space freed
        assert main(["segment", str(image_tif), "-o", str(out), *args, "--resume"]) == 0
        err = capsys.readouterr().err
        assert not _errors(err)
        if int(m.group(1)):
            assert f"{m.group(1)} of 4 blocks already written" in err  # the kept blocks were not redone
        assert not (out / "nuclei.ome.zarr.part").exists()
        np.testing.assert_array_equal(_read_zarr_labels(out / "nuclei.ome.zarr"), clean)


@pytest.mark.slow
def test_full_disk_while_writing_tiff_then_rerun(image_tif, tmp_path, capsys):
    assert main(["segment", str(image_tif), "-o", str(tmp_path / "clean"), "--model", "nuclei-fluo"]) == 0
    clean = tifffile.imread(tmp_path / "clean" / "nuclei.tif")
    capsys.readouterr()
    with tmpfs(tmp_path / "small") as disk:
        ballast = _fill(disk, 4 * 1024)  # less than the compressed labels need
        out = disk / "out"
        out.mkdir()
        assert main(["segment", str(image_tif), "-o", str(out), "--model", "nuclei-fluo"]) == 1
        errors = _errors(capsys.readouterr().err)
        assert len(errors) == 1 and "out/nuclei.tif: disk full while writing" in errors[0], errors
        assert list(out.iterdir()) == []  # neither the final name nor a .part left behind
        ballast.unlink()
        assert main(["segment", str(image_tif), "-o", str(out), "--model", "nuclei-fluo", "--resume"]) == 0
        np.testing.assert_array_equal(tifffile.imread(out / "nuclei.tif"), clean)


def test_corrupt_chunk_in_ome_zarr_input_names_file_and_chunk(image_tif, tmp_path, capsys, sample, write_ngff):
    src = write_ngff(tmp_path / "in" / "damaged.ome.zarr", sample[0], "yx", (1.0, 1.0))
    chunk = src / "0" / "1" / "2"  # NGFF 0.4: "/" separated chunk keys (16 x 16 chunks)
    if not chunk.is_file():
        chunk = src / "0" / "1.2"
    chunk.write_bytes(b"\x00 not a compressed chunk \xff" * 3)
    shutil.copy(image_tif, tmp_path / "in" / "good.tif")
    out = tmp_path / "out"
    assert main(["segment", str(src), str(tmp_path / "in" / "good.tif"), "-o", str(out), "--block-size", "256"]) == 1
    errors = _errors(capsys.readouterr().err)
    assert len(errors) == 2, errors  # the input's line, then "1 of 2 inputs failed"
    assert str(src) in errors[0] and "chunk (1, 2)" in errors[0] and "damaged" in errors[0]
    assert f"({chunk})" in errors[0]  # the chunk's own file
    assert errors[1].endswith("1 of 2 inputs failed")
    assert (out / "good.tif").is_file()  # the batch went on
    assert not (out / "damaged.ome.zarr").exists()


def test_truncated_tiff_in_a_batch(image_tif, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    raw = image_tif.read_bytes()
    (folder / "a_truncated.tif").write_bytes(raw[: len(raw) // 3])
    shutil.copy(image_tif, folder / "b_good.tif")
    out = tmp_path / "out"
    assert main(["segment", str(folder), "-o", str(out)]) == 1
    errors = _errors(capsys.readouterr().err)
    assert len(errors) == 2 and "a_truncated.tif" in errors[0], errors
    assert sorted(p.name for p in out.iterdir()) == ["b_good.tif"]


def _model_copy(tmp_path: Path) -> Path:
    from napari_tower.model.weights import resolve_model_dir

    dst = tmp_path / "mymodel"
    shutil.copytree(resolve_model_dir("default"), dst)
    return dst


@pytest.mark.parametrize("damage, expected", [
    ("corrupt card", "cannot read model card"),
    ("missing weights", "is not a napari-tower model directory (needs weights.safetensors and card.json)"),
    ("truncated weights", "does not match the sha256 in its card"),
])
def test_damaged_model_folder(image_tif, tmp_path, capsys, damage, expected):
    model = _model_copy(tmp_path)
    if damage == "corrupt card":
        (model / "card.json").write_text('{"architecture": {"base": 3')
    elif damage == "missing weights":
        (model / "weights.safetensors").unlink()
    else:
        w = model / "weights.safetensors"
        w.write_bytes(w.read_bytes()[:1000])
    out = tmp_path / "out"
    assert main(["segment", str(image_tif), "-o", str(out), "--model", str(model)]) == 2
    errors = _errors(capsys.readouterr().err)
    assert len(errors) == 1 and expected in errors[0], errors
    assert not any(out.glob("*.tif"))


def test_bioimageio_zip_of_another_kind(image_tif, tmp_path, capsys):
    import yaml

    other = tmp_path / "stardist.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("rdf.yaml", yaml.safe_dump({"type": "model", "format_version": "0.5.4", "name": "StarDist"}))
        zf.writestr("weights.pt", b"\0")
    assert main(["segment", str(image_tif), "-o", str(tmp_path / "out"), "--model", str(other)]) == 2
    errors = _errors(capsys.readouterr().err)
    assert len(errors) == 1 and "bioimage.io package from another tool" in errors[0], errors
    json.dumps(errors)  # one plain line
