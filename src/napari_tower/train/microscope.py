"""Augmentations that simulate what microscopes do to an image, for training bundled models.

Each works on one normalised crop (torch, (Y, X), ~[0, 1] between the image's 1st and 99.8th
percentiles) and draws its parameters from the generator it is given, so a resumed run that
restores the generator's state replays the same images. What they simulate:

- photon-limited acquisition: Poisson shot noise at 3-1000 photons per bright pixel plus
  Gaussian read noise, then the percentile normalisation inference applies to such an image;
- defocus and anisotropic blur (what a stack's XZ/YZ views look like);
- uneven illumination and background;
- gamma and contrast;
- H&E / IHC stain variation: other stain colours, unmixed with the standard vectors that
  inference uses (``hed_variant``, on RGB before the hematoxylin channel is taken);
- JPEG-like block compression.

Scale (0.5-2x) is the sampler's crop size.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field


class MicroscopeAugment(BaseModel):
    """Probabilities and ranges; a recipe's ``augment`` section."""

    model_config = ConfigDict(extra="forbid")
    photon_noise: float = Field(0.5, ge=0, le=1, description="probability of Poisson-Gaussian noise")
    photons: tuple[float, float] = (3.0, 1000.0)  # per bright pixel, drawn log-uniform
    read_noise: tuple[float, float] = (0.5, 4.0)  # Gaussian sigma in photon counts
    blur: float = Field(0.3, ge=0, le=1)
    blur_sigma: tuple[float, float] = (0.5, 3.0)
    anisotropy: float = Field(0.5, ge=0, le=1, description="share of blurs stronger along one direction")
    illumination: float = Field(0.3, ge=0, le=1)
    contrast: float = Field(0.5, ge=0, le=1, description="gamma, gain and offset")
    stain: float = Field(0.6, ge=0, le=1, description="stain variation, for samples kept as RGB")
    jpeg: float = Field(0.15, ge=0, le=1)
    invert: float = Field(0.0, ge=0, le=1, description="inverted contrast (transmitted-light cells)")


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _renormalize(img: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Map the 1st/99.8th percentiles of ``ref`` (the same transform on a sample of the whole
    image) to 0/1, as inference normalises the whole noisy image."""
    lo, hi = torch.quantile(ref, torch.tensor([0.01, 0.998])).tolist()
    return (img - lo) / max(hi - lo, 1e-6)


def photon_noise(img: torch.Tensor, ref: torch.Tensor, rng: np.random.Generator, cfg: MicroscopeAugment) -> torch.Tensor:
    """A normalised image taken again with few photons: the bright end (1.0) collects
    ``photons`` on average, the background a small offset; shot plus read noise."""
    photons = _log_uniform(rng, *cfg.photons)
    read = float(rng.uniform(*cfg.read_noise))
    offset = float(rng.uniform(0.0, 0.1))
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))

    def shoot(x):
        lam = ((x.clamp(min=0) * (1 - offset) + offset) * photons).clamp(min=0)
        return torch.poisson(lam, generator=gen) + torch.randn(x.shape, generator=gen) * read

    return _renormalize(shoot(img), shoot(ref))


def _gauss_kernel(sigma: float) -> torch.Tensor:
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def blur(img: torch.Tensor, rng: np.random.Generator, cfg: MicroscopeAugment) -> torch.Tensor:
    """Gaussian defocus; with ``anisotropy``, one axis (after the sampler's random rotation:
    any of the two) blurred up to 4x more, like a stack's XZ view."""
    s = _log_uniform(rng, *cfg.blur_sigma)
    sy = sx = s
    if rng.random() < cfg.anisotropy:
        sy = s * float(rng.uniform(1.5, 4.0))
    x = img[None, None]
    ky, kx = _gauss_kernel(sy), _gauss_kernel(sx)
    x = F.pad(x, (0, 0, len(ky) // 2, len(ky) // 2), mode="replicate")
    x = F.conv2d(x, ky.view(1, 1, -1, 1))
    x = F.pad(x, (len(kx) // 2, len(kx) // 2, 0, 0), mode="replicate")
    x = F.conv2d(x, kx.view(1, 1, 1, -1))
    return x[0, 0]


def illumination(img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A smooth multiplicative field (vignetting, uneven lamp) and an additive background."""
    h, w = img.shape
    coarse = torch.from_numpy(rng.uniform(-1, 1, (1, 1, 3, 3)).astype(np.float32))
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)[0, 0]
    gain = 1 + float(rng.uniform(0.1, 0.5)) * field
    background = float(rng.uniform(0, 0.3)) * (field.flip(0) + 1) / 2
    return img * gain.clamp(min=0.2) + background


def contrast(img: torch.Tensor, gain: float, offset: float, gamma: float) -> torch.Tensor:
    img = img * gain + offset
    return torch.where(img > 0, img.clamp(min=0) ** gamma, img)


def jpeg_blocks(img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Lossy 8x8 DCT quantisation, JPEG's artefact (blocking, ringing), in float."""
    h, w = img.shape
    ph, pw = (-h) % 8, (-w) % 8
    x = F.pad(img[None, None], (0, pw, 0, ph), mode="replicate")[0, 0]
    n = torch.arange(8, dtype=torch.float32)
    d = torch.cos(math.pi * (2 * n[None, :] + 1) * n[:, None] / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    blocks = x.unfold(0, 8, 8).unfold(1, 8, 8)  # (H/8, W/8, 8, 8)
    coef = d @ blocks @ d.T
    q = float(rng.uniform(0.01, 0.08)) * (1 + n[:, None] + n[None, :])  # coarser for high frequencies
    coef = torch.round(coef / q) * q
    out = d.T @ coef @ d
    out = out.permute(0, 2, 1, 3).reshape(x.shape)
    return out[:h, :w]


def apply(img: torch.Tensor, ref: torch.Tensor, rng: np.random.Generator, cfg: MicroscopeAugment) -> torch.Tensor:
    """All intensity augmentations in the order a microscope applies them: the specimen's light
    (illumination, contrast), the optics (blur), the detector (photon noise), the file (JPEG)."""
    if rng.random() < cfg.invert:
        img, ref = 1 - img, 1 - ref
    if rng.random() < cfg.illumination:
        img = illumination(img, rng)
    if rng.random() < cfg.contrast:
        params = float(rng.uniform(0.6, 1.4)), float(rng.uniform(-0.15, 0.15)), _log_uniform(rng, 0.5, 2.0)
        img, ref = contrast(img, *params), contrast(ref, *params)
    if rng.random() < cfg.blur:
        img = blur(img, rng, cfg)
    if rng.random() < cfg.photon_noise:
        img = photon_noise(img, ref, rng, cfg)
    if rng.random() < cfg.jpeg:
        img = jpeg_blocks(img, rng)
    return img


def low_light(image: np.ndarray, photons: float, rng: np.random.Generator, read_noise: float = 2.0) -> np.ndarray:
    """``image`` as a camera would record it with ``photons`` at the bright pixels (its 99.8th
    percentile): Poisson shot noise, then Gaussian read noise of ``read_noise`` counts. The
    low-light benchmark's and validation's noise model."""
    x = np.clip(np.asarray(image, np.float32), 0, None)
    lam = x / max(float(np.percentile(x, 99.8)), 1e-6) * photons
    return (rng.poisson(lam) + rng.normal(0.0, read_noise, x.shape)).astype(np.float32)


# --- stains -------------------------------------------------------------------------------

# optical density vectors of hematoxylin, eosin and DAB (Ruifrok & Johnston; skimage's rgb_from_hed)
_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], np.float32)


def hed_variant(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same tissue under another stain batch or scanner: unmix with the standard vectors,
    scale each stain's amount, remix with perturbed colour vectors. ``rgb`` float in [0, 1]."""
    od = -np.log(np.clip(rgb, 1e-3, 1.0))
    conc = od.reshape(-1, 3) @ np.linalg.pinv(_HED)
    conc *= rng.uniform(0.6, 1.4, 3).astype(np.float32)
    conc += rng.uniform(-0.05, 0.05, 3).astype(np.float32)
    vectors = _HED + rng.normal(0, 0.08, _HED.shape).astype(np.float32)
    vectors = np.abs(vectors) / np.linalg.norm(vectors, axis=1, keepdims=True)
    out = np.exp(-np.clip(conc, 0, None) @ vectors)
    return out.reshape(rgb.shape).astype(np.float32)
