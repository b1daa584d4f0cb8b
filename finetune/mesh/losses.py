"""Mesh losses of MobRecon eq. 9 (after CMR): vertex L1, normal and edge length, on any topology.

Normal and edge losses follow CMR / MobRecon's code: per face the three
edges (1-0, 2-0, 2-1). The normal loss is |unit predicted edge . unit GT
face normal|; the edge loss is |predicted edge length - GT edge length|. Both
are averaged over batch, faces and edges.

`valid` (B,) weights samples (0 for a sample without mesh annotation). The
result is the weighted mean, i.e. normalised by the valid samples, not by B
(CMR multiplied by the mask and still divided by B, which makes the loss
shrink with the share of unannotated samples in a batch); with all-ones
weights it is the plain mean. All-zero weights give 0 (with a gradient graph).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def _faces(faces, device) -> torch.Tensor:
    if isinstance(faces, torch.Tensor):
        return faces.to(device=device, dtype=torch.long)
    return torch.as_tensor(np.asarray(faces), dtype=torch.long, device=device)


def _check(pred: torch.Tensor, gt: torch.Tensor) -> None:
    if pred.shape != gt.shape or pred.dim() != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred and gt must both be (B, V, 3), got {tuple(pred.shape)} and {tuple(gt.shape)}")


def _mean(loss: torch.Tensor, valid) -> torch.Tensor:
    """Mean of loss (B, ...), optionally weighted per sample."""
    if valid is None:
        return loss.mean()
    w = torch.as_tensor(valid, device=loss.device).to(loss.dtype).reshape(-1)
    if w.numel() != loss.shape[0]:
        raise ValueError(f"valid must have one weight per sample ({loss.shape[0]}), got {w.numel()}")
    per_sample = loss.reshape(loss.shape[0], -1).mean(1)
    return (per_sample * w).sum() / w.sum().clamp_min(torch.finfo(loss.dtype).tiny)


def vertex_l1(pred: torch.Tensor, gt: torch.Tensor, valid=None) -> torch.Tensor:
    """Mean absolute coordinate error."""
    _check(pred, gt)
    return _mean((pred - gt).abs(), valid)


def _edges(v: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """(B, F, 3 edges, 3): v1 - v0, v2 - v0, v2 - v1, the edges CMR uses."""
    a, b, c = v[:, f[:, 0]], v[:, f[:, 1]], v[:, f[:, 2]]
    return torch.stack([b - a, c - a, c - b], dim=2)


def normal_loss(pred: torch.Tensor, gt: torch.Tensor, faces, valid=None) -> torch.Tensor:
    _check(pred, gt)
    f = _faces(faces, pred.device)
    e_pred = F.normalize(_edges(pred, f), dim=-1)
    e_gt = _edges(gt, f)
    n_gt = F.normalize(torch.cross(e_gt[:, :, 0], e_gt[:, :, 1], dim=-1), dim=-1)
    return _mean((e_pred * n_gt.unsqueeze(2)).sum(-1).abs(), valid)


def edge_length_loss(pred: torch.Tensor, gt: torch.Tensor, faces, valid=None) -> torch.Tensor:
    _check(pred, gt)
    f = _faces(faces, pred.device)
    return _mean((_edges(pred, f).norm(dim=-1) - _edges(gt, f).norm(dim=-1)).abs(), valid)
