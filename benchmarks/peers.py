"""Peer methods for the few-shot benchmark (``benchmarks.few_shot``).

Every method sees the same single-channel image as napari-tower
(``to_single_channel(img, rgb=img.ndim == 3)`` then ``percentile_normalize``; the
hematoxylin channel for stained histology), is trained on the same k images and is
scored on the same validation images.

- :class:`RFPixelClassifier` — the ilastik / Convpaint approach: per-pixel features from
  ``skimage.feature.multiscale_basic_features`` (intensity, edges, texture at sigmas
  1..16; 20 features), a scikit-learn random forest (50 trees, max depth 12, n_jobs 2)
  over 3 classes (background, nucleus interior, nucleus boundary from
  ``skimage.segmentation.find_boundaries(mode="inner")``) fitted on 40,000 training
  pixels drawn uniformly at random (split evenly over the k images, so the class
  priors stay those of the images), then a seeded watershed: seeds = connected
  components of the pixels predicted "interior", mask = interior or boundary,
  elevation = 1 - P(interior); objects under 15 px are removed.
- Otsu + watershed: ``benchmarks.baselines.classical_segment`` (no training; imported,
  not re-implemented).
- :func:`cellpose_fit_predict` — cellpose 3.1 trained from scratch: a randomly
  initialised CPnet (``models.CellposeModel(gpu=False, pretrained_model=False)``),
  ``cellpose.train.train_seg`` on the k images for a wall-clock budget (or a fixed number
  of epochs), then ``model.eval``. Optional: :func:`cellpose_available` says whether it
  can be imported, and why not; :func:`cellpose_warmup` compiles cellpose's numba code
  once, outside every timed run. On a CPU one training step of CPnet (batch 8 of
  224x224 crops, cellpose's defaults) takes tens of seconds, so a budget of minutes
  buys only a handful of steps: that is the point of comparing at equal wall-clock.

Needs scikit-learn (RF) and, optionally, cellpose 3.1 (see benchmarks/README.md).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from .baselines import classical_segment  # noqa: F401  (re-exported: the Otsu + watershed peer)

RF_METHOD = "RF pixel classifier + watershed (ilastik-like)"
OTSU_METHOD = "Otsu + watershed (classical, no training)"
CELLPOSE_METHOD = "cellpose 3.1 from scratch"


def to_gray(image) -> np.ndarray:
    """The single-channel, percentile-normalised float32 image napari-tower feeds its network."""
    from napari_tower.io.normalize import percentile_normalize, to_single_channel

    img = np.asarray(image)
    return percentile_normalize(to_single_channel(img, rgb=img.ndim == 3)).astype(np.float32, copy=False)


# --- random-forest pixel classifier ------------------------------------------------------


def pixel_features(gray: np.ndarray, sigma_min: float = 1.0, sigma_max: float = 16.0) -> np.ndarray:
    """(Y, X, F) float32 features: Gaussian intensity, gradient magnitude and Hessian
    eigenvalues at sigmas ``sigma_min``..``sigma_max`` (``multiscale_basic_features``)."""
    from skimage.feature import multiscale_basic_features

    return multiscale_basic_features(
        gray, intensity=True, edges=True, texture=True, sigma_min=sigma_min, sigma_max=sigma_max,
        channel_axis=None,
    ).astype(np.float32, copy=False)


def pixel_classes(labels: np.ndarray) -> np.ndarray:
    """0 = background, 1 = nucleus interior, 2 = nucleus boundary (inner boundary pixels)."""
    from skimage.segmentation import find_boundaries

    labels = np.asarray(labels)
    boundary = find_boundaries(labels, mode="inner") & (labels > 0)
    out = np.zeros(labels.shape, np.uint8)
    out[labels > 0] = 1
    out[boundary] = 2
    return out


def watershed_from_probs(proba: np.ndarray, min_size: int = 15) -> np.ndarray:
    """Instance labels from (Y, X, 3) class probabilities (background, interior, boundary)."""
    from scipy import ndimage as ndi
    from skimage.segmentation import relabel_sequential, watershed

    cls = np.argmax(proba, axis=-1)
    interior = cls == 1
    mask = cls > 0
    seeds, n = ndi.label(interior)
    if n == 0:
        return np.zeros(cls.shape, np.int32)
    labels = watershed(1.0 - proba[..., 1], seeds, mask=mask).astype(np.int32)
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    labels[small[labels]] = 0
    return relabel_sequential(labels)[0].astype(np.int32)


@dataclass
class RFPixelClassifier:
    """ilastik-style pixel classifier; ``fit(images, labels)`` then ``predict(image)``.

    ``max_pixels``: training pixels drawn uniformly at random over all training images
    (split evenly between them), so the class priors stay those of the images.
    """

    n_estimators: int = 50
    max_depth: int = 12
    max_pixels: int = 40_000
    n_jobs: int = 2
    seed: int = 0
    min_size: int = 15
    forest: object = field(default=None, repr=False)

    def fit(self, images, labels) -> RFPixelClassifier:
        from sklearn.ensemble import RandomForestClassifier

        rng = np.random.default_rng(self.seed)
        per_image = max(1, self.max_pixels // max(1, len(images)))
        xs, ys = [], []
        for img, lab in zip(images, labels, strict=True):
            feats = pixel_features(to_gray(img))
            cls = pixel_classes(lab).ravel()
            feats = feats.reshape(-1, feats.shape[-1])
            idx = rng.choice(cls.size, size=min(per_image, cls.size), replace=False)
            xs.append(feats[idx])
            ys.append(cls[idx])
        x, y = np.concatenate(xs), np.concatenate(ys)
        self.forest = RandomForestClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth, n_jobs=self.n_jobs, random_state=self.seed,
        ).fit(x, y)
        return self

    def predict_proba(self, image, chunk: int = 500_000) -> np.ndarray:
        feats = pixel_features(to_gray(image))
        shape = feats.shape[:2]
        flat = feats.reshape(-1, feats.shape[-1])
        proba = np.zeros((flat.shape[0], 3), np.float32)
        for a in range(0, flat.shape[0], chunk):
            p = self.forest.predict_proba(flat[a : a + chunk])
            proba[a : a + chunk, self.forest.classes_] = p  # a class absent from training stays 0
        return proba.reshape(*shape, 3)

    def predict(self, image) -> np.ndarray:
        return watershed_from_probs(self.predict_proba(image), self.min_size)


# --- cellpose 3.1 from scratch ---------------------------------------------------------------


def cellpose_available() -> tuple[bool, str]:
    """(True, version) if cellpose 3.x imports, else (False, why)."""
    try:
        import cellpose
        from cellpose import models, train  # noqa: F401
    except Exception as e:  # noqa: BLE001  (ImportError, or a broken dependency of an optional peer)
        return False, f"cellpose could not be imported ({type(e).__name__}: {e})"
    try:
        from importlib.metadata import version

        v = version("cellpose")
    except Exception:  # noqa: BLE001
        v = getattr(cellpose, "__version__", "unknown")
    if not str(v).startswith("3."):
        return False, f"cellpose {v} is installed; this benchmark drives the 3.x API (CellposeModel + train_seg)"
    return True, str(v)


def _quiet_cellpose() -> None:
    import warnings

    for name in ("cellpose", "cellpose.models", "cellpose.train", "cellpose.core", "cellpose.dynamics",
                 "cellpose.transforms", "cellpose.io"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="Sparse invariant checks")


def cellpose_warmup() -> float:
    """Run cellpose's flow computation and ``eval`` once on a small synthetic image, so that
    numba compilation and first-call costs fall outside the timed runs; returns seconds."""
    import torch
    from cellpose import dynamics, models

    _quiet_cellpose()
    t0 = time.perf_counter()
    yy, xx = np.mgrid[:96, :96]
    lab = np.zeros((96, 96), np.int32)
    for i, (cy, cx) in enumerate(((30, 30), (30, 66), (66, 48)), 1):
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 < 100] = i
    dynamics.labels_to_flows([lab], device=torch.device("cpu"))
    model = models.CellposeModel(gpu=False, pretrained_model=False, model_type=None, nchan=2)
    model.eval((lab > 0).astype(np.float32), channels=[0, 0], diameter=None)
    return time.perf_counter() - t0


class _BudgetReached(Exception):
    pass


def cellpose_fit_predict(
    train_images, train_labels, test_images, seconds: float | None = None, epochs: int | None = None,
    seed: int = 0, workdir=None, batch_size: int = 8, learning_rate: float = 0.005,
) -> tuple[list[np.ndarray], dict]:
    """Train a randomly initialised cellpose 3.1 CPnet on the images, segment ``test_images``.

    The budget is either ``seconds`` of wall-clock (training starts with cellpose's own
    flow computation; when the budget is spent the next training forward pass stops the
    run and the weights reached so far are used) or a fixed number of ``epochs``
    (``train_seg``'s own schedule). An epoch is ``max(8, k)`` random crops.
    Returns the predicted labels and {"train_seconds", "epochs_done", "diam_labels", ...}.
    """
    import tempfile

    import torch
    from cellpose import models, train

    if (seconds is None) == (epochs is None):
        raise ValueError("give exactly one of seconds or epochs")
    _quiet_cellpose()
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = models.CellposeModel(gpu=False, pretrained_model=False, model_type=None, nchan=2)
    data = [to_gray(im) for im in train_images]
    labs = [np.asarray(lb).astype(np.int32) for lb in train_labels]
    net = model.net
    state = {"forwards": 0, "deadline": None}

    def stop_when_spent(module, args):
        if module.training:
            if state["deadline"] is not None and time.perf_counter() > state["deadline"]:
                raise _BudgetReached
            state["forwards"] += 1

    hook = net.register_forward_pre_hook(stop_when_spent)
    stopped = False
    with tempfile.TemporaryDirectory(prefix="few-shot-cellpose-", dir=workdir) as tmp:
        t0 = time.perf_counter()
        if seconds is not None:
            state["deadline"] = t0 + seconds
        try:
            train.train_seg(
                net, train_data=data, train_labels=labs, channels=[0, 0], normalize=True,
                n_epochs=epochs if epochs is not None else 1_000_000, batch_size=batch_size,
                learning_rate=learning_rate, nimg_per_epoch=max(8, len(data)), min_train_masks=1,
                save_path=tmp, save_every=10**9, model_name="few_shot",
            )
        except _BudgetReached:
            stopped = True
        train_seconds = time.perf_counter() - t0
    hook.remove()
    net.eval()
    # train_seg stores the training objects' mean diameter in the network; eval rescales with it
    model.diam_labels = float(net.diam_labels.item())
    t1 = time.perf_counter()
    preds = []
    for im in test_images:
        masks = model.eval(to_gray(im), channels=[0, 0], normalize=True, diameter=None)[0]
        preds.append(np.asarray(masks).astype(np.int32))
    info = {
        "train_seconds": train_seconds, "predict_seconds": time.perf_counter() - t1,
        "batches_done": state["forwards"], "stopped_by_budget": stopped, "diam_labels": model.diam_labels,
    }
    return preds, info
