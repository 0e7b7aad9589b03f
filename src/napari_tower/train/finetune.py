"""Few-shot fine-tuning from a base model on a handful of annotated planes."""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..config import PostprocessConfig
from ..errors import InputError, ModelError
from ..model.network import ArchConfig, TowerNet, add_flow_maps, count_parameters, head_names
from ..model.weights import load_network, resolve_device, resolve_model_dir, save_model, user_models_dir
from ..predict.postprocess import median_area_diameter, object_areas
from ..progress import Progress
from .annotations import annotated_planes, check_convention, rescale_sample
from .trainer import TrainSettings, train


def default_arch() -> ArchConfig:
    """The bundled default model's architecture, so 'none' and 'default' compare like for like."""
    from ..model.weights import BUNDLED_DIR, read_card

    try:
        return ArchConfig.from_dict(read_card(BUNDLED_DIR / "default")["architecture"])
    except (ModelError, KeyError, TypeError):
        return ArchConfig(widths=(12, 24, 48, 96, 192))


def annotated_areas(samples) -> np.ndarray:
    """Pixel areas of every annotated object over the samples."""
    return np.concatenate([object_areas(s.labels) for s in samples])


def size_floor(samples, base_min_size: int, fraction: float = 0.2) -> int:
    """Minimum object size for a fine-tuned model: a fraction of the annotated objects' median area.

    Fragments far smaller than the user's own objects are noise (on whole cells, 15 px kept
    twice as many objects as there were cells).
    """
    areas = annotated_areas(samples)
    return max(int(base_min_size), int(fraction * np.median(areas))) if areas.size else int(base_min_size)


# objects much larger than the base model's nuclei (dsb2018: median ~20 px across) are learnt
# and segmented downscaled, as cellpose rescales to a 30 px diameter: the network's context
# then spans whole cells, and every step and prediction costs fewer pixels
LARGE_DIAMETER = 40.0
TARGET_DIAMETER = 30.0


def training_scale(samples) -> float:
    """Resize factor for training and prediction: 1, or < 1 when the annotated objects are large."""
    d = median_area_diameter(annotated_areas(samples))
    return 1.0 if d <= LARGE_DIAMETER else max(0.25, round(TARGET_DIAMETER / d, 3))


# a trained base that already finds this share of the user's objects (AP@0.5 on the annotated
# planes) adapts at the gentle rate; below it, the images are foreign to it and it learns fast
FAMILIAR_AP = 0.2


def has_trained_head(base_card: dict) -> bool:
    """Whether the base is a segmentation model (not 'none', not self-supervised weights)."""
    return bool(base_card) and base_card.get("kind") != "pretrained"


# learning rates: FAST for untrained segmentation heads and images a trained base does not know,
# GENTLE for a trained base on images it knows
FAST_LR = 5e-3
GENTLE_LR = 1e-3


def base_lr(base_card: dict, zero_shot_ap: float | None = None) -> float:
    """Learning rate when none is given: FAST_LR for bases whose segmentation head is
    untrained (random initialisation, self-supervised weights) and for trained bases that
    do not segment the user's images (zero-shot AP@0.5 on the annotations < FAMILIAR_AP);
    GENTLE_LR for a trained base on images it already knows.

    3 minutes from 2 annotated frames. Whole cells: `none` AP@0.5 0.400 / 0.410 at 3e-3,
    0.452 / 0.453 at 5e-3 (seeds 0 / 1); `tower` 0.441 / 0.456 at 3e-3, 0.455 / 0.463 at 5e-3
    (0.257 at 1e-3 in an earlier version); `default` (zero-shot AP 0) 0.43-0.44 at 1e-3, 0.48
    at 3e-3. Dense H&E mosaics (`benchmarks.unseen_few_shot --all-images --mosaic 4x3`):
    `none` 0.514 at 3e-3, 0.518 at 5e-3; `tower` 0.523 / 0.517. Histology from two dsb2018
    validation images with `default` (zero-shot 0.58 there): 0.55 at 1e-3, 0.52 at 3e-3.
    """
    if not has_trained_head(base_card) or (zero_shot_ap is not None and zero_shot_ap < FAMILIAR_AP):
        return FAST_LR
    return GENTLE_LR


