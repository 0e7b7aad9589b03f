"""Self-supervised losses: InfoNCE (NT-Xent), BYOL's cosine loss, restoration MSE."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """NT-Xent (SimCLR) loss of two batches of projections, shape (N, D) each.

    Row i of ``z1`` and row i of ``z2`` are two views of one sample (the positive pair);
    the other 2N - 2 projections in the batch are its negatives. Projections are
    L2-normalised; the loss is symmetric (averaged over all 2N anchors)::

        l(i) = -log( exp(s(i, pos(i)) / t) / sum_{k != i} exp(s(i, k) / t) )

    with s the cosine similarity and t the temperature.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"info_nce needs two (N, D) batches of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    n = z1.shape[0]
    if n < 2:
        raise ValueError("info_nce needs at least 2 samples per batch (the negatives come from the batch)")
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL regression loss ``2 - 2 cos(p, z)``, averaged over the batch; ``z`` (the target
    network's projection) gets no gradient."""
    p = F.normalize(p.float(), dim=1)
    z = F.normalize(z.detach().float(), dim=1)
    return (2 - 2 * (p * z).sum(dim=1)).mean()


def restore_loss(pred: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the restoration and the clean image."""
    return F.mse_loss(pred.float(), clean.float())
