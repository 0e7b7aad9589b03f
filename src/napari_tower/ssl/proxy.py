"""Sample-space diversification: the corruptions TOWER learns to undo.

Each transform is a pure function ``f(image, rng, ...) -> image`` on one normalised,
single-channel float32 plane (a numpy array of shape (H, W), or (1, H, W); torch tensors
are accepted too and come back as tensors on the same device). The input is never
modified. ``corrupt`` applies them with the probabilities and strengths of a
``ProxyConfig``; the restoration target is always the clean image it was given.

The first four are the Models Genesis proxy tasks (Zhou et al. 2019/2021), which TOWER's
sample-space diversification builds on; the others model what varies between microscopy
acquisitions: optics (blur), photon and read noise, illumination, and stain/contrast.
Stain changes of RGB brightfield images are handled upstream, by converting to the
hematoxylin channel (``io.normalize.to_single_channel``); what is left to vary on that
channel is its contrast, modelled here as gamma + gain.

Order inside ``corrupt``: the transmitted-light rendering, then intensity changes
(stain/contrast, non-linear curve, illumination), then blur, then noise (as in a
microscope: optics before the detector), then local pixel shuffling, then in- or
out-painting (never both in one call).
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# --------------------------------------------------------------------------- helpers


def _plane_io(fn: Callable) -> Callable:
    """Let a transform written for a 2D float32 numpy plane accept (1, H, W) arrays and
    torch tensors, returning the same kind and shape; the input is never modified."""

    @functools.wraps(fn)
    def wrapper(img, rng: np.random.Generator, *args, **kwargs):
        tensor = None
        if not isinstance(img, np.ndarray):
            try:
                import torch
            except ImportError:  # pragma: no cover - torch is a dependency
                torch = None
            if torch is not None and isinstance(img, torch.Tensor):
                tensor = img
                img = img.detach().to("cpu", torch.float32).numpy()
            else:
                img = np.asarray(img)
        shape = img.shape
        if img.ndim > 2:
            if int(np.prod(shape[:-2])) != 1:
                raise ValueError(f"{fn.__name__} works on one single-channel plane, got shape {shape}")
            img = img.reshape(shape[-2:])
        if img.ndim != 2:
            raise ValueError(f"{fn.__name__} needs a 2D plane, got shape {shape}")
        out = fn(np.asarray(img, dtype=np.float32), rng, *args, **kwargs)
        out = np.ascontiguousarray(out, dtype=np.float32).reshape(shape)
        if tensor is not None:
            import torch

            return torch.from_numpy(out).to(device=tensor.device, dtype=tensor.dtype)
        return out

    return wrapper


def _box(h: int, w: int, rng: np.random.Generator, lo: float, hi: float) -> tuple[slice, slice]:
    """A random box whose sides are fractions in [lo, hi] of the image's sides."""
    bh = int(np.clip(round(h * rng.uniform(lo, hi)), 1, h))
    bw = int(np.clip(round(w * rng.uniform(lo, hi)), 1, w))
    y = int(rng.integers(0, h - bh + 1))
    x = int(rng.integers(0, w - bw + 1))
    return slice(y, y + bh), slice(x, x + bw)


