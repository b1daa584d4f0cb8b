"""MobRecon's feature lifting module (seed 001, section 3.2, Fig. 4, Table 2): 2D pose, pose pooling, PVL.

2D representations (`TwoD`, the `lifting` setting of MobRecon), all giving 2D positions in
normalised crop coordinates n = (2u + 1) / S - 1 (the image spans [-1, 1], grid_sample's
align_corners=False convention; pretrain/task2d.py uses the same):

| setting | 2D representation (Fig. 4) | pose pooling | 2D supervision |
| --- | --- | --- | --- |
| mapreg | (d) MapReg: skip-fused S/8 map, each channel flattened, MLP | grid sampling (f) | L1 on positions |
| heatmap | (a) heatmaps at S/4 | joint-wise pooling (e) | Gaussian heatmaps (MSE) |
| heatmap_softargmax | (b) heatmaps + soft-argmax | grid sampling (f) | L1 on positions only |
| regression | (c) global feature -> MLP (256 -> 256 -> 42) | grid sampling (f) | L1 on positions |

The MapReg and heatmap heads are the pretraining heads (pretrain/task2d.py), so a pretrained
head file fits them. Heatmap positions (for evaluation and root recovery) are the refined peaks.

Pose pooling reads the encoder's latent map F^e at S/32 (C^e = 256: the stacked encoders' latent,
whose last 1x1 projection is the release's `mid_proj`; a plain ResNet-50's 2048 go through a 1x1
projection first): grid sampling takes F^e at the 21 positions (equation 2) as the release does
(align_corners=True, clamped); joint-wise pooling multiplies F^e with each heatmap resized to F^e's size and
reduces space by max (Psi of equation 1; 'sum' is the other choice the paper names).

PVL (equation 3): a learnable 49 x 21 lifting matrix M^l maps the (B, 21, C) pose-aligned
features to (B, 49, C) features of the coarsest mesh: 1029 parameters, initialised to 0.01
everywhere as the release does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.task2d import NUM_JOINTS, HeatmapHead, MapRegHead, heatmap_peaks, norm_to_px, px_to_norm

TWO_D = ("mapreg", "heatmap", "heatmap_softargmax", "regression")


def soft_argmax(heatmaps: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """(B, K, 2) normalised positions: the expectation of the pixel centres under softmax(beta * heatmap)."""
    B, K, H, W = heatmaps.shape
    p = torch.softmax(beta * heatmaps.reshape(B, K, -1).float(), dim=-1).reshape(B, K, H, W)
    xs = (2 * torch.arange(W, dtype=p.dtype, device=p.device) + 1) / W - 1
    ys = (2 * torch.arange(H, dtype=p.dtype, device=p.device) + 1) / H - 1
    return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], dim=-1)


class RegressionHead(nn.Module):
    """Fig. 4(c): global average pooling of the latent map, MLP to 21 normalised positions."""

    def __init__(self, channels: int, hidden: int = 256, joints: int = NUM_JOINTS):
        super().__init__()
        self.joints = joints
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2 * joints))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.mlp(latent.mean(dim=(2, 3))).view(-1, self.joints, 2)


class TwoD(nn.Module):
    """The 2D pose of one of the four representations; forward(features) -> dict with 'positions'."""

    def __init__(self, kind: str, map_channels: int, latent_channels: int, input_size: int,
                 hidden=(128, 64), softargmax_beta: float = 1.0):
        super().__init__()
        if kind not in TWO_D:
            raise ValueError(f"unknown 2D representation {kind!r}; choose one of {', '.join(TWO_D)}")
        self.kind, self.input_size, self.beta = kind, int(input_size), float(softargmax_beta)
        if kind == "mapreg":
            self.head = MapRegHead(map_channels, self.input_size // 8, NUM_JOINTS, hidden)
        elif kind == "regression":
            self.head = RegressionHead(latent_channels)
        else:
            self.head = HeatmapHead(map_channels, NUM_JOINTS)

    def forward(self, feats) -> dict:
        if self.kind == "mapreg":
            positions, maps = self.head(feats.maps2d)
            return {"positions": positions, "maps": maps}
        if self.kind == "regression":
            return {"positions": self.head(feats.latent)}
        heatmaps = self.head(feats.maps2d)
        if self.kind == "heatmap_softargmax":
            return {"positions": soft_argmax(heatmaps, self.beta), "heatmaps": heatmaps}
        # argmax is not differentiable: positions are for evaluation and root recovery only
        peaks = heatmap_peaks(heatmaps.detach(), self.input_size)
        return {"positions": px_to_norm(peaks, self.input_size), "heatmaps": heatmaps}

    def pixels(self, out: dict) -> torch.Tensor:
        return norm_to_px(out["positions"].float(), self.input_size)


class PosePooling(nn.Module):
    """Pose-aligned features (B, 21, C) from the latent map: grid sampling or joint-wise pooling.

    Grid sampling follows the release (mobrecon/models/modules.py, Reg2DDecode3D.index): the latent is
    sampled directly (a 1x1 projection only where its width is not `out_channels`, e.g. ResNet-50's
    2048) at the release's coordinates 2 u / S - 1 (= n - 1 / S in ours), clamped to [-1, 1], with
    align_corners=True, so the image's corner pixels read the latent's corner cells.
    """

    def __init__(self, channels: int, mode: str = "grid", reduce: str = "max", out_channels: int = 256,
                 input_size: int | None = None):
        super().__init__()
        if mode not in ("grid", "joint"):
            raise ValueError(f"pose pooling must be 'grid' or 'joint', got {mode!r}")
        if reduce not in ("max", "sum"):
            raise ValueError(f"joint-wise pooling reduces by 'max' or 'sum', got {reduce!r}")
        self.mode, self.reduce = mode, reduce
        self.project = nn.Identity() if int(channels) == int(out_channels) else nn.Conv2d(channels, out_channels, 1)
        self.out_channels = int(out_channels)
        self.offset = 1.0 / float(input_size) if input_size else 0.0

    def forward(self, latent: torch.Tensor, two_d: dict) -> torch.Tensor:
        f = self.project(latent)
        if self.mode == "grid":
            grid = (two_d["positions"].to(f.dtype) - self.offset).clamp(-1.0, 1.0).unsqueeze(2)   # (B, 21, 1, 2)
            return F.grid_sample(f, grid, mode="bilinear", align_corners=True).squeeze(-1).transpose(1, 2)
        hm = F.interpolate(two_d["heatmaps"].to(f.dtype), size=f.shape[-2:], mode="bilinear", align_corners=False)
        weighted = f.unsqueeze(1) * hm.unsqueeze(2)                                    # (B, 21, C, h, w)
        return weighted.amax(dim=(3, 4)) if self.reduce == "max" else weighted.sum(dim=(3, 4))


class PVL(nn.Module):
    """Pose-to-vertex lifting (equation 3): F^{mini_v} = M^l F^p with a learnable (V_mini, N) matrix."""

    def __init__(self, vertices: int = 49, joints: int = NUM_JOINTS, init: float = 0.01):
        super().__init__()
        self.matrix = nn.Parameter(torch.full((vertices, joints), float(init)))

    def forward(self, pose_features: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.matrix.to(pose_features.dtype), pose_features)
