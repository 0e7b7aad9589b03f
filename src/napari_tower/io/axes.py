"""Which axes an array has: leading T and/or Z, then Y, X, then an optional colour axis C."""
from __future__ import annotations

import numpy as np

from ..errors import InputError

VALID = ("YX", "YXC", "ZYX", "TYX", "ZYXC", "TYXC", "TZYX", "TZYXC")


def guess_axes(shape: tuple[int, ...], rgb: bool | None = None) -> str:
    """Best guess for an unlabelled array; 3D non-colour arrays are taken as Z stacks."""
    nd = len(shape)
    if rgb is None:
        rgb = nd >= 3 and shape[-1] in (3, 4) and min(shape[-3:-1]) > 4
    base = {2: "YX", 3: "ZYX", 4: "TZYX"}
    n = nd - 1 if rgb else nd
    if n not in base:
        raise InputError(f"cannot segment an array of shape {shape}: expected 2D, 3D or 4D (optionally RGB)")
    return base[n] + ("C" if rgb else "")


def check_axes(shape: tuple[int, ...], axes: str) -> str:
    axes = axes.upper()
    if axes not in VALID:
        raise InputError(f"axes {axes!r} not supported; use one of {', '.join(VALID)}")
    if len(axes) != len(shape):
        raise InputError(f"axes {axes!r} do not match an image of shape {tuple(shape)}")
    if axes.endswith("C") and shape[-1] not in (3, 4):
        raise InputError(
            f"axis C must be RGB(A) with 3 or 4 values, got {shape[-1]}; pick one channel of a multichannel image first"
        )
    y, x = (shape[-3], shape[-2]) if axes.endswith("C") else (shape[-2], shape[-1])
    if min(y, x) < 8:
        raise InputError(f"image planes of {y}x{x} pixels are too small to segment (shape {tuple(shape)}, axes {axes})")
    return axes


def leading_shape(shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    """Shape of the non-YX, non-C axes (the planes to iterate over)."""
    n = len(axes.rstrip("C")) - 2
    return tuple(shape[:n])


def as_array(image) -> np.ndarray:
    """numpy view of numpy/dask/zarr-like input (a plane is loaded only when indexed)."""
    if hasattr(image, "shape") and hasattr(image, "dtype") and hasattr(image, "__getitem__"):
        return image
    return np.asarray(image)
