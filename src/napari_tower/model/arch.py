"""The network's architecture as data (``ArchConfig``) and the meaning of its output maps.

Kept apart from ``network.py`` so that reading a model card, sizing tiles and running an
exported network never import torch (about 1.5 s of a command's start-up on 2 CPU cores).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

SEG_CHANNELS = ("foreground", "boundary", "centerness", "flow y", "flow x")
# flows are regressed at this length, so their error weighs like the other maps' in the loss
FLOW_SCALE = 5.0


@dataclass
class ArchConfig:
    in_channels: int = 1
    widths: tuple[int, ...] = (16, 32, 64, 128)
    blocks_per_level: int = 1
    seg_channels: int = 3  # 5 adds the flow maps
    proj_dim: int = 64
    # "resblock": concat skip + residual block per level; "light": projected skip added,
    # one conv per level (about half the decoder's compute, for fast CPU inference)
    decoder: str = "resblock"
    # 2: the encoder/decoder trunk runs at half resolution and a light full-resolution
    # branch refines its upsampled features (about 3x faster on CPU than stride 1)
    stem_stride: int = 1
    refine_width: int = 8

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ArchConfig":
        d = dict(d)
        d["widths"] = tuple(d["widths"])
        return cls(**d)

    @property
    def divisor(self) -> int:
        """Input sides must be multiples of this (one 2x pooling per level below the first)."""
        return self.stem_stride * 2 ** (len(self.widths) - 1)