# a trained base that already segments the user's objects this well keeps its encoder
WELL_SEGMENTED_AP = 0.55


def keeps_encoder(base_card: dict, zero_shot_ap: float | None) -> bool:
    """Whether fine-tuning leaves the encoder as it is: yes for a trained base that already
    segments the user's objects well (zero-shot AP@0.5 >= WELL_SEGMENTED_AP); the decoder and
    heads then adapt to the user's objects and annotation style, and each step is cheaper.
    Other bases learn everything.

    H&E, 3 min from 2 images (`benchmarks.unseen_few_shot`): `default` on dsb2018 histology it
    knows (zero-shot 0.64 on the annotations) scores 0.598 with its encoder kept, 0.549
    trained; a base that never saw H&E (zero-shot 0.45-0.46) scores 0.514 / 0.515 / 0.489 kept,
    0.538 / 0.521 / 0.517 trained (two 1-Mpx mosaics, twice; two single images).
    """
    return has_trained_head(base_card) and zero_shot_ap is not None and zero_shot_ap >= WELL_SEGMENTED_AP


# ``head_warmup``: optionally, the pretrained parts of a self-supervised base stay fixed for this
# fraction of the run while its random segmentation head learns to read them (LP-FT, Kumar et
# al. 2022). Off by default: in the SSL comparison (quick profile, 2026-11-27) a 0.2 warm-up
# moved TOWER from 0.191 to 0.209 AP@0.5 at 1% of the labels but from 0.364 to 0.314 at 10%.
HEAD_WARMUP = 0.0


def pretrained_parts(base_card: dict) -> tuple[str, ...]:
    """The parts of the network a self-supervised base trained: the encoder, and for TOWER
    with restoration the decoder path too; () for other bases."""
    if base_card.get("kind") != "pretrained":
        return ()
    config = base_card.get("pretraining", {}).get("config", {})
    if config.get("method", "tower") == "tower" and config.get("use_restore", True):
        return ("encoder", "decoder", "fullres", "refine")
    return ("encoder",)


def base_network(base: str | os.PathLike) -> tuple[TowerNet, str]:
    """'none' (random init), 'tower' (bundled pretrained), 'default', a name, or a directory."""
    net, name, _ = _load_base(base)
    return net, name


def _load_base(base: str | os.PathLike) -> tuple[TowerNet, str, dict]:
    """``base_network`` plus the base's card ({} for 'none'), read once."""
    if str(base) == "none":
        return add_flow_maps(TowerNet(default_arch())), "none", {}
    try:
        path = resolve_model_dir(base)
    except ModelError:
        if str(base) == "tower":
            raise ModelError("the bundled 'tower' pretrained weights are not installed in this version; use --base default or none") from None
        raise
    net, card = load_network(path)
    # fine-tuned models always learn flows: irregular cells need them (see choose_method)
    net = add_flow_maps(net)
    return net, str(base) if not os.path.isdir(str(base)) else str(card.get("name", path.name)), card


FLOWS_MARGIN = 0.03


def choose_method(net: TowerNet, samples, device, post: dict) -> tuple[str, dict]:
    """The separation method ("watershed" or "flows") with the higher AP@0.5 on these annotated planes.

    Like stardist's threshold optimisation on validation images: the planes are the held-out
    one when given, else the training planes (the model fits those better, but both methods
    are scored on the same footing). Flows must win by ``FLOWS_MARGIN``: an AP from one or two
    planes is noisy, and watershed is the faster, bundled method (whole cells, one model: AP on
    the two training frames 0.418 watershed vs 0.426 flows, on the eight unseen frames 0.439 vs 0.405).
    """
    from ..metrics import average_precision
    from ..predict.postprocess import instances_from_maps
    from ..predict.tiling import predict_maps

    net.eval()
    scores = {"watershed": [], "flows": []}
    for s in samples:
        maps = predict_maps(net, s.image, device, divisor=net.cfg.divisor)
        for m, values in scores.items():
            pred = instances_from_maps(maps[0], maps[2], post["prob_threshold"], post["seed_threshold"],
                                       post["min_size"], post["split_depth"], flow=maps[3:5], method=m)
            if s.valid is not None:
                pred = np.where(s.valid, pred, 0)
            values.append(average_precision(pred, s.labels))
    means = {m: round(float(np.mean(v)), 4) for m, v in scores.items()}
    method = "flows" if means["flows"] > means["watershed"] + FLOWS_MARGIN else "watershed"
    return method, {"ap50": means, "planes": len(samples), "flows_margin": FLOWS_MARGIN}


