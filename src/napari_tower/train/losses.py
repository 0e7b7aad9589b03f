"""Segmentation loss over (foreground, boundary, centerness), restricted to annotated pixels."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def seg_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    n_valid = valid.sum().clamp(min=1.0)

    def bce(i, pos_weight=None):
        l = F.binary_cross_entropy_with_logits(logits[:, i : i + 1], target[:, i : i + 1], reduction="none", pos_weight=pos_weight)
        return (l * valid).sum() / n_valid

    p = torch.sigmoid(logits[:, :1]) * valid
    t = target[:, :1] * valid
    soft_dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
    # boundary pixels are rare; weigh them up so the thin class is learnt
    bd = bce(1, pos_weight=torch.tensor(3.0, device=logits.device))
    return bce(0) + soft_dice + 0.5 * bd + 2.0 * bce(2)
