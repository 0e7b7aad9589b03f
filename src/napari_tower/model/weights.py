"""Model directories: ``weights.safetensors`` + ``card.json``, and where to find them.

A model is looked up by name among the bundled models (shipped in the wheel) and the
user's saved models (``user_models_dir()``), or by a directory path. Weights are only
ever read with safetensors (never a pickle) and checked against the card's sha256.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelError

if TYPE_CHECKING:  # torch is imported where a network is built, not to read a card
    import torch

    from .network import TowerNet

WEIGHTS = "weights.safetensors"
CARD = "card.json"
FORMAT_VERSION = 1
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "models"


def user_models_dir() -> Path:
    """Where saved user models live (``NAPARI_TOWER_HOME`` overrides, for tests and clusters)."""
    root = os.environ.get("NAPARI_TOWER_HOME")
    if root:
        return Path(root) / "models"
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-tower", appauthor=False)) / "models"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_model_dir(p: Path) -> bool:
    return (p / WEIGHTS).is_file() and (p / CARD).is_file()


def available_models() -> dict[str, Path]:
    """Name -> directory, bundled models first; a user model cannot shadow a bundled name."""
    found: dict[str, Path] = {}
    for root, prefix in ((BUNDLED_DIR, ""), (user_models_dir(), "")):
        if root.is_dir():
            for p in sorted(root.iterdir()):
                if _is_model_dir(p) and p.name not in found:
                    found[prefix + p.name] = p
    return found


def resolve_model_dir(model: str | os.PathLike) -> Path:
    p = Path(model).expanduser()
    if p.is_dir():
        if not _is_model_dir(p):
            raise ModelError(f"{p} is not a napari-tower model directory (needs {WEIGHTS} and {CARD})")
        return p
    if p.is_file() and p.suffix.lower() == ".zip":
        return unpack_zip(p)[0]
    if str(model) == "auto":
        raise ModelError("'auto' picks a bundled model per image when segmenting (napari_tower.choose_model): "
                         "here name one, e.g. 'default' or 'nuclei-fluo'")
    models = available_models()
    if str(model) in models:
        return models[str(model)]
    names = ", ".join(models) or "none"
    raise ModelError(f"unknown model {str(model)!r}: not a directory or .zip, and not one of the known models ({names})")


def unpack_zip(zip_path: Path) -> tuple[Path, str]:
    """A model zip (napari-tower's or an exported bioimage.io package) unpacked to a cache folder."""
    from .archive import unpack_model_zip

    return unpack_model_zip(zip_path, user_models_dir().parent / "unpacked")


def _finish_interrupted_save(model_dir: Path) -> None:
    """``save_model`` renames the new weights, then the new card: a process killed between the two
    leaves the new weights beside the old card (their sha256 disagree) and the new card as
    ``card.json.tmp``. When that card matches the weights, finish its rename."""
    tmp, wpath = model_dir / (CARD + ".tmp"), model_dir / WEIGHTS
    if not tmp.is_file() or not wpath.is_file():
        return
    try:
        new = json.loads(tmp.read_text())
        if isinstance(new, dict) and new.get("sha256") and sha256_of(wpath) == new["sha256"]:
            os.replace(tmp, model_dir / CARD)
    except (OSError, ValueError):  # a half-written card.json.tmp, or a read-only folder: leave it
        pass


def read_card(model_dir: Path) -> dict:
    _finish_interrupted_save(Path(model_dir))
    try:
        card = json.loads((model_dir / CARD).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"cannot read model card {model_dir / CARD}: {e}") from None
    if not isinstance(card, dict) or "architecture" not in card:
        raise ModelError(f"model card {model_dir / CARD} has no 'architecture' entry")
    return card


def load_network(model_dir: Path, verify: bool = True) -> tuple[TowerNet, dict]:
    from safetensors.torch import load_file

    from .network import ArchConfig, TowerNet

    card = read_card(model_dir)
    wpath = model_dir / WEIGHTS
    if verify and card.get("sha256") and sha256_of(wpath) != card["sha256"]:
        raise ModelError(f"{wpath} does not match the sha256 in its card: the file is corrupt or was replaced")
    try:
        state = load_file(str(wpath))
    except Exception as e:  # safetensors raises several kinds for damaged files
        raise ModelError(f"cannot read weights {wpath}: {e}") from None
    try:
        net = TowerNet(ArchConfig.from_dict(card["architecture"]))
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, KeyError) as e:
        raise ModelError(f"weights in {wpath} do not fit the architecture in its card: {e}") from None
    return net, card


def save_model(net: TowerNet, model_dir: str | os.PathLike, card: dict) -> Path:
    """Write weights and card atomically (temporary files, then rename)."""
    from safetensors.torch import save_file

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp_w = model_dir / (WEIGHTS + ".tmp")
    state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(tmp_w))
    card = dict(card)
    card.update(format_version=FORMAT_VERSION, architecture=net.cfg.to_dict(), sha256=sha256_of(tmp_w))
    card.setdefault("name", model_dir.name)
    tmp_c = model_dir / (CARD + ".tmp")
    tmp_c.write_text(json.dumps(card, indent=2, default=str))
    os.replace(tmp_w, model_dir / WEIGHTS)
    os.replace(tmp_c, model_dir / CARD)
    return model_dir


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then CPU; asking for a missing one is an error."""
    import torch

    device = (device or "auto").lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("device 'cuda' was asked for, but no CUDA GPU is available (use --device auto or cpu)")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError("device 'mps' was asked for, but Apple MPS is not available (use --device auto or cpu)")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ModelError(f"unknown device {device!r}: use auto, cpu, cuda or mps") from None


def export_model(model: str | os.PathLike, zip_path: str | os.PathLike) -> Path:
    """Pack a model (name or directory) into one .zip file to share."""
    import zipfile

    src = resolve_model_dir(model)
    load_network(src)  # never share a model that does not load
    zip_path = Path(zip_path)
    if zip_path.suffix.lower() != ".zip":
        zip_path = zip_path.with_suffix(".zip")
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_name(zip_path.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(src / WEIGHTS, f"{src.name}/{WEIGHTS}")
        zf.write(src / CARD, f"{src.name}/{CARD}")
    os.replace(tmp, zip_path)
    return zip_path


def import_model(zip_path: str | os.PathLike, name: str | None = None) -> Path:
    """Unpack a shared model .zip (or exported bioimage.io package) into the user model folder, after checking it loads."""
    import shutil

    src, zip_name = unpack_zip(Path(zip_path))  # either kind of zip; one clear error otherwise
    _, card = load_network(src)
    name = name or zip_name or card.get("name") or Path(zip_path).stem
    dest = user_models_dir() / name
    if (BUNDLED_DIR / name).exists():
        raise ModelError(f"'{name}' is the name of a bundled model; import it under another name")
    dest.mkdir(parents=True, exist_ok=True)
    for f in (WEIGHTS, CARD):
        shutil.copyfile(src / f, dest / (f + ".tmp"))
        os.replace(dest / (f + ".tmp"), dest / f)
    return dest
