"""Supervised training loop shared by the default model's training and few-shot fine-tuning.

A generator: it yields ``Progress`` (loss every few steps, validation scores when run) and
finishes with ``Progress(result=TrainResult)``. Stopping early (``should_stop`` returning
True, or the time budget) still returns the best weights seen.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch

from ..metrics import average_precision, dice
from ..model.network import TowerNet
from ..predict.postprocess import instances_from_maps
from ..predict.tiling import autocast_for, predict_maps
from ..progress import Progress
from .augment import BatchSampler
from .data import Sample
from .losses import seg_loss


@dataclass
class TrainSettings:
    max_steps: int = 2000
    max_minutes: float | None = None
    batch_size: int = 8
    crop: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_every: int = 250
    log_every: int = 10
    seed: int = 0
    scale_range: tuple[float, float] = (0.6, 1.6)
    group_weights: dict[str, float] | None = None
    precision: str = "auto"
    # keep batch-norm statistics of the base model: a handful of images estimates them badly
    freeze_bn: bool = False
    # parts of the network (TowerNet attributes: "encoder", "decoder", "fullres", "refine") whose
    # weights and statistics stay as they are for the first ``frozen_until`` of the run (a
    # fraction of the steps or of the time budget; 1.0 = throughout)
    frozen: tuple[str, ...] = ()
    frozen_until: float = 1.0


@dataclass
class TrainResult:
    net: TowerNet
    steps: int
    seconds: float
    best_score: float | None
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False


def evaluate(net: TowerNet, samples: list[Sample], device: torch.device, precision: str = "auto") -> dict[str, float]:
    """Mean foreground Dice and AP@0.5 over samples with instance labels, per group too."""
    net.eval()
    scores: dict[str, list[tuple[float, float]]] = {}
    for s in samples:
        maps = predict_maps(net, s.image, device, precision=precision, divisor=net.cfg.divisor)
        pred = instances_from_maps(maps[0], maps[2])
        true = s.labels
        if s.valid is not None:  # sparse: score only annotated objects' region
            pred = np.where(s.valid, pred, 0)
        scores.setdefault(s.group or "all", []).append((dice(pred, true), average_precision(pred, true)))
    out = {}
    allv = [v for vs in scores.values() for v in vs]
    out["dice"] = float(np.mean([d for d, _ in allv]))
    out["ap50"] = float(np.mean([a for _, a in allv]))
    if len(scores) > 1:
        for g, vs in scores.items():
            out[f"dice_{g}"] = float(np.mean([d for d, _ in vs]))
            out[f"ap50_{g}"] = float(np.mean([a for _, a in vs]))
    return out


def train(
    net: TowerNet,
    train_samples: list[Sample],
    val_samples: list[Sample] | None,
    settings: TrainSettings,
    device: torch.device,
    should_stop: Callable[[], bool] | None = None,
    preview_fn: Callable[[TowerNet], object] | None = None,
    preview_every: float = 5.0,
    on_best: Callable[[TowerNet, dict], None] | None = None,
) -> Iterator[Progress]:
    torch.manual_seed(settings.seed)
    np.random.seed(settings.seed)
    sampler = BatchSampler(
        train_samples, settings.crop, settings.scale_range, settings.group_weights, settings.seed,
        min_valid_fraction=0.05 if any(s.valid is not None for s in train_samples) else 0.0,
    )
    net.to(device).to(memory_format=torch.channels_last)
    frozen_modules = [getattr(net, name) for name in settings.frozen if getattr(net, name, None) is not None]

    def set_frozen(on: bool):
        for module in frozen_modules:  # AdamW skips parameters without gradients
            for p in module.parameters():
                p.requires_grad_(not on)

    set_frozen(True)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    total = settings.max_steps
    t0 = time.monotonic()
    budget = settings.max_minutes * 60 if settings.max_minutes else None
    deadline = t0 + budget if budget else None
    warmup = min(0.3, max(0.05, 3 / total))

    def progress(step) -> float:
        frac = step / total
        return max(frac, (time.monotonic() - t0) / budget) if budget else frac

    def set_lr(step):
        # warm-up, then cosine decay over whichever runs out first: steps or time budget
        frac = progress(step)
        f = frac / warmup if frac < warmup else 0.5 * (1 + np.cos(np.pi * min(1.0, (frac - warmup) / (1 - warmup))))
        for g in opt.param_groups:
            g["lr"] = settings.lr * max(f, 0.02)
    best_score, best_state, history = None, None, []
    losses: list[float] = []
    stopped = False
    step = 0
    last_preview = t0

    def validate():
        nonlocal best_score, best_state
        if not val_samples:
            return {}
        m = evaluate(net, val_samples, device, settings.precision)
        score = m["ap50"] + m["dice"]
        if best_score is None or score > best_score:
            best_score, best_state = score, copy.deepcopy(net.state_dict())
            if on_best is not None:  # e.g. write a checkpoint so a long run that dies is not lost
                on_best(net, m)
        return m

    for step in range(1, total + 1):
        set_lr(step - 1)
        net.train()
        if frozen_modules:
            frozen_now = progress(step - 1) < settings.frozen_until
            set_frozen(frozen_now)
            if frozen_now:
                for module in frozen_modules:
                    module.eval()
        if settings.freeze_bn:
            for m in net.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
        x, y, v = sampler.batch(settings.batch_size)
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        y, v = y.to(device), v.to(device)
        with autocast_for(device, settings.precision):
            logits = net(x)
        loss = seg_loss(logits, y, v)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        out_of_time = deadline is not None and time.monotonic() > deadline
        stopped = out_of_time or (should_stop is not None and should_stop())
        due_val = step % settings.val_every == 0 or step == total or stopped
        if step % settings.log_every == 0 or due_val:
            rec = {"step": step, "loss": float(np.mean(losses[-settings.log_every :])), "seconds": time.monotonic() - t0}
            metrics = {}
            if due_val:
                metrics = validate()
                rec.update(metrics)
            history.append(rec)
            preview = None
            if preview_fn is not None and time.monotonic() - last_preview > preview_every:
                net.eval()
                preview = preview_fn(net)
                last_preview = time.monotonic()
            yield Progress(step, total, f"step {step}/{total}", loss=rec["loss"], metrics=metrics, preview=preview)
        if stopped:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    set_frozen(False)
    net.eval()
    result = TrainResult(net, step, time.monotonic() - t0, best_score, history, stopped)
    yield Progress(step, total, "done", result=result)
