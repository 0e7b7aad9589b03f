"""napari-tower: TOWER self-supervised pretraining and nuclei segmentation for napari.

The compute core (this package minus ``_widgets``) never imports Qt or napari.
"""
from __future__ import annotations

from .versioning import __version__

from .api import (
    TowerModel, choose_model, export, export_iter, finetune, finetune_iter, list_models, load_model, pretrain, pretrain_iter, segment, segment_iter,
    segment_blocks, segment_blocks_iter, track,
)
from .errors import Cancelled, InputError, ModelError, TowerError

__all__ = [
    "TowerModel", "choose_model", "export", "export_iter", "finetune", "finetune_iter", "list_models", "load_model", "pretrain", "pretrain_iter", "segment", "segment_iter",
    "segment_blocks", "segment_blocks_iter", "track",
    "Cancelled", "InputError", "ModelError", "TowerError", "__version__",
]
