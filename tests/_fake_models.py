"""A stand-in segmentation model for fast block tests: foreground is the normalised image,
centerness its Gaussian blur, so each bright disc or ball becomes one object. Local (a
few pixels of context), like the real network within its halo."""
import time

import numpy as np
from scipy import ndimage as ndi


class BlobModel:
    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.calls = 0

    def predict_maps(self, image, tile=1024, overlap=64, precision="auto", should_stop=None):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        fg = np.clip(image, 0, 1).astype(np.float32)
        center = ndi.gaussian_filter(fg, 4)
        center = center / max(float(center.max()), 1e-6)
        return np.stack([fg, np.zeros_like(fg), center])


def balls(shape, centres, radius):
    """Ground-truth labels (1, 2, ...) of balls (or discs in 2D) at ``centres``."""
    grid = np.indices(shape)
    out = np.zeros(shape, np.uint16)
    for i, c in enumerate(centres, 1):
        d2 = sum((g - ci) ** 2 for g, ci in zip(grid, c))
        out[d2 <= radius ** 2] = i
    return out
