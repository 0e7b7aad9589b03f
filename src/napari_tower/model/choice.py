"""The "auto" model: which bundled model suits an image, decided once per image.

``default`` is the general nuclei model (fluorescence, brightfield, H&E through its
hematoxylin channel). ``nuclei-fluo`` is its fluorescence specialist, trained further on
fluorescence only, dense tissue included. A plane is taken as fluorescence when it is
single-channel (or gray/one lit channel stored as RGB) and its background is dark: the
median pixel sits in the lower half of the 1st-99.8th percentile range. On the data we have
the medians are <= 0.19 for dsb2018 fluorescence, <= 0.37 for dense fluorescence tissue and
>= 0.82 for brightfield, so the cut at 0.5 is not a fine threshold.

Z stacks keep ``default``: the 3D assembly's rules were chosen and measured with it.
"""
from __future__ import annotations

import numpy as np

AUTO = "auto"
GENERAL = "default"
FLUORESCENCE = "nuclei-fluo"
CELLS = "cells"
OBJECTS = ("auto", "nuclei", "cells")  # what the user says they segment (widget, CLI --objects)
DARK_MEDIAN = 0.5


def median_position(values: np.ndarray) -> float:
    """Where the median lies in the 1st-99.8th percentile range (0-1); NaN for a flat image."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    lo, med, hi = np.percentile(values, [1.0, 50.0, 99.8])
    return float((med - lo) / (hi - lo)) if hi > lo else float("nan")


def dark_background(values: np.ndarray) -> bool:
    """True when the median value lies in the lower half of the 1st-99.8th percentile range."""
    return bool(median_position(values) < DARK_MEDIAN)  # NaN (nothing to go on) compares False


def choose_model(image, axes: str) -> str:
    """``FLUORESCENCE`` or ``GENERAL`` for ``image`` (numpy, dask, zarr or a LazyImage) with
    checked ``axes`` (e.g. "YX", "TYX", "YXC", "ZYX")."""
    from ..io.normalize import rgb_kind

    if "Z" in axes:
        return GENERAL
    planes = _sample(image, axes)
    if axes.endswith("C"):
        kinds = [rgb_kind(p) for p in planes]
        if any(k == "stain" for k, _ in kinds):
            return GENERAL
        planes = [p[..., c] for p, (_, c) in zip(planes, kinds)]
    values = np.concatenate([p.ravel() for p in planes])
    return FLUORESCENCE if dark_background(values) else GENERAL


def _sample(image, axes: str) -> list:
    from ..io.lazy import LazyImage, sample_planes

    lazy = image if isinstance(image, LazyImage) else LazyImage(image, axes)
    lazy.axes = axes
    return sample_planes(lazy, planes=8, max_pixels=1_000_000)


def stained(image, axes: str) -> bool:
    """True for colour images of a stain (H&E, IHC): neither gray nor one lit channel."""
    from ..io.normalize import rgb_kind

    return bool(axes and axes.endswith("C")) and any(rgb_kind(p)[0] == "stain" for p in _sample(image, axes))


def model_for_objects(model, objects: str):
    """``model`` as asked, after the user's "objects" choice: "cells" with ``model="auto"`` means
    the bundled cells model; "nuclei" and "auto" keep the nuclei routing."""
    if objects not in OBJECTS:
        from ..errors import InputError

        raise InputError(f"objects must be one of {', '.join(OBJECTS)}, got {objects!r}")
    if objects == "cells" and isinstance(model, str) and model == AUTO:
        if not cells_available():
            from ..errors import ModelError

            raise ModelError("no 'cells' model is installed (the bundled one is still in training): fine-tune "
                             "one on 2 annotated frames (napari-tower finetune; docs: tutorials/cells) and pass it "
                             "with --model")
        return CELLS
    return model


def cells_available() -> bool:
    from .weights import available_models

    return CELLS in available_models()
