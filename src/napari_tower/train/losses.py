"""Segmentation loss over (foreground, boundary, centerness[, flows]), restricted to annotated pixels."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model.network import FLOW_SCALE


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
    loss = bce(0) + soft_dice + 0.5 * bd + 2.0 * bce(2)
    if logits.shape[1] >= 5:  # flows, regressed at FLOW_SCALE times unit length (cellpose's scale)
        err = (logits[:, 3:5] - FLOW_SCALE * target[:, 3:5]) ** 2
        loss = loss + 0.5 * (err * valid).sum() / (2 * n_valid)
    return loss
