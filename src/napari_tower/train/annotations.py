"""User annotations -> training samples.

Two conventions:
- dense: instance labels, 0 = background, every pixel of an annotated plane counts;
- sparse: 0 = not annotated (ignored by the loss), 1 = background, >= 2 = objects.
Planes (z slices or time frames) holding any annotation are found automatically.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from ..errors import InputError
from ..io.normalize import percentile_normalize, to_single_channel
from ..predict.axes import as_array, check_axes, guess_axes, leading_shape
from ..predict.postprocess import relabel_sequential
from ..predict.segment import scaled_shape
from .data import Sample
from .targets import seg_targets


def annotated_planes(image, labels, axes: str | None = None, sparse: bool = False, group: str = "") -> list[Sample]:
    """Samples for every plane of ``labels`` that holds annotation."""
    image = as_array(image)
    labels = np.asarray(labels)
    axes = check_axes(image.shape, axes or guess_axes(image.shape))
    img_shape = image.shape[:-1] if axes.endswith("C") else image.shape
    if labels.shape != tuple(img_shape):
        raise InputError(f"labels of shape {labels.shape} do not match the image's shape {tuple(img_shape)}")
    if not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0):
            labels = labels.astype(np.int64)
        else:
            raise InputError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.min(initial=0) < 0:
        raise InputError("labels must not be negative")
    rgb = axes.endswith("C")
    lead = leading_shape(image.shape, axes)
    samples = []
    for idx in itertools.product(*(range(n) for n in lead)):
        lab = labels[idx]
        if not lab.any():
            continue
        img = percentile_normalize(to_single_channel(np.asarray(image[idx]), rgb))
        samples.append(plane_sample(img, lab, sparse, group or f"plane {idx}"))
    if not samples:
        raise InputError("the labels hold no annotation (all zero): paint some objects first")
    return samples


def plane_sample(img: np.ndarray, lab: np.ndarray, sparse: bool, group: str = "") -> Sample:
    lab = np.asarray(lab).astype(np.int64)
    if sparse:
        valid = lab > 0
        inst = relabel_sequential(np.where(lab >= 2, lab, 0))
    else:
        valid = None
        inst = relabel_sequential(lab)
    targets = seg_targets(inst)
    return Sample(img, targets, valid, inst, group)


def rescale_sample(s: Sample, factor: float) -> Sample:
    """The sample resized by ``factor``: image with area averaging, labels and mask by nearest neighbour."""
    h, w = s.image.shape
    ny, nx = scaled_shape((h, w), factor)
    rows = np.minimum(((np.arange(ny) + 0.5) * h / ny).astype(int), h - 1)
    cols = np.minimum(((np.arange(nx) + 0.5) * w / nx).astype(int), w - 1)
    t = torch.from_numpy(np.ascontiguousarray(s.image, np.float32))[None, None]
    img = torch.nn.functional.interpolate(t, size=(ny, nx), mode="bilinear", antialias=True, align_corners=False)[0, 0].numpy()
    inst = relabel_sequential(s.labels[np.ix_(rows, cols)])
    valid = None if s.valid is None else s.valid[np.ix_(rows, cols)]
    return Sample(img, seg_targets(inst), valid, inst, s.group)


def check_convention(labels_list: list[np.ndarray], sparse: bool) -> None:
    """Catch the common mix-up: sparse-looking labels trained as dense, or the reverse."""
    if sparse:
        return
    for lab in labels_list:
        lab = np.asarray(lab)
        if lab.any() and (lab == 1).mean() > 0.5 and len(np.unique(lab)) > 2:
            raise InputError(
                "label 1 covers most of the image, as background does: if 1 marks background and "
                "0 means 'not annotated', use sparse mode (--sparse)"
            )
