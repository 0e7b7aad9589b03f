"""A stand-in segmentation model for fast block tests: foreground is the normalised image,
centerness its Gaussian blur, so each bright disc or ball becomes one object. Local (12
pixels of context), like the real network within its halo. It has what the predict code
uses of a real model: ``predict_maps`` for a plane and ``net``/``device`` for batches."""
import time
from types import SimpleNamespace

import numpy as np
import torch


class BlobNet(torch.nn.Module):
    def __init__(self, sigma: float = 4.0):
        super().__init__()
        r = int(3 * sigma)
        g = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
        g = g / g.sum()
        self.register_buffer("kernel", (g[:, None] * g[None, :])[None, None])
        self.r = r
        self.cfg = SimpleNamespace(divisor=8)

    def forward(self, x):
        x = x.float().clamp(0, 1)
        fg = 40 * (x - 0.5)
        center = torch.nn.functional.conv2d(x, self.kernel, padding=self.r).clamp(1e-4, 1 - 1e-4)
        return torch.cat([fg, torch.full_like(x, -10.0), torch.log(center / (1 - center))], 1)


class BlobModel:
    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.calls = 0
        self.net = BlobNet()
        self.device = torch.device("cpu")

    def predict_maps(self, image, tile=1024, overlap=64, precision="auto", should_stop=None):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        with torch.no_grad():
            logits = self.net(torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None])[0]
        return torch.sigmoid(logits).numpy()


def balls(shape, centres, radius):
    """Ground-truth labels (1, 2, ...) of balls (or discs in 2D) at ``centres``."""
    grid = np.indices(shape)
    out = np.zeros(shape, np.uint16)
    for i, c in enumerate(centres, 1):
        d2 = sum((g - ci) ** 2 for g, ci in zip(grid, c))
        out[d2 <= radius ** 2] = i
    return out
