"""Write a napari-tower model as a bioimage.io model package (model format 0.5).

The package runs without napari-tower: TorchScript weights and a ``pytorch_state_dict``
whose architecture source (``tower_architecture.py``, made from ``model/network.py``) is
inside the zip. Its output is the network's maps (probabilities, then flows); turning them
into instances is napari-tower's post-processing, which the package's README describes.
napari-tower itself reads the package back from the attached ``weights.safetensors`` and
``card.json`` (see ``model/archive.py``), so importing never unpickles or runs TorchScript.
"""
from __future__ import annotations

import hashlib
import inspect
import io
import os
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..errors import InputError, ModelError
from ..model import network as _network
from ..model.network import FLOW_SCALE, TowerNet, fold_batchnorm
from ..model.weights import CARD, WEIGHTS, load_network, resolve_model_dir
from ..progress import Progress
from ._docs import documentation

FORMAT_VERSION = "0.5.4"  # plain file names for covers/docs: read by 0.5.x tools old and new
ARCH_FILE = "tower_architecture.py"
ARCH_CALLABLE = "TowerMaps"
INPUT_ID, OUTPUT_ID = "raw", "maps"
LOW, HIGH = 1.0, 99.8  # io.normalize.percentile_normalize's defaults
TOWER_PAPER = {
    "text": "Chen, Li, Chen, Luo. A knowledge-based learning framework for self-supervised pre-training "
            "towards enhanced recognition of biomedical microscopy images. Neural Networks (2023); arXiv:2211.14715",
    "url": "https://arxiv.org/abs/2211.14715",
}
OUTPUT_CHANNELS = ["foreground", "boundary", "centerness", "flow_y", "flow_x"]

_WRAPPER = '''

class TowerMaps(nn.Module):
    """bioimage.io entry point: (B, 1, Y, X) percentile-normalised image -> (B, C, Y, X) maps:
    sigmoid probabilities of foreground, boundary and centerness, then the flows (dy, dx)
    towards each object's centre at unit length (models with five maps)."""

    def __init__(self, architecture: dict):
        super().__init__()
        self.net = TowerNet(ArchConfig.from_dict(architecture))

    def forward(self, x):
        logits = self.net(x)
        return torch.cat([torch.sigmoid(logits[:, :3]), logits[:, 3:] / FLOW_SCALE], dim=1)
'''


class TowerMaps(torch.nn.Module):
    """The same wrapper as the package's architecture file, for tracing and test outputs."""

    def __init__(self, net: TowerNet):
        super().__init__()
        self.net = net

    def forward(self, x):
        logits = self.net(x)
        return torch.cat([torch.sigmoid(logits[:, :3]), logits[:, 3:] / FLOW_SCALE], dim=1)


def architecture_source() -> str:
    """``model/network.py`` made standalone (it imports only torch), plus the wrapper.

    The ``__future__`` import goes: string annotations make dataclasses look their module up
    in ``sys.modules``, which a file loaded by bioimage.io tools is not always in.
    """
    src = inspect.getsource(_network)
    if "from ." in src or "import napari" in src:
        raise ModelError("model/network.py imports other napari-tower modules; the bioimage.io "
                         "architecture file must be standalone")
    src = src.replace("from __future__ import annotations\n", "")
    return src + _WRAPPER


def normalize_like_bioimageio(image: np.ndarray) -> np.ndarray:
    """The package's ``scale_range`` preprocessing (napari-tower's normalisation, with its eps)."""
    image = np.asarray(image, np.float32)
    lo, hi = np.percentile(image, [LOW, HIGH])
    return ((image - lo) / (hi - lo + 1e-6)).astype(np.float32)


