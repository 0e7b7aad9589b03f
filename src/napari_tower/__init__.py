"""napari-tower: TOWER self-supervised pretraining and nuclei segmentation for napari.

The compute core (this package minus ``_widgets``) never imports Qt or napari.
"""
from __future__ import annotations

from .versioning import __version__

from .errors import Cancelled, InputError, ModelError, TowerError

_API = ("TowerModel", "choose_model", "export", "export_iter", "finetune", "finetune_iter", "list_models", "load_model",
        "pretrain", "pretrain_iter", "segment", "segment_iter", "segment_blocks", "segment_blocks_iter", "track")

__all__ = [*_API, "Cancelled", "InputError", "ModelError", "TowerError", "__version__"]


def __getattr__(name: str):
    # the API is imported on first use: `napari-tower --help`, the reader plugin and a script
    # that needs one helper do not pay for the whole stack (scipy, skimage, pydantic, ...)
    if name in _API:
        from . import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'napari_tower' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))