def _as_list(x) -> list:
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def finetune_iter(
    images: Sequence | np.ndarray,
    labels: Sequence | np.ndarray,
    base: str | os.PathLike = "auto",
    sparse: bool = False,
    max_minutes: float | None = 3.0,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    axes: str | None = None,
    validation: tuple | None = None,
    name: str | None = None,
    output: str | os.PathLike | None = None,
    should_stop: Callable[[], bool] | None = None,
    lr: float | None = None,
    batch_size: int = 8,
    crop: int = 128,
    preview_image: np.ndarray | None = None,
    preview_every: float = 5.0,
    freeze_bn: bool = False,
    scale: float | str = "auto",
    freeze_encoder: bool | None = None,
    head_warmup: float = HEAD_WARMUP,
) -> Iterator[Progress]:
    """Fine-tune, yielding Progress; the final report's ``result`` is the saved model directory.

    ``validation`` is an optional (image, labels) pair held out for early stopping: the
    best weights on it are kept. Without it, the last weights are kept. ``scale``: the
    resize factor to learn and segment at, or "auto" (``training_scale``: large objects
    are downscaled to ~30 px across). ``freeze_encoder``: train the decoder and heads only;
    None decides by ``keeps_encoder``. ``head_warmup``: the fraction of the run during which
    a self-supervised base's pretrained parts stay fixed (see ``pretrained_parts``).
    """
    imgs, labs = _as_list(images), _as_list(labels)
    if len(imgs) != len(labs):
        raise InputError(f"{len(imgs)} images but {len(labs)} label images")
    if not imgs:
        raise InputError("no images given")
    check_convention(labs, sparse)
    samples = []
    for i, (im, lb) in enumerate(zip(imgs, labs)):
        samples += annotated_planes(im, lb, axes, sparse, group=f"image {i}")
    if not any(s.labels.max() > 0 for s in samples):
        raise InputError("the annotations hold no object: sparse labels need 1 for background and >= 2 for objects (0 = not annotated)")
    val_samples = None
    if validation is not None:
        val_samples = annotated_planes(validation[0], validation[1], axes, sparse, group="validation")
    if max_minutes is None and epochs is None:
        raise InputError("give a time budget (max_minutes) or a number of epochs")
    factor = training_scale(samples) if scale == "auto" else float(scale)
    if not 0.25 <= factor <= 4.0:
        raise InputError(f"scale must be 'auto' or between 0.25 and 4, got {scale}")
    min_size_samples = samples  # the size floor is in the user's pixels
    if factor != 1.0:
        samples = [rescale_sample(s, factor) for s in samples]
        val_samples = [rescale_sample(s, factor) for s in val_samples] if val_samples else val_samples
    dev = resolve_device(device)
    base_scores = None
    if str(base) == "auto":
        from .base_choice import choose_base

        yield Progress(0, 1, "choosing the base model that segments the annotations best")
        base, base_scores = choose_base(samples, dev)
    torch.manual_seed(seed)  # before building the network: 'none' starts from a seeded init
    net, base_name, base_card = _load_base(base)
    area = sum(s.image.size if s.valid is None else max(int(s.valid.sum()), crop * crop) for s in samples)
    steps_per_epoch = max(1, math.ceil(area / (batch_size * crop * crop)))
    max_steps = epochs * steps_per_epoch if epochs else 100_000
    zero_shot = None
    if (lr is None or freeze_encoder is None) and has_trained_head(base_card):
        from .trainer import evaluate

        yield Progress(0, max_steps, "checking how well the base segments the annotations")
        zero_shot = round(evaluate(net, samples, dev)["ap50"], 4)
    settings = TrainSettings(
        max_steps=max_steps, max_minutes=max_minutes if not epochs else None, batch_size=batch_size, crop=crop,
        lr=lr if lr is not None else base_lr(base_card, zero_shot), seed=seed, val_every=max(steps_per_epoch * 5, 25), log_every=5,
        scale_range=(0.7, 1.4), freeze_bn=bool(freeze_bn),
    )
    keep = keeps_encoder(base_card, zero_shot) if freeze_encoder is None else bool(freeze_encoder)
    if keep:
        settings.frozen, settings.frozen_until = ("encoder",), 1.0
    elif head_warmup and (parts := pretrained_parts(base_card)):
        settings.frozen, settings.frozen_until = parts, float(head_warmup)
    preview_fn = None
    if preview_image is not None:
        from ..io.normalize import percentile_normalize, to_single_channel
        from ..predict.postprocess import instances_from_maps
        from ..predict.tiling import predict_maps

        rgb = preview_image.ndim == 3 and preview_image.shape[-1] in (3, 4)
        pimg = percentile_normalize(to_single_channel(np.asarray(preview_image), rgb))
        from ..predict.segment import _resize, scaled_shape

        full_shape = pimg.shape
        if factor != 1.0:
            pimg = _resize(pimg[None], scaled_shape(full_shape, factor))[0]

        def preview_fn(n):
            maps = predict_maps(n, pimg, dev, divisor=n.cfg.divisor)
            if factor != 1.0:
                maps = _resize(maps, full_shape)
            return instances_from_maps(maps[0], maps[2])

    result = None
    for p in train(net, samples, val_samples, settings, dev, should_stop, preview_fn, preview_every):
        if p.result is not None:
            result = p.result
        else:
            yield p
    base_post = {**PostprocessConfig().model_dump(), **base_card.get("postprocess", {})}
    yield Progress(result.steps, result.steps, "choosing how to separate objects")
    # the floor comes from the user's objects: a base's own floor is for its training objects (cells: 60 px)
    min_size = size_floor(min_size_samples, min(base_post["min_size"], PostprocessConfig().min_size))
    method, method_scores = choose_method(result.net, val_samples or samples, dev,
                                          {**base_post, "min_size": int(min_size * factor**2)})
    name = name or f"finetuned-{time.strftime('%Y%m%d-%H%M%S')}"
    out = Path(output) if output else user_models_dir() / name
    card = {
        "name": out.name,
        "description": f"fine-tuned from {base_name} on {len(samples)} annotated plane(s)",
        "task": "instance segmentation",
        "heads": head_names(result.net),
        "input": base_card.get("input", {"channels": 1, "normalization": "percentile 1-99.8"}),
        # scale "auto" is calibrated to the base's training images; this model learnt the user's
        # objects at ``factor``
        "postprocess": {**base_post, "scale": factor, "min_size": min_size,
                        "method": method},
        "method_choice": method_scores,
        "parameters": count_parameters(result.net),
        "training": {
            "base": base_name, "base_choice": base_scores, "sparse": sparse, "n_planes": len(samples), "seed": seed, "scale": factor, "lr": settings.lr,
            "base_zero_shot_ap50": zero_shot, "encoder_frozen": keep,
            "frozen": {"parts": list(settings.frozen), "until": settings.frozen_until} if settings.frozen else None,
            "steps": result.steps, "seconds": round(result.seconds, 1), "stopped_early": result.stopped_early,
            "max_minutes": max_minutes, "epochs": epochs, "device": str(dev),
            "history": result.history[-50:],
        },
        # the record of the kept (best) weights: the trainer keeps the best dice + AP50
        "metrics": {"validation": max((h for h in result.history if "dice" in h),
                                      key=lambda h: h["dice"] + h["ap50"], default={})},
    }
    save_model(result.net, out, card)
    yield Progress(result.steps, result.steps, f"saved {out}", result=out)
