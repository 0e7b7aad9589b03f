"""How big the objects are, and the resize factor ``scale="auto"`` picks from that.

One rule for 2D planes (``segment.py``) and volumes (``volume.py``): it lives here, below
both, so that neither has to import the other for it.
"""
from __future__ import annotations

import numpy as np

from .postprocess import median_area_diameter, object_areas

# objects narrower than this (pixels) are upsampled under scale="auto": the network was
# trained at dsb2018's scales, where small dense nuclei are the ones it merges
AUTO_SMALL_DIAMETER = 14.0
AUTO_TARGET_DIAMETER = 20.0
AUTO_MAX_SCALE = 2.0


def median_diameter(labels: np.ndarray) -> float:
    """Diameter of the circle with the median object area (0 when there are no objects)."""
    return median_area_diameter(object_areas(labels))


def auto_scale_for(diameter: float) -> float:
    """The resize factor ``scale="auto"`` uses for objects of this median diameter."""
    if diameter <= 0 or diameter >= AUTO_SMALL_DIAMETER:
        return 1.0
    return float(min(AUTO_MAX_SCALE, AUTO_TARGET_DIAMETER / diameter))