def _noise_like(img: np.ndarray, shape, rng: np.random.Generator) -> np.ndarray:
    """Uniform noise over the image's own value range (Models Genesis fills with U(0, 1);
    percentile-normalised planes span about that range)."""
    lo, hi = float(img.min()), float(img.max())
    if hi - lo < 1e-6:
        hi = lo + 1.0
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def bezier_curve(points: np.ndarray, n: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """x(t), y(t) of the Bezier curve through control ``points`` (shape (k, 2))."""
    from math import comb

    t = np.linspace(0.0, 1.0, n)
    k = len(points) - 1
    basis = np.stack([comb(k, i) * t**i * (1 - t) ** (k - i) for i in range(k + 1)])  # (k+1, n)
    return basis.T @ points[:, 0], basis.T @ points[:, 1]


# --------------------------------------------------------------------------- transforms


@_plane_io
def nonlinear_curve(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """Map intensities through a random monotone increasing cubic Bezier curve through
    (0, 0) and (1, 1) (Models Genesis). ``strength`` in [0, 1] moves the two inner control
    points from the identity diagonal (0) to anywhere in the unit square (1). Values
    outside [0, 1] are left as they are (the curve fixes 0 and 1, so the map stays
    continuous and monotone)."""
    inner = rng.uniform(0, 1, size=(2, 2))
    diag = np.array([[1 / 3, 1 / 3], [2 / 3, 2 / 3]])
    inner = diag + strength * (inner - diag)
    pts = np.concatenate([[[0.0, 0.0]], inner, [[1.0, 1.0]]])
    xs, ys = bezier_curve(pts)
    # sorting both coordinates makes the sampled curve a monotone map, as Models Genesis does
    xs, ys = np.sort(xs), np.sort(ys)
    inside = (img >= 0) & (img <= 1)
    out = img.copy()
    out[inside] = np.interp(img[inside], xs, ys)
    return out


@_plane_io
def local_shuffle(
    img: np.ndarray, rng: np.random.Generator, fraction: float = 0.5, min_window: int = 2, max_window: int = 8
) -> np.ndarray:
    """Shuffle the pixels inside small windows (Models Genesis' local pixel shuffling).

    The plane is cut into a grid of square windows (side drawn once per call in
    [min_window, max_window]), starting at the top-left corner; each whole window is
    shuffled with probability ``fraction``. Each window keeps its multiset of values, so
    local texture is destroyed while global intensity and shape survive.
    """
    h, w = img.shape
    win = int(rng.integers(min_window, max_window + 1))
    ny, nx = h // win, w // win
    out = img.copy()
    if ny == 0 or nx == 0 or win < 2:
        return out
    blocks = out[: ny * win, : nx * win].reshape(ny, win, nx, win).transpose(0, 2, 1, 3).reshape(ny * nx, win * win)
    pick = rng.random(ny * nx) < fraction
    if pick.any():
        blocks[pick] = rng.permuted(blocks[pick], axis=1)
    out[: ny * win, : nx * win] = blocks.reshape(ny, nx, win, win).transpose(0, 2, 1, 3).reshape(ny * win, nx * win)
    return out


def _inpaint(img: np.ndarray, rng, max_boxes: int, strength: float):
    h, w = img.shape
    mask = np.zeros((h, w), bool)
    hi = float(np.clip(strength, 0.06, 0.9))
    for _ in range(int(rng.integers(1, max_boxes + 1))):
        mask[_box(h, w, rng, 0.05, hi)] = True
    out = img.copy()
    out[mask] = _noise_like(img, int(mask.sum()), rng)
    return out, mask


@_plane_io
def inpaint(img: np.ndarray, rng: np.random.Generator, max_boxes: int = 4, strength: float = 0.3) -> np.ndarray:
    """Fill 1..``max_boxes`` random boxes (sides up to ``strength`` of the image's sides)
    with uniform noise over the image's range; pixels outside the boxes are unchanged.
    See ``inpaint_with_mask`` for the boxes' mask."""
    return _inpaint(img, rng, max_boxes, strength)[0]


def inpaint_with_mask(img: np.ndarray, rng: np.random.Generator, max_boxes: int = 4, strength: float = 0.3):
    """``inpaint`` that also returns the boolean mask of the noised boxes (2D numpy only)."""
    return _inpaint(np.asarray(img, np.float32), rng, max_boxes, strength)


def _outpaint(img: np.ndarray, rng, strength: float):
    h, w = img.shape
    s = float(np.clip(strength, 0.05, 0.9))
    keep = np.zeros((h, w), bool)
    keep[_box(h, w, rng, 1 - s, 1 - s / 2)] = True
    out = _noise_like(img, (h, w), rng)
    out[keep] = img[keep]
    return out, keep


@_plane_io
def outpaint(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """Keep one random box exactly and replace everything else with uniform noise over
    the image's range. The kept box's sides are fractions in [1 - strength, 1 - strength/2]
    of the image's sides. See ``outpaint_with_mask`` for the kept box's mask."""
    return _outpaint(img, rng, strength)[0]


def outpaint_with_mask(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5):
    """``outpaint`` that also returns the boolean mask of the kept box (2D numpy only)."""
    return _outpaint(np.asarray(img, np.float32), rng, strength)


@_plane_io
def gaussian_blur(img: np.ndarray, rng: np.random.Generator, max_sigma: float = 2.0, sigma: float | None = None) -> np.ndarray:
    """Gaussian blur (defocus, a wider point-spread function); sigma drawn in
    [0.5, max_sigma] pixels unless given."""
    from scipy.ndimage import gaussian_filter

    if sigma is None:
        sigma = float(rng.uniform(0.5, max(0.5, max_sigma)))
    return gaussian_filter(img, sigma, mode="reflect")


@_plane_io
def poisson_gaussian_noise(
    img: np.ndarray,
    rng: np.random.Generator,
    strength: float = 0.5,
    peak: float | None = None,
    read_std: float | None = None,
) -> np.ndarray:
    """Shot noise plus read noise: ``Poisson(x * peak) / peak + N(0, read_std^2)``.

    ``peak`` is the photon count that maps to intensity 1: the noise variance at a pixel of
    value x >= 0 is ``x / peak + read_std**2``. Unless given, ``peak`` is drawn
    log-uniformly in [10**(3 - 2.5 * strength), 1000] and ``read_std`` in [0, 0.1 * strength].
    Negative values (below the 1st percentile) get read noise only.
    """
    if peak is None:
        peak = float(10 ** rng.uniform(3 - 2.5 * strength, 3))
    if read_std is None:
        read_std = float(rng.uniform(0, 0.1 * strength))
    pos = np.maximum(img, 0)
    out = rng.poisson(pos * peak).astype(np.float32) / peak + (img - pos)
    if read_std > 0:
        out += rng.normal(0, read_std, size=img.shape).astype(np.float32)
    return out


@_plane_io
def illumination(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """Uneven illumination and detector gain: a smooth multiplicative field (a linear
    gradient in a random direction times a vignetting falloff around a random centre),
    then a global gain and offset. Amplitudes scale with ``strength``."""
    h, w = img.shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h, dtype=np.float32), np.linspace(-1, 1, w, dtype=np.float32), indexing="ij")
    theta = rng.uniform(0, 2 * np.pi)
    grad = 1 + rng.uniform(0, 0.4 * strength) * (np.cos(theta) * yy + np.sin(theta) * xx) / np.sqrt(2)
    cy, cx = rng.uniform(-0.5, 0.5, size=2)
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / 4.5
    vign = 1 - rng.uniform(0, 0.5 * strength) * r2
    gain = np.exp(rng.uniform(-0.3, 0.3) * strength)
    offset = rng.uniform(-0.1, 0.1) * strength
    return img * grad * vign * gain + offset


@_plane_io
def stain_contrast(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """Stain/contrast jitter on the (hematoxylin or fluorescence) channel: gamma and gain.
    ``x -> gain * x**gamma`` for x >= 0 (monotone), negative values only scaled by gain;
    log gamma in [-0.5, 0.5] * strength, log gain in [-0.3, 0.3] * strength."""
    gamma = float(np.exp(rng.uniform(-0.5, 0.5) * strength))
    gain = float(np.exp(rng.uniform(-0.3, 0.3) * strength))
    pos = np.maximum(img, 0)
    return gain * (pos**gamma + (img - pos))


TRANSMITTED_MODES = ("phase", "dic", "brightfield")


@_plane_io
def transmitted_light(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0, mode: str | None = None) -> np.ndarray:
    """Render the specimen as transmitted-light optics would show it, from its plane.

    The plane's intensity stands for the specimen's optical thickness ``t`` (smoothed by
    sigma 1): ``"phase"`` (phase contrast) shows the high-pass of ``t`` with its sign
    flipped, so thick objects are dark inside a bright halo (the halo's width, the
    low-pass sigma, drawn in [2, 6] px); ``"dic"`` shows the derivative of ``t`` along a
    random shear direction (one rim bright, the opposite rim dark, as in relief);
    ``"brightfield"`` shows a faint absorption image, dark objects on a bright field.
    The rendering is scaled to the plane's 1-99.8 percentile range and blended with the
    plane by the weight ``strength`` (0 = identity, 1 = fully rendered); ``mode`` is drawn
    uniformly unless given. Nuclei in fluorescence then look like cells under a
    phase-contrast or DIC objective, a kind of image the pretraining corpus barely holds:
    restoring the plane from it is reading density from relief.
    """
    from scipy.ndimage import gaussian_filter

    if strength <= 0:
        return img.copy()
    mode = str(rng.choice(TRANSMITTED_MODES)) if mode is None else mode
    if mode not in TRANSMITTED_MODES:
        raise ValueError(f"mode must be one of {TRANSMITTED_MODES}, got {mode!r}")
    t = gaussian_filter(img, 1.0, mode="reflect")
    if mode == "phase":
        rendered = -(t - gaussian_filter(t, rng.uniform(2.0, 6.0), mode="reflect"))
    elif mode == "dic":
        theta = rng.uniform(0, 2 * np.pi)
        gy, gx = np.gradient(t)
        rendered = np.cos(theta) * gy + np.sin(theta) * gx
    else:
        rendered = -t
    lo, hi = np.percentile(img, [1, 99.8])
    rlo, rhi = np.percentile(rendered, [1, 99.8])
    rendered = lo + (rendered - rlo) * (hi - lo) / max(float(rhi - rlo), 1e-6)
    return (1 - strength) * img + strength * rendered


# --------------------------------------------------------------------------- config + composition


class ProxyConfig(BaseModel):
    """Probability (``*_p``) and strength of each corruption. The reconstructive ones follow
    Models Genesis' rates (non-linear curve 0.9, local shuffling 0.5, painting 0.9 of which
    in-painting 0.2 and out-painting 0.8); the microscopy-specific ones are at moderate
    rates (inferred, not from the TOWER paper's text)."""

    model_config = ConfigDict(extra="forbid")

    curve_p: float = Field(0.9, ge=0, le=1, description="non-linear intensity curve")
    curve_strength: float = Field(0.8, ge=0, le=1, description="0 = identity, 1 = any monotone curve")
    shuffle_p: float = Field(0.5, ge=0, le=1, description="local pixel shuffling")
    shuffle_fraction: float = Field(0.3, ge=0, le=1, description="fraction of windows shuffled")
    shuffle_max_window: int = Field(8, ge=2, le=64, description="largest shuffle window side (pixels)")
    paint_p: float = Field(0.9, ge=0, le=1, description="in- or out-painting (one of them per call)")
    inpaint_rate: float = Field(0.2, ge=0, le=1, description="share of painting that is in-painting (rest: out-painting)")
    inpaint_boxes: int = Field(4, ge=1, le=32, description="at most this many in-painted boxes")
    inpaint_strength: float = Field(0.3, ge=0.06, le=0.9, description="largest box side, as a fraction of the image side")
    outpaint_strength: float = Field(0.5, ge=0.05, le=0.9, description="how much is out-painted (kept box side >= 1 - this)")
    blur_p: float = Field(0.3, ge=0, le=1, description="Gaussian blur")
    blur_max_sigma: float = Field(2.0, ge=0.5, le=10, description="largest blur sigma (pixels)")
    noise_p: float = Field(0.5, ge=0, le=1, description="Poisson-Gaussian noise")
    noise_strength: float = Field(0.5, ge=0, le=1, description="1 = down to ~3 photons at intensity 1, read noise up to 0.1")
    illumination_p: float = Field(0.3, ge=0, le=1, description="illumination gradient, vignetting, gain/offset")
    illumination_strength: float = Field(0.5, ge=0, le=1)
    stain_p: float = Field(0.5, ge=0, le=1, description="stain/contrast jitter (gamma + gain)")
    stain_strength: float = Field(0.5, ge=0, le=1)
    transmitted_p: float = Field(0.0, ge=0, le=1, description="render as phase contrast, DIC or brightfield "
                                 "(transmitted_light); 0 keeps the draws of configs that predate it")
    transmitted_strength: float = Field(1.0, ge=0, le=1, description="blend weight of the rendering (1 = fully rendered)")

    @classmethod
    def standard_augmentation(cls) -> "ProxyConfig":
        """The SimCLR/BYOL-style view augmentation used by the baselines: photometric
        (contrast, blur, noise, illumination) only, no reconstructive proxy tasks."""
        return cls(curve_p=0.0, shuffle_p=0.0, paint_p=0.0, blur_p=0.5, noise_p=0.5, illumination_p=0.3, stain_p=0.8)


def corrupt(img, cfg: ProxyConfig, rng: np.random.Generator):
    """Apply each corruption of ``cfg`` with its probability; in- and out-painting are
    mutually exclusive per call. Returns the corrupted image (same kind and shape); the
    restoration target is ``img`` itself, which is not modified."""
    out = img
    # the specimen's appearance first; optics and detector then act on it as on any image
    if cfg.transmitted_p and rng.random() < cfg.transmitted_p:
        out = transmitted_light(out, rng, cfg.transmitted_strength)
    if rng.random() < cfg.stain_p:
        out = stain_contrast(out, rng, cfg.stain_strength)
    if rng.random() < cfg.curve_p:
        out = nonlinear_curve(out, rng, cfg.curve_strength)
    if rng.random() < cfg.illumination_p:
        out = illumination(out, rng, cfg.illumination_strength)
    if rng.random() < cfg.blur_p:
        out = gaussian_blur(out, rng, cfg.blur_max_sigma)
    if rng.random() < cfg.noise_p:
        out = poisson_gaussian_noise(out, rng, cfg.noise_strength)
    if rng.random() < cfg.shuffle_p:
        out = local_shuffle(out, rng, cfg.shuffle_fraction, 2, cfg.shuffle_max_window)
    if rng.random() < cfg.paint_p:
        if rng.random() < cfg.inpaint_rate:
            out = inpaint(out, rng, cfg.inpaint_boxes, cfg.inpaint_strength)
        else:
            out = outpaint(out, rng, cfg.outpaint_strength)
    if out is img:  # nothing drawn: still hand back a new array, never the caller's
        out = img.clone() if hasattr(img, "clone") else np.array(img, dtype=np.float32, copy=True)
    return out


TRANSFORMS = {
    "curve": nonlinear_curve,
    "shuffle": local_shuffle,
    "inpaint": inpaint,
    "outpaint": outpaint,
    "blur": gaussian_blur,
    "noise": poisson_gaussian_noise,
    "illumination": illumination,
    "stain": stain_contrast,
    "transmitted": transmitted_light,
}
