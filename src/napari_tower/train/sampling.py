"""The long-training sampler: crops at 0.5-2x, microscope augmentations, stain variants of RGB
samples, rendered modalities of whole-cell samples; its state can be saved and restored.

Kept apart from ``augment.BatchSampler`` (few-shot fine-tuning's, deliberately mild) so that
fine-tuning's behaviour does not move when the bundled models' recipes do.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .augment import FLOW_X, FLOW_Y, _crop
from .data import Sample
from .microscope import MicroscopeAugment, apply, hed_variant
from .render_cells import render

REF_PIXELS = 4096  # whole-image sample for re-normalising after an intensity change


def _ref_sample(image: np.ndarray) -> np.ndarray:
    step = max(1, int(np.sqrt(image.shape[-1] * image.shape[-2] / REF_PIXELS)))
    return image[..., ::step, ::step]


def stained_crop(rgb: np.ndarray, y: int, x: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """The hematoxylin channel of a crop of ``rgb`` (3, Y, X) after a stain variation, normalised
    with the percentiles of the whole image under the same variation."""
    from skimage.color import rgb2hed

    crop = _crop(rgb, y, x, size)
    ref = _ref_sample(rgb)
    pix = np.concatenate([crop.reshape(3, -1), ref.reshape(3, -1)], axis=1).T
    h = rgb2hed(hed_variant(pix, rng)[:, None, :])[:, 0, 0].astype(np.float32)
    n = crop.shape[1] * crop.shape[2]
    lo, hi = np.percentile(h[n:], [1.0, 99.8])
    return ((h[:n] - lo) / max(hi - lo, 1e-6)).reshape(crop.shape[1:])


class RecipeSampler:
    def __init__(self, samples: list[Sample], group_weights: dict[str, float], augment: MicroscopeAugment,
                 crop: int = 128, scale_range: tuple[float, float] = (0.5, 2.0), seed: int = 0):
        if not samples:
            raise ValueError("no training samples")
        self.samples, self.crop, self.scale_range, self.augment = samples, crop, scale_range, augment
        self.rng = np.random.default_rng(seed)
        # groups are drawn by their weights, images within a group by their side (a 1000 px image
        # holds more crops than a 256 px one, but not 16x more information)
        w = np.array([float(s.image.size) ** 0.5 for s in samples])
        for g in {s.group for s in samples}:
            idx = [i for i, s in enumerate(samples) if s.group == g]
            w[idx] *= group_weights.get(g, 0.0) / w[idx].sum()
        if w.sum() <= 0:
            raise ValueError(f"group weights {group_weights} select none of the groups "
                             f"{sorted({s.group for s in samples})}")
        self.p = w / w.sum()

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]

    def _image_crop(self, s: Sample, y: int, x: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        if s.rgb is not None and rng.random() < self.augment.stain:
            img = stained_crop(s.rgb, y, x, size, rng)
            return img, img.ravel()
        if s.render > 0 and rng.random() < s.render:
            img = render(_crop(s.labels, y, x, size), rng)
            return img, img.ravel()
        return _crop(s.image, y, x, size), _ref_sample(s.image).ravel()

    def _one(self) -> torch.Tensor:
        rng = self.rng
        s = self.samples[rng.choice(len(self.samples), p=self.p)]
        scale = float(np.exp(rng.uniform(*np.log(self.scale_range))))
        size = max(16, int(round(self.crop / scale)))
        h, w = s.image.shape
        y = int(rng.integers(0, max(1, h - size + 1)))
        x = int(rng.integers(0, max(1, w - size + 1)))
        img, ref = self._image_crop(s, y, x, size)
        tgt = _crop(s.targets, y, x, size)
        val = np.ones(img.shape, np.float32)
        stack = torch.from_numpy(np.concatenate([img[None], tgt, val[None]]).astype(np.float32))
        if size != self.crop:
            stack = F.interpolate(stack[None], size=(self.crop, self.crop), mode="bilinear", align_corners=False)[0]
        k = int(rng.integers(0, 4))
        stack = torch.rot90(stack, k, dims=(1, 2))
        has_flows = stack.shape[0] > 5
        if has_flows:  # flow vectors turn with the image: one quarter turn maps (dy, dx) to (-dx, dy)
            for _ in range(k):
                stack[FLOW_Y], stack[FLOW_X] = -stack[FLOW_X], stack[FLOW_Y].clone()
        if rng.random() < 0.5:
            stack = torch.flip(stack, dims=(2,))
            if has_flows:
                stack[FLOW_X] = -stack[FLOW_X]
        stack[0] = apply(stack[0].contiguous(), torch.from_numpy(np.ascontiguousarray(ref, np.float32)), rng, self.augment)
        return stack

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = torch.stack([self._one() for _ in range(n)])
        return b[:, :1], b[:, 1:-1], (b[:, -1:] > 0.5).float()
