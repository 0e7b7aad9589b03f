"""A loaded model ready to predict (``TowerModel``), how one is loaded or chosen, and the
prediction settings it implies.

These sit in the predict layer, below ``api.py``, so that everything that segments (the API,
block-wise runs, the bioimage.io export's cover and test tensors) can load a model without
importing the API back.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from ..config import PredictConfig
from ..errors import InputError, ModelError
from ..model.arch import ArchInfo
from ..model.weights import (
    WEIGHTS,
    available_models,
    load_network,
    read_card,
    resolve_device,
    resolve_model_dir,
    sha256_of,
)
from .tiling import predict_maps as _predict_maps
from .tiling import predict_maps_batch as _predict_maps_batch


class TowerModel:
    """A loaded network on a device, with the card it was saved with.

    Attributes
    ----------
    net : TowerNet
        The torch network, in eval mode, BatchNorm folded into the convolutions (inference only;
        train from ``napari_tower.finetune`` with this model's directory as the base). Built on
        first use when another backend runs the predictions.
    backend : object
        What runs the network (``napari_tower.model.backends``): torch, or ONNX Runtime on the CPU.
    arch : ArchInfo or ArchConfig
    card : dict
        Architecture, training record, metrics and post-processing defaults.
    device : torch.device
    path : pathlib.Path
        The model directory it was read from.
    """

    def __init__(self, net, card: dict, device, path: Path | None = None, backend=None):
        from ..model.backends import TorchBackend

        self.card = card
        self.path = path
        self._device = device
        self._net = None
        if net is not None:
            self._set_net(net, device)
        self.arch = net.cfg if net is not None else ArchInfo.from_dict(card["architecture"])
        self.backend = backend if backend is not None else TorchBackend(self._net, device)

    def _set_net(self, net, device) -> None:
        import torch

        from ..model.network import fold_batchnorm

        self._net = fold_batchnorm(net).to(device).to(memory_format=torch.channels_last)

    @property
    def net(self):
        if self._net is None:  # another backend predicts; torch is loaded only when asked for
            self._set_net(load_network(self.path)[0], self.device)
        return self._net

    @property
    def device(self):
        if self._device is None or isinstance(self._device, str):
            self._device = resolve_device(self._device or "cpu")
        return self._device

    @property
    def name(self) -> str:
        return self.card.get("name", self.path.name if self.path else "model")

    def postprocess_defaults(self) -> dict:
        return dict(self.card.get("postprocess", {}))

    def predict_maps(
        self, image: np.ndarray, tile: int = 1024, overlap: int = 64, precision: str = "auto", should_stop=None
    ) -> np.ndarray:
        """Probability maps (foreground, boundary, centerness) for a normalised 2D image."""
        return _predict_maps(self.backend, image, None, tile, overlap, precision, self.arch.divisor, should_stop)

    def predict_maps_batch(self, planes: np.ndarray, precision: str = "auto") -> np.ndarray:
        """Maps (N, C, Y, X) for a batch of small normalised planes (N, Y, X), each within one tile."""
        return _predict_maps_batch(self.backend, planes, None, precision, self.arch.divisor)

    def __repr__(self) -> str:
        return f"TowerModel({self.name!r}, backend={self.backend.name})"


def list_models() -> dict[str, Path]:
    """Names of the bundled and saved user models, with their directories."""
    return available_models()


def load_model(model: str | os.PathLike | TowerModel = "default", device: str = "auto") -> TowerModel:
    """Load a model by name, directory or zip (see :func:`napari_tower.api.load_model`)."""
    if isinstance(model, TowerModel):
        return model
    from ..model.backends import onnx_backend, wants_onnx

    path = resolve_model_dir(model)
    if wants_onnx(device):
        card = read_card(path)
        sha = sha256_of(path / WEIGHTS) if (path / WEIGHTS).is_file() else None
        if sha is None or (card.get("sha256") and sha != card["sha256"]):
            load_network(path)  # the torch path reports a missing or corrupt weights file
            raise ModelError(f"{path / WEIGHTS} does not match the sha256 in its card")
        arch = ArchInfo.from_dict(card["architecture"])
        backend = onnx_backend(sha, lambda: TowerModel(*load_network(path), "cpu", path).net, arch.divisor)
        if backend is not None:
            return TowerModel(None, card, "cpu", path, backend)
    net, card = load_network(path)
    return TowerModel(net, card, resolve_device(device), path)


def choose_model(image, axes: str | None = None) -> str:
    """The bundled model that ``model="auto"`` uses for ``image`` (see :func:`napari_tower.api.choose_model`)."""
    from ..model.choice import choose_model as _choose

    return _choose(*_with_axes(image, axes))


def is_stained(image, axes: str | None = None) -> bool:
    """True for a colour image of a stain (H&E, IHC), as ``choose_model`` sees it."""
    from ..model.choice import stained

    return stained(*_with_axes(image, axes))


def _with_axes(image, axes):
    from ..io.axes import as_array, check_axes, guess_axes
    from ..io.lazy import LazyImage

    data = image if isinstance(image, LazyImage) else as_array(image)
    axes = axes or getattr(data, "axes", None) or guess_axes(tuple(data.shape))
    return data, check_axes(tuple(data.shape), axes)


def pick_model(model, image, axes):
    """``model`` itself, or for ``"auto"`` the name of the bundled model that suits ``image``."""
    from ..model.choice import AUTO

    return choose_model(image, axes) if isinstance(model, str) and model == AUTO else model


def predict_config(model: TowerModel, **overrides) -> PredictConfig:
    """The model card's post-processing defaults with ``overrides`` (None = keep the card's), validated once."""
    values = model.postprocess_defaults()
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        cfg = PredictConfig(**values)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise InputError(f"invalid option: {problems}") from None
    if cfg.method == "flows" and model.arch.seg_channels < 5:
        raise InputError(f"model {model.name!r} predicts no flows: use method 'watershed', or a model "
                         "fine-tuned or trained with this version")
    return cfg
