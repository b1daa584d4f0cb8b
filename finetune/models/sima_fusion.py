"""SiMA-Hand's building blocks (seed 003, section 3, Fig. 3): 6D rotations, the palm frame, the three
multi-view fusions of MVR-Hand (equations 1-3) and the orientation feature enhancement (equation 5).

Tensors of several views are (B, N, ...) with N the view dimension.

- `rotation_6d_to_matrix` / `matrix_to_rotation_6d`: Zhou et al. (CVPR 2019): the 6D vector is the first
  two *columns* of the matrix; back by Gram-Schmidt (b1 = a1/|a1|, b2 = the normalised part of a2
  orthogonal to b1, b3 = b1 x b2), so every 6D vector maps to a proper rotation.
- `palm_frame`: the canonical frame of the shape branch, computed from the 21 keypoints (see sima.py).
- `ImageFusion` (eq. 1): f_i^M = g_i(Cat[f_i^1..f_i^N]). Concatenation is ordered, so the module is NOT
  invariant to a permutation of the views; the orientation is view-dependent, so MVR fuses once per
  target view k with the views rolled so that view k comes first (the paper's "target view"). It takes
  any token dimensions between the views and the channels, so it is also Table 5's "JFF cat." (row iii).
- `JointFusion` (eq. 2): f_j^M = g_j(Cat[Max, Avg, Std over views]), invariant to view permutations
  (population std: a single view gives 0).
- `VertexFusion` (eq. 3): per coarse vertex, self-attention across the N views
  W = Softmax(F F^T / sqrt(d_v)) F (softmax over the view dimension). Reading of W_i as a "weighted
  score": we turn W into per-view, per-channel weights by a softmax over the views and return
  sum_i softmax_i(W)_i * F_i (mode 'attention', default: a convex combination of the views' features,
  so one view passes through unchanged and the fused feature lives in the single-view feature space
  that L_SE compares with). mode 'literal' is sum_i W_i * F_i as printed (element-wise; one view gives
  F * F). Both are invariant to view permutations; 'mean' / 'max' are Table 5's pooling ablation
  (row v), 'concat' its concatenation ablation (row iv: an MLP on the N views' features of a vertex
  concatenated in view order, so not permutation invariant).
- `OrientationEnhancement` (eq. 5): parameter-free scaled dot-product self-attention on the joint tokens
  h_j and on the orientation tokens h_o, then cross-attention with h_j as the query and h_o as key and
  value: f^_o = Softmax(h_j h_o^T / sqrt(d_o)) h_o, one token per joint (21 x d_o). The equations have no
  learned projections and we add none.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) rotation whose first two columns span the two 3-vectors (Gram-Schmidt)."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1, eps=1e-8)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1, eps=1e-8)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rotation_6d(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


# FreiHAND order: 0 wrist, 5 index MCP, 9 middle MCP, 17 little MCP (children of the MANO root: rigid
# with the wrist whatever the finger pose)
WRIST, INDEX_MCP, MIDDLE_MCP, LITTLE_MCP = 0, 5, 9, 17


def palm_frame(keypoints: torch.Tensor) -> torch.Tensor:
    """(B, 21, 3) keypoints -> (B, 3, 3) rotation canonical -> camera (columns: the palm axes in the camera
    frame): x from the wrist to the middle MCP, y the part of (index MCP - little MCP) orthogonal to x,
    z = x cross y. Canonical coordinates of a root-relative point p are R^T p."""
    k = keypoints.to(torch.float64) if keypoints.dtype == torch.float64 else keypoints.float()
    a1 = k[:, MIDDLE_MCP] - k[:, WRIST]
    a2 = k[:, INDEX_MCP] - k[:, LITTLE_MCP]
    return rotation_6d_to_matrix(torch.cat([a1, a2], dim=-1))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax(q k^T / sqrt(d)) v over the last two dimensions (no projections)."""
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def mlp(c_in: int, c_hidden: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c_in, c_hidden), nn.ReLU(inplace=True), nn.Linear(c_hidden, c_out))


class ImageFusion(nn.Module):
    """Eq. 1 for every target view: (B, N, ..., C) -> (B, N, ..., C_out), output k = g_i(Cat[f_k, f_k+1, ...,
    f_k-1]) token by token."""

    def __init__(self, channels: int, num_views: int, out_channels: int | None = None, hidden: int | None = None):
        super().__init__()
        self.num_views = int(num_views)
        self.g = mlp(channels * self.num_views, hidden or channels, out_channels or channels)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        N = f.shape[1]
        if N != self.num_views:
            raise ValueError(f"image-level fusion was built for {self.num_views} views, got {N}")
        rolled = torch.stack([torch.roll(f, shifts=-k, dims=1) for k in range(N)], dim=1)   # (B, N, N, ..., C)
        return self.g(rolled.movedim(2, -2).flatten(-2))


class JointFusion(nn.Module):
    """Eq. 2: (B, N, J, C) -> (B, J, C_out) from the max / mean / std over views (permutation invariant)."""

    def __init__(self, channels: int, out_channels: int | None = None):
        super().__init__()
        self.g = mlp(3 * channels, channels, out_channels or channels)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        mean = f.mean(dim=1)
        std = (f - mean.unsqueeze(1)).pow(2).mean(dim=1).add(1e-12).sqrt()
        return self.g(torch.cat([f.amax(dim=1), mean, std], dim=-1))


class VertexFusion(nn.Module):
    """Eq. 3: (B, N, V, C) -> (B, V, C), attention across views per vertex (see the module doc)."""

    MODES = ("attention", "literal", "mean", "max", "concat")

    def __init__(self, mode: str = "attention", channels: int | None = None, num_views: int | None = None):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"vertex fusion must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        if mode == "concat":
            if not channels or not num_views:
                raise ValueError("vertex fusion 'concat' needs the channels and the number of views")
            self.num_views = int(num_views)
            self.g = mlp(int(channels) * self.num_views, int(channels), int(channels))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        if self.mode == "concat":
            if f.shape[1] != self.num_views:
                raise ValueError(f"vertex fusion 'concat' was built for {self.num_views} views, got {f.shape[1]}")
            return self.g(f.movedim(1, -2).flatten(-2))                  # (B, V, N*C) -> (B, V, C)
        if self.mode == "mean":
            return f.mean(dim=1)
        if self.mode == "max":
            return f.amax(dim=1)
        per_vertex = f.transpose(1, 2)                                   # (B, V, N, C)
        W = attention(per_vertex, per_vertex, per_vertex)                # softmax over the views
        if self.mode == "literal":
            return (W * per_vertex).sum(dim=2)
        return (torch.softmax(W, dim=2) * per_vertex).sum(dim=2)


class OrientationEnhancement(nn.Module):
    """Eq. 5: joint tokens (B, J, d) and orientation tokens (B, T, d) -> enhanced (B, J, d)."""

    def forward(self, f_j: torch.Tensor, f_o: torch.Tensor) -> torch.Tensor:
        h_j = attention(f_j, f_j, f_j)
        h_o = attention(f_o, f_o, f_o)
        return attention(h_j, h_o, h_o)
