"""Tiled inference: any image size, memory bounded by the tile size.

Tiles overlap and are blended with a smooth window, so seams do not show; the per-axis
tile count is chosen first and the tiles then shrink to cover the image evenly, which
wastes less compute than fixed-size tiles.
"""
from __future__ import annotations

import functools
import math
from contextlib import nullcontext

import numpy as np
import torch

from ..model.network import FLOW_SCALE


def tile_starts(length: int, tile: int, overlap: int, divisor: int) -> tuple[list[int], int]:
    """Start offsets along one axis and the (multiple of ``divisor``) tile size used."""
    if length <= tile:
        size = int(math.ceil(length / divisor) * divisor)
        return [0], size
    n = math.ceil((length - overlap) / (tile - overlap))
    size = int(math.ceil((length + (n - 1) * overlap) / n / divisor) * divisor)
    starts = np.linspace(0, length - size, n).round().astype(int).tolist()
    return starts, size


def _window(size: int, overlap: int) -> np.ndarray:
    w = np.ones(size, np.float32)
    if overlap > 0 and size > 2 * overlap:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, overlap + 2)[1:-1])
        w[:overlap] = ramp
        w[-overlap:] = ramp[::-1]
    return w


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        import platform

        return platform.machine() == "arm64"  # Apple silicon CPUs have bf16 arithmetic


def autocast_for(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    if device.type == "cpu":
        # bf16 helps only where the CPU has native bf16 (AVX512-BF16/AMX); elsewhere it is
        # emulated and ~10x slower than fp32 (measured on an AVX2-only EPYC)
        return torch.autocast("cpu", dtype=torch.bfloat16) if cpu_has_bf16() else nullcontext()
    if device.type == "cuda":
        dt = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dt)
    if device.type == "mps":
        return torch.autocast("mps", dtype=torch.float16)
    return nullcontext()


@torch.inference_mode()
def predict_maps(
    model: torch.nn.Module,
    image: np.ndarray,
    device: torch.device,
    tile: int = 1024,
    overlap: int = 64,
    precision: str = "auto",
    divisor: int = 8,
    should_stop=None,
) -> np.ndarray:
    """Maps (C, Y, X) float32 for a normalised 2D image (Y, X): probabilities, then flows."""
    h, w = image.shape
    ys, th = tile_starts(h, tile, overlap, divisor)
    xs, tw = tile_starts(w, tile, overlap, divisor)
    ov_y = min(overlap, th // 4) if len(ys) > 1 else 0
    ov_x = min(overlap, tw // 4) if len(xs) > 1 else 0
    weight = np.outer(_window(th, ov_y), _window(tw, ov_x))
    out = None
    norm = np.zeros((h, w), np.float32)
    # pad small images up to one tile with reflection (zero padding darkens edge objects)
    pad_y, pad_x = max(th - h, 0), max(tw - w, 0)
    src = np.pad(image, ((0, pad_y), (0, pad_x)), mode="reflect" if min(h, w) > 1 else "edge") if (pad_y or pad_x) else image
    for y in ys:
        for x in xs:
            if should_stop is not None and should_stop():
                from ..errors import Cancelled

                raise Cancelled("cancelled")
            patch = np.ascontiguousarray(src[y : y + th, x : x + tw], dtype=np.float32)
            t = torch.from_numpy(patch)[None, None].to(device).contiguous(memory_format=torch.channels_last)
            with autocast_for(device, precision):
                logits = model(t)
            logits = logits.float()[0]
            # probabilities for foreground, boundary, centerness; flows (if any) at unit length
            prob = torch.cat([torch.sigmoid(logits[:3]), logits[3:] / FLOW_SCALE]).cpu().numpy()
            if out is None:
                out = np.zeros((prob.shape[0], h, w), np.float32)
            yh, xw = min(th, h - y), min(tw, w - x)
            wgt = weight[:yh, :xw]
            out[:, y : y + yh, x : x + xw] += prob[:, :yh, :xw] * wgt
            norm[y : y + yh, x : x + xw] += wgt
    out /= np.maximum(norm, 1e-6)
    return out


@torch.inference_mode()
def predict_maps_batch(model: torch.nn.Module, images: np.ndarray, device: torch.device, precision: str = "auto",
                       divisor: int = 8) -> np.ndarray:
    """Maps (N, C, Y, X) for a batch of small normalised planes (N, Y, X), each within one tile.

    The XZ and YZ planes of a stack are short (Z rows): one network call per plane would
    spend most of its time in per-call overhead, so they go through the network together.
    """
    n, h, w = images.shape
    th, tw = (int(math.ceil(s / divisor) * divisor) for s in (h, w))
    pad = ((0, 0), (0, th - h), (0, tw - w))
    src = np.pad(images, pad, mode="reflect" if min(h, w) > 1 else "edge") if (th > h or tw > w) else images
    t = torch.from_numpy(np.ascontiguousarray(src, dtype=np.float32))[:, None].to(device)
    t = t.contiguous(memory_format=torch.channels_last)
    with autocast_for(device, precision):
        logits = model(t).float()
    prob = torch.cat([torch.sigmoid(logits[:, :3]), logits[:, 3:] / FLOW_SCALE], 1)
    return prob[:, :, :h, :w].cpu().numpy()
