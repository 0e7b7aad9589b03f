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
# objects wider than this are brought down to AUTO_TARGET_DIAMETER: dsb2018 fluorescence
# enlarged 2-4x (nuclei 31-61 px, as at high magnification or in early embryos) fell from
# AP@0.5 0.87 to 0.79-0.55 at full size and scores 0.80-0.85 brought back to 15-20 px
AUTO_LARGE_DIAMETER = 30.0
AUTO_MIN_SCALE = 0.25


def median_diameter(labels: np.ndarray) -> float:
    """Diameter of the circle with the median object area (0 when there are no objects)."""
    return median_area_diameter(object_areas(labels))


def auto_scale_for(diameter: float, shrink: bool = True) -> float:
    """The resize factor ``scale="auto"`` uses for objects of this median diameter.

    ``shrink=False`` (volumes) only enlarges: stacks brought down lost more than they gained
    (confocal 0.900 -> 0.857, light-sheet 0.634 -> 0.595 AP@0.5; docs/benchmarks/2d.md), their
    3D centerness from three views already holds large nuclei together.
    """
    if shrink and diameter > AUTO_LARGE_DIAMETER:
        return float(max(AUTO_MIN_SCALE, AUTO_TARGET_DIAMETER / diameter))
    if diameter <= 0 or diameter >= AUTO_SMALL_DIAMETER:
        return 1.0
    return float(min(AUTO_MAX_SCALE, AUTO_TARGET_DIAMETER / diameter))
