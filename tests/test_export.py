"""bioimage.io export and model zips: the package runs on its own, and loads back to the same labels."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml

import napari_tower
from napari_tower.cli import main
from napari_tower.errors import ModelError


@pytest.fixture(scope="module")
def default_package(tmp_path_factory):
    out = tmp_path_factory.mktemp("pkg") / "default.zip"
    return napari_tower.export("default", out, format="bioimageio", check=False)


def _read(zip_path: Path) -> tuple[dict, dict[str, bytes]]:
    with zipfile.ZipFile(zip_path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    return yaml.safe_load(files["rdf.yaml"]), files


def _scale_range(x: np.ndarray, kw: dict) -> np.ndarray:
    lo, hi = np.percentile(x, [kw["min_percentile"], kw["max_percentile"]])
    return ((x - lo) / (hi - lo + kw.get("eps", 1e-6))).astype(np.float32)


def test_package_describes_the_model(default_package):
    rdf, files = _read(default_package)
    assert rdf["type"] == "model" and rdf["format_version"].startswith("0.5.")
    assert any("2211.14715" in c["url"] for c in rdf["cite"])
    for ref in ["documentation", "covers"]:
        for name in np.atleast_1d(rdf[ref]):
            assert name in files
    assert files["cover.png"][:8] == b"\x89PNG\r\n\x1a\n"
    pre = rdf["inputs"][0]["preprocessing"][-1]
    assert pre["id"] == "scale_range" and (pre["kwargs"]["min_percentile"], pre["kwargs"]["max_percentile"]) == (1.0, 99.8)
    card = yaml.safe_load(files["card.json"])  # JSON is YAML
    assert rdf["config"]["napari_tower"]["postprocess"] == card["postprocess"]
    # every referenced file is in the zip with the sha256 the rdf gives
    import hashlib

    refs = [rdf["inputs"][0]["test_tensor"], rdf["outputs"][0]["test_tensor"], *rdf["attachments"],
            rdf["weights"]["torchscript"], rdf["weights"]["pytorch_state_dict"],
            rdf["weights"]["pytorch_state_dict"]["architecture"]]
    for r in refs:
        assert hashlib.sha256(files[r["source"]]).hexdigest() == r["sha256"], r["source"]
    assert "watershed" in files["README.md"].decode() and "split_depth" in files["README.md"].decode()


def test_package_weights_reproduce_the_test_output_without_napari_tower(default_package, tmp_path):
    rdf, files = _read(default_package)
    x = np.load(io.BytesIO(files["test_input.npy"]))
    expected = np.load(io.BytesIO(files["test_output.npy"]))
    xn = torch.from_numpy(_scale_range(x, rdf["inputs"][0]["preprocessing"][-1]["kwargs"]))
    ts = torch.jit.load(io.BytesIO(files["weights_torchscript.pt"]))
    np.testing.assert_allclose(ts(xn).detach().numpy(), expected, atol=1e-4)
    # the state dict with the architecture file alone, in a namespace that never saw napari_tower
    arch = rdf["weights"]["pytorch_state_dict"]["architecture"]
    src = files[arch["source"]].decode()
    assert "napari_tower" not in src
    import importlib.util

    (tmp_path / arch["source"]).write_text(src)
    spec = importlib.util.spec_from_file_location("tower_architecture_test", tmp_path / arch["source"])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as importlib-based loaders (bioimageio.core's) do
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    net = getattr(module, arch["callable"])(**arch["kwargs"]).eval()
    net.load_state_dict(torch.load(io.BytesIO(files["weights_state_dict.pt"]), weights_only=True))
    with torch.no_grad():
        np.testing.assert_allclose(net(xn).numpy(), expected, atol=1e-4)
    # any size that is a multiple of the step the rdf declares runs, output the input's size
    step = rdf["inputs"][0]["axes"][2]["size"]["step"]
    y = torch.rand(2, 1, 3 * step, 5 * step)
    assert ts(y).shape == (2, expected.shape[1], 3 * step, 5 * step)


def test_segment_with_the_package_gives_the_source_models_labels(default_package, tmp_path, small_image):
    img = small_image[0]
    tifffile.imwrite(tmp_path / "img.tif", img)
    for model, out in (("default", "a"), (str(default_package), "b")):
        assert main(["segment", str(tmp_path / "img.tif"), "-o", str(tmp_path / out), "--model", model, "--device", "cpu"]) == 0
    a, b = tifffile.imread(tmp_path / "a" / "img.tif"), tifffile.imread(tmp_path / "b" / "img.tif")
    assert a.max() > 5 and np.array_equal(a, b)


def test_fine_tuned_model_round_trips_through_both_zips(tmp_path, small_image):
    img, lab = small_image
    src = napari_tower.finetune(img, lab, epochs=1, seed=0, device="cpu", output=tmp_path / "mine")
    ref = napari_tower.segment(img, src, device="cpu")
    for fmt in ("bioimageio", "zip"):
        z = napari_tower.export(src, tmp_path / f"mine-{fmt}.zip", format=fmt, image=img, authors=["A. Tester"],
                                check=False)
        m = napari_tower.load_model(z, device="cpu")
        assert m.postprocess_defaults() == napari_tower.load_model(src, device="cpu").postprocess_defaults()
        assert np.array_equal(napari_tower.segment(img, m), ref), fmt
    rdf, _ = _read(tmp_path / "mine-bioimageio.zip")
    assert rdf["authors"] == [{"name": "A. Tester"}]
    # the widget's Import model takes the bioimage.io package too
    from napari_tower.model.weights import import_model

    assert import_model(tmp_path / "mine-bioimageio.zip").name == "mine"


def test_foreign_zips_get_one_clear_error(tmp_path):
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("rdf.yaml", yaml.safe_dump({"type": "model", "format_version": "0.5.4", "name": "UNet 2D"}))
        zf.writestr("weights.pt", b"\0")
    with pytest.raises(ModelError, match="bioimage.io package from another tool.*'UNet 2D'.*exported by napari-tower"):
        napari_tower.load_model(other, device="cpu")
    junk = tmp_path / "junk.zip"
    with zipfile.ZipFile(junk, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ModelError, match="not a napari-tower model zip nor a bioimage.io package"):
        napari_tower.load_model(junk)
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    assert main(["segment", str(tmp_path), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "bad.zip")]) == 2


def test_cli_export_zip_format(tmp_path, capsys):
    assert main(["export", "default", "--format", "zip", "-o", str(tmp_path / "d.zip")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "d.zip")
    assert napari_tower.load_model(tmp_path / "d.zip", device="cpu").card["name"] == "default"
    assert main(["export", "nope", "-o", str(tmp_path / "x.zip")]) == 2


@pytest.mark.skipif(not os.environ.get("BIOIMAGEIO_PYTHON"), reason="set BIOIMAGEIO_PYTHON to a Python that has "
                    "bioimageio.core and torch (and no napari-tower) to run 'bioimageio test' on an exported package")
def test_bioimageio_core_passes_the_package(default_package):
    py = os.environ["BIOIMAGEIO_PYTHON"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    assert subprocess.run([py, "-c", "import napari_tower"], capture_output=True, env=env).returncode != 0, \
        "BIOIMAGEIO_PYTHON must not have napari-tower: the package has to run without it"
    cli = Path(py).parent / "bioimageio"
    r = subprocess.run([str(cli), "test", str(default_package)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "passed" in r.stdout


def test_export_runs_bioimageio_test_when_bioimageio_core_is_importable(tmp_path, monkeypatch):
    """The check's wiring, with a stand-in for bioimageio.core (the real one runs above, in its own venv)."""
    import types

    import napari_tower.sharing.bioimageio  # noqa: F401 (imported for real before bioimageio is faked)

    seen = []

    class Summary:
        def __init__(self, status):
            self.status = status

        def format(self):
            return "weights.torchscript: output mismatch"

    def fake_test_model(source):
        seen.append(source)
        return Summary("failed" if len(seen) > 1 else "passed")

    core = types.ModuleType("bioimageio.core")
    core.test_model = fake_test_model
    monkeypatch.setitem(sys.modules, "bioimageio", types.ModuleType("bioimageio"))
    monkeypatch.setitem(sys.modules, "bioimageio.core", core)
    messages = []
    out = napari_tower.export("default", tmp_path / "a.zip", progress=lambda p: messages.append(p.message))
    assert seen == [str(out)] and messages[-1] == "bioimageio test passed"
    with pytest.raises(ModelError, match="(?s)fails 'bioimageio test'.*output mismatch"):
        napari_tower.export("default", tmp_path / "b.zip")
    assert len(seen) == 2  # (check=False, the CLI's --no-check, is what every other test here uses)
