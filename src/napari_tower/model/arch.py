"""What prediction needs to know of a network without importing torch.

``network.py`` stays standalone (it imports only torch: the bioimage.io package ships it as
its architecture file), so the two facts the predict path reads from a model card are
computed here from the card's ``architecture`` entry, with ``network.ArchConfig``'s defaults;
``tests/test_backends.py`` pins them to ``ArchConfig`` and ``FLOW_SCALE`` to network.py's.
"""
from __future__ import annotations

from dataclasses import dataclass

# flows are regressed at this length (network.FLOW_SCALE); the maps give them at unit length
FLOW_SCALE = 5.0


@dataclass(frozen=True)
class ArchInfo:
    divisor: int
    seg_channels: int

    @classmethod
    def from_dict(cls, d: dict) -> ArchInfo:
        widths = d.get("widths", (16, 32, 64, 128))
        return cls(divisor=int(d.get("stem_stride", 1)) * 2 ** (len(widths) - 1), seg_channels=int(d.get("seg_channels", 3)))