def _test_image(image) -> np.ndarray:
    """A 2D gray crop, sides multiples of 32, at most 256 px: the test input and the cover."""
    if image is None:
        from .._sample_data import sample_image

        image = sample_image()
        image = image[100:356, 100:356]
    image = np.asarray(image)
    if image.ndim != 2 or not np.issubdtype(image.dtype, np.number):
        raise InputError(f"the test image must be a 2D numeric gray image, got shape {image.shape} {image.dtype}")
    h, w = (min(256, n // 32 * 32) for n in image.shape)
    if min(h, w) < 64:
        raise InputError(f"the test image must be at least 64x64 pixels, got {image.shape}")
    y0, x0 = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    return np.ascontiguousarray(image[y0 : y0 + h, x0 : x0 + w]).astype(np.float32)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _tif(arr: np.ndarray) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, arr)
    return buf.getvalue()


def _cover(image: np.ndarray, labels: np.ndarray) -> bytes:
    """A 2:1 PNG: the test image, and the same with napari-tower's instances outlined."""
    from skimage.color import label2rgb
    from skimage.segmentation import find_boundaries
    from skimage.transform import resize
    import imageio.v3 as iio

    g = np.clip(normalize_like_bioimageio(image), 0, 1)
    gray = np.repeat(g[..., None], 3, axis=-1)
    over = label2rgb(labels, image=g, bg_label=0, alpha=0.35, image_alpha=1.0)
    over[find_boundaries(labels, mode="inner")] = (1.0, 1.0, 0.2)
    side = 256
    panels = [resize(p, (side, side, 3), order=0, anti_aliasing=False) for p in (gray, over)]
    return iio.imwrite("<bytes>", (np.concatenate(panels, axis=1) * 255).astype(np.uint8), extension=".png")


def _axes(out: bool, divisor: int, n_channels: int) -> list[dict]:
    channel = {"type": "channel", "channel_names": OUTPUT_CHANNELS[:n_channels] if out else ["gray"]}
    axes = [{"type": "batch"}, channel]
    for a in ("y", "x"):
        if out:
            axes.append({"type": "space", "id": a, "size": {"tensor_id": INPUT_ID, "axis_id": a}})
        else:  # any size that is a multiple of the network's divisor
            axes.append({"type": "space", "id": a, "size": {"min": max(64, 2 * divisor), "step": divisor}})
    return axes


def _rdf(card: dict, files: dict[str, bytes], divisor: int, n_channels: int, authors: list[str],
         license: str, name: str, description: str) -> dict:
    from ..versioning import __version__

    def f(name):
        return {"source": name, "sha256": _sha(files[name])}

    post = card.get("postprocess", {})
    return {
        "type": "model",
        "format_version": FORMAT_VERSION,
        "name": name,
        "description": description,
        "authors": [{"name": a} for a in authors],
        "cite": [TOWER_PAPER],
        "license": license,
        "documentation": "README.md",
        "covers": ["cover.png"],
        "tags": ["napari-tower", "tower", "nuclei", "instance-segmentation", "2d", "pytorch", "self-supervised"],
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": [{
            "id": INPUT_ID,
            "description": "one gray channel (convert RGB stains to hematoxylin first, as napari-tower does)",
            "axes": _axes(False, divisor, n_channels),
            "test_tensor": f("test_input.npy"),
            "sample_tensor": f("sample_input.tif"),
            "data": {"type": "float32"},
            "preprocessing": [
                {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                {"id": "scale_range", "kwargs": {"axes": ["y", "x"], "min_percentile": LOW, "max_percentile": HIGH}},
            ],
        }],
        "outputs": [{
            "id": OUTPUT_ID,
            "description": "foreground, boundary, centerness probabilities; flows to object centres "
                           "(README: maps to instances)",
            "axes": _axes(True, divisor, n_channels),
            "test_tensor": f("test_output.npy"),
            "sample_tensor": f("sample_output.tif"),
            "data": {"type": "float32"},
        }],
        "weights": {
            "pytorch_state_dict": {
                **f("weights_state_dict.pt"),
                "architecture": {**f(ARCH_FILE), "callable": ARCH_CALLABLE,
                                 "kwargs": {"architecture": card["architecture"]}},
                "pytorch_version": torch.__version__.split("+")[0],
            },
            "torchscript": {**f("weights_torchscript.pt"), "parent": "pytorch_state_dict",
                            "pytorch_version": torch.__version__.split("+")[0],
                            "comment": "traced, BatchNorm folded into the convolutions"},
        },
        "attachments": [f(WEIGHTS), f(CARD)],
        "config": {
            "napari_tower": {
                "version": __version__, "weights": WEIGHTS, "card": CARD, "model_name": card.get("name"),
                "postprocess": post, "architecture": card["architecture"],
            },
            "bioimageio": {
                "task": "instance segmentation (maps; post-processing in napari-tower)",
                "target_structure": ["nuclei"], "architecture_type": "residual U-Net",
                "model_parameter_count": int(card.get("parameters") or 0) or None,
            },
        },
    }


