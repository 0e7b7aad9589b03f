"""Batch sampling with augmentation suited to microscopy: random crops at random scale,
flips, 90-degree rotations, intensity (gain, offset, gamma), blur-free noise."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .data import Sample

# channels of the (image, targets..., valid) stack holding the flow vectors
FLOW_Y, FLOW_X = 4, 5


def _crop(arr: np.ndarray, y: int, x: int, size: int) -> np.ndarray:
    """Crop (..., size, size) at (y, x), reflect-padding where the image is smaller."""
    h, w = arr.shape[-2:]
    pad_y, pad_x = max(0, size - h), max(0, size - w)
    if pad_y or pad_x:
        pad = [(0, 0)] * (arr.ndim - 2) + [(0, pad_y), (0, pad_x)]
        arr = np.pad(arr, pad, mode="reflect" if min(h, w) > 1 else "edge")
    return arr[..., y : y + size, x : x + size]


class BatchSampler:
    def __init__(
        self,
        samples: list[Sample],
        crop: int = 128,
        scale_range: tuple[float, float] = (0.6, 1.6),
        group_weights: dict[str, float] | None = None,
        seed: int = 0,
        min_valid_fraction: float = 0.0,
    ):
        if not samples:
            raise ValueError("no training samples")
        self.samples = samples
        self.crop = crop
        self.scale_range = scale_range
        self.rng = np.random.default_rng(seed)
        w = np.array([float(s.image.size) ** 0.5 for s in samples])
        if group_weights:
            groups = [s.group for s in samples]
            for g in set(groups):
                idx = [i for i, gg in enumerate(groups) if gg == g]
                w[idx] *= group_weights.get(g, 1.0) / w[idx].sum()
        self.p = w / w.sum()
        self.min_valid_fraction = min_valid_fraction

    def _one(self):
        rng = self.rng
        s = self.samples[rng.choice(len(self.samples), p=self.p)]
        scale = float(np.exp(rng.uniform(*np.log(self.scale_range))))
        size = max(16, int(round(self.crop / scale)))
        h, w = s.image.shape
        for _ in range(5):  # prefer crops that hold annotation (sparse labels)
            y = int(rng.integers(0, max(1, h - size + 1)))
            x = int(rng.integers(0, max(1, w - size + 1)))
            valid = None if s.valid is None else _crop(s.valid, y, x, size)
            if valid is None or valid.mean() > self.min_valid_fraction:
                break
        img = _crop(s.image, y, x, size)
        tgt = _crop(s.targets, y, x, size)
        val = np.ones(img.shape, np.float32) if valid is None else valid.astype(np.float32)
        stack = torch.from_numpy(np.concatenate([img[None], tgt, val[None]]).astype(np.float32))
        if size != self.crop:
            stack = F.interpolate(stack[None], size=(self.crop, self.crop), mode="bilinear", align_corners=False)[0]
        k = int(rng.integers(0, 4))
        stack = torch.rot90(stack, k, dims=(1, 2))
        if stack.shape[0] > 5:  # flow vectors turn with the image: one quarter turn maps (dy, dx) to (-dx, dy)
            for _ in range(k):
                stack[FLOW_Y], stack[FLOW_X] = -stack[FLOW_X], stack[FLOW_Y].clone()
        if rng.random() < 0.5:
            stack = torch.flip(stack, dims=(2,))
            if stack.shape[0] > 5:
                stack[FLOW_X] = -stack[FLOW_X]
        img = stack[0]
        # intensity: gain/offset, gamma on the positive part, additive noise
        img = img * float(rng.uniform(0.75, 1.3)) + float(rng.uniform(-0.1, 0.1))
        if rng.random() < 0.5:
            g = float(np.exp(rng.uniform(np.log(0.7), np.log(1.5))))
            img = torch.where(img > 0, img.clamp(min=0) ** g, img)
        if rng.random() < 0.3:
            img = img + torch.randn_like(img) * float(rng.uniform(0, 0.08))
        stack[0] = img
        return stack

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = torch.stack([self._one() for _ in range(n)])
        return b[:, :1], b[:, 1:-1], (b[:, -1:] > 0.5).float()
