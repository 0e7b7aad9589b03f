"""TOWER self-supervised pretraining (and the SimCLR / BYOL baselines). No Qt here.

Typical use::

    from napari_tower.ssl import collect_planes, pretrain_iter, PretrainConfig
    planes = collect_planes(["unlabelled/"])
    for p in pretrain_iter(planes, PretrainConfig(method="tower"), "auto", "my-pretrained", max_minutes=30):
        print(p.message, p.loss)

The result folder loads as a fine-tuning base (``finetune --base my-pretrained``).
"""
from .data import ViewSampler, collect_planes, data_manifest, expand_paths, load_planes
from .losses import byol_loss, info_nce, restore_loss
from .pretrain import PretrainConfig, load_checkpoint, make_config, pretrain_iter
from .proxy import ProxyConfig, corrupt

__all__ = [
    "PretrainConfig",
    "ProxyConfig",
    "ViewSampler",
    "byol_loss",
    "collect_planes",
    "corrupt",
    "data_manifest",
    "expand_paths",
    "info_nce",
    "load_checkpoint",
    "load_planes",
    "make_config",
    "pretrain_iter",
    "restore_loss",
]