def export_bioimageio_iter(model, path, image=None, authors: list[str] | None = None, license: str | None = None,
                           name: str | None = None, description: str | None = None,
                           check: bool | None = None) -> Iterator[Progress]:
    """Like :func:`export_bioimageio`, as a generator of Progress; ``result`` is the zip path."""
    yield Progress(0, 4, "loading model")
    src = resolve_model_dir(model)
    net, card = load_network(src)
    net.eval()
    cfg = net.cfg
    n_channels = min(cfg.seg_channels, len(OUTPUT_CHANNELS))
    raw = _test_image(image)
    yield Progress(1, 4, "tracing the network")
    maps_net = TowerMaps(net).eval()
    state = maps_net.state_dict()
    traced_net = TowerMaps(fold_batchnorm(load_network(src)[0])).eval()
    x = torch.from_numpy(normalize_like_bioimageio(raw))[None, None]
    with torch.no_grad():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "torch.jit.trace is deprecated": still what bioimage.io runs
            traced = torch.jit.trace(traced_net, x)
        out = traced(x).numpy()
    yield Progress(2, 4, "predicting the test output and cover")
    from ..predict.segment import segment_iter
    from ..predict.tower_model import load_model, predict_config
    from ..progress import run_to_end

    model = load_model(src, device="cpu")
    labels = run_to_end(segment_iter(model, raw, "YX", predict_config(model)))
    files: dict[str, bytes] = {}
    files["test_input.npy"] = _npy(raw[None, None])
    files["test_output.npy"] = _npy(out.astype(np.float32))
    files["sample_input.tif"] = _tif(raw[None, None])
    files["sample_output.tif"] = _tif(out.astype(np.float32))
    files["cover.png"] = _cover(raw, labels)
    files[ARCH_FILE] = architecture_source().encode()
    buf = io.BytesIO()
    torch.save(state, buf)
    files["weights_state_dict.pt"] = buf.getvalue()
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    files["weights_torchscript.pt"] = buf.getvalue()
    files[WEIGHTS] = (src / WEIGHTS).read_bytes()
    files[CARD] = (src / CARD).read_bytes()
    mname = name or f"napari-tower {card.get('name', src.name)}"
    desc = description or card.get("description") or f"napari-tower model '{card.get('name', src.name)}'"
    authors = authors or card.get("authors") or ["napari-tower developers"]
    lic = license or card.get("license") or "BSD-3-Clause"
    files["README.md"] = documentation(card, mname, desc, n_channels).encode()
    rdf = _rdf(card, files, cfg.divisor, n_channels, list(authors), lic, mname, desc)
    import yaml

    files["rdf.yaml"] = yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True).encode()
    yield Progress(3, 4, "writing the package")
    path = Path(path)
    if path.suffix.lower() != ".zip":
        path = path.with_suffix(".zip")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for fname, data in files.items():
            zf.writestr(fname, data)
    os.replace(tmp, path)
    if check is not False:
        ok, report = bioimageio_check(path)
        if ok is None and check:
            raise ModelError("bioimageio.core is not installed: cannot run 'bioimageio test' (pip install bioimageio.core)")
        if ok is False:
            raise ModelError(f"the package {path} was written but fails 'bioimageio test':\n{report}")
        yield Progress(4, 4, "bioimageio test passed" if ok else "written (bioimageio.core not installed: not tested)",
                       result=path)
        return
    yield Progress(4, 4, "written", result=path)


def export_bioimageio(model, path, image=None, **kwargs) -> Path:
    """Export a model (name or folder) as a bioimage.io model package (zip). See the CLI's ``export``."""
    from ..progress import run_to_end

    return run_to_end(export_bioimageio_iter(model, path, image, **kwargs))


def bioimageio_check(path) -> tuple[bool | None, str]:
    """Run bioimage.io's own model test when bioimageio.core is importable (None when not)."""
    try:
        from bioimageio.core import test_model
    except Exception:  # noqa: BLE001 (missing, or broken by its pydantic pin: not our failure)
        return None, "bioimageio.core not importable"
    summary = test_model(str(path))
    ok = summary.status == "passed"
    return ok, "" if ok else summary.format() if hasattr(summary, "format") else str(summary)
