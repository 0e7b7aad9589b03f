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
import torch
from pydantic import ValidationError

from ..config import PredictConfig
from ..errors import InputError
from ..model.network import TowerNet, fold_batchnorm
from ..model.weights import available_models, load_network, resolve_device, resolve_model_dir
from .tiling import predict_maps as _predict_maps


class TowerModel:
    """A loaded network on a device, with the card it was saved with.

    Attributes
    ----------
    net : TowerNet
        The network, in eval mode, BatchNorm folded into the convolutions (inference only;
        train from ``napari_tower.finetune`` with this model's directory as the base).
    card : dict
        Architecture, training record, metrics and post-processing defaults.
    device : torch.device
    path : pathlib.Path
        The model directory it was read from.
    """

    def __init__(self, net: TowerNet, card: dict, device: torch.device, path: Path | None = None):
        self.net = fold_batchnorm(net).to(device).to(memory_format=torch.channels_last)
        self.card = card
        self.device = device
        self.path = path

    @property
    def name(self) -> str:
        return self.card.get("name", self.path.name if self.path else "model")

    def postprocess_defaults(self) -> dict:
        return dict(self.card.get("postprocess", {}))

    def predict_maps(
        self, image: np.ndarray, tile: int = 1024, overlap: int = 64, precision: str = "auto", should_stop=None
    ) -> np.ndarray:
        """Probability maps (foreground, boundary, centerness) for a normalised 2D image."""
        return _predict_maps(self.net, image, self.device, tile, overlap, precision, self.net.cfg.divisor, should_stop)

    def __repr__(self) -> str:
        return f"TowerModel({self.name!r}, device={self.device})"


def list_models() -> dict[str, Path]:
    """Names of the bundled and saved user models, with their directories."""
    return available_models()


def load_model(model: str | os.PathLike | TowerModel = "default", device: str = "auto") -> TowerModel:
    """Load a model by name, directory or zip (see :func:`napari_tower.api.load_model`)."""
    if isinstance(model, TowerModel):
        return model
    path = resolve_model_dir(model)
    net, card = load_network(path)
    return TowerModel(net, card, resolve_device(device), path)


def choose_model(image, axes: str | None = None) -> str:
    """The bundled model that ``model="auto"`` uses for ``image`` (see :func:`napari_tower.api.choose_model`)."""
    from ..io.axes import as_array, check_axes, guess_axes
    from ..io.lazy import LazyImage
    from ..model.choice import choose_model as _choose

    data = image if isinstance(image, LazyImage) else as_array(image)
    axes = axes or getattr(data, "axes", None) or guess_axes(tuple(data.shape))
    return _choose(data, check_axes(tuple(data.shape), axes))


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
    if cfg.method == "flows" and model.net.cfg.seg_channels < 5:
        raise InputError(f"model {model.name!r} predicts no flows: use method 'watershed', or a model "
                         "fine-tuned or trained with this version")
    return cfg
