"""The parts of CMR (Chen et al., CVPR 2021) that MobRecon's CMR baseline re-uses, after the authors'
release (github.com/SeanChenxy/HandMesh, `cmr/`): see finetune/models/cmr.py for the model.

    SelfAttention      attention over the channels of the pooled latent vector (network.py, SelfAttention)
    ParallelDeblock    up-sample, then SpiralConv++ over the first S, 2S/3 and S/3 spiral positions
                       (C/2, C/4, C/4 channels, concatenated) plus a 1-position shortcut (C), ReLU
                       (network.py, ParallelDeblock; "ISM in the paper" says its docstring)
    ISMDecoder         49-vertex features -> one mesh per level (778, 389, 195, 98), each level's head
                       averaged with the up-sampled coarser prediction and fed on (cmr_sg.py, CMR_SG.decoder)
    UVMaskHead         the heatmap head of pretrain/task2d.py with one more output channel, the silhouette
                       (cmr_sg.py: `uvm_head` predicts 21 heatmaps + 1 mask from one decoder)
    release_heatmaps   the release's heatmap targets (utils/vis.py, uv2map)
    bce                the release's binary cross-entropy, safe under autocast
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pretrain.task2d import HeatmapHead

RELEASE_KERNEL = 13   # release: utils/vis.py, uv2map: a 13 x 13 Gaussian kernel, sigma (13 + 1) / 4 = 3.5 px


class SelfAttention(nn.Module):
    """out = gamma * A v + x on a (B, C) vector, A = softmax_j(q_i k_j): each channel attends over the channels.

    release: cmr/models/network.py, SelfAttention (query/key/value Linear C -> C, Xavier weights, zero
    biases, gamma a learnable scalar starting at 0, so the block starts as the identity)."""

    def __init__(self, channels: int):
        super().__init__()
        self.query = nn.Linear(channels, channels)
        self.key = nn.Linear(channels, channels)
        self.value = nn.Linear(channels, channels)
        for layer in (self.query, self.key, self.value):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.query(x).unsqueeze(2)                       # (B, C, 1)
        k = self.key(x).unsqueeze(1)                         # (B, 1, C)
        attention = torch.softmax(torch.bmm(q, k), dim=-1)   # (B, C, C): row i over channels j
        v = self.value(x).unsqueeze(1)                       # (B, 1, C)
        out = torch.bmm(v, attention.transpose(1, 2)).squeeze(1)
        return self.gamma * out + x


class ParallelDeblock(nn.Module):
    """CMR's multi-scale spiral block on up-sampled features (B, N, C_in) -> (B, N, C_out).

    release: cmr/models/network.py, ParallelDeblock: SpiralConv++ over spirals truncated to S, 2S/3, S/3
    positions with C_out/2, C_out/4, C_out/4 outputs (concatenated in that order), plus a SpiralConv++
    over the vertex alone (S = 1, C_out outputs) as the shortcut; ReLU of the sum."""

    def __init__(self, in_channels: int, out_channels: int, indices):
        super().__init__()
        from finetune.mesh.ops import SpiralConv

        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        s = int(idx.shape[1])
        if s < 3:
            raise ValueError(f"ParallelDeblock needs spirals of at least 3 vertices (it uses S/3 of them), got S = {s}")
        if out_channels % 4:
            raise ValueError(f"ParallelDeblock splits its {out_channels} outputs into halves and quarters: "
                             f"the width must be a multiple of 4")
        self.conv = SpiralConv(in_channels, out_channels // 2, idx)
        self.conv_2d3 = SpiralConv(in_channels, out_channels // 4, idx[:, :s // 3 * 2])
        self.conv_d3 = SpiralConv(in_channels, out_channels // 4, idx[:, :s // 3])
        self.shortcut = SpiralConv(in_channels, out_channels, idx[:, :1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.cat([self.conv(x), self.conv_2d3(x), self.conv_d3(x)], dim=-1)
        return torch.relu(self.shortcut(x) + f)


class ISMDecoder(nn.Module):
    """Coarsest-mesh features (B, V_mini, D_top) -> [level 0 (B, 778, 3), level 1, ..., level L-1] in decoder units.

    release: cmr/models/cmr_sg.py, CMR_SG.decoder. For each level from coarse to fine: up-sample,
    ParallelDeblock (D_top -> D_top at the first level, D_{l+1} + 3 -> D_l after), a SpiralConv++ head to
    xyz; below the coarsest level the head's output is averaged with the up-sampled prediction of the
    level above; the features go on concatenated with the level's prediction (+3 channels)."""

    def __init__(self, hierarchy, channels, spiral_length: int = 27, spiral_dilation: int = 1):
        super().__init__()
        from finetune.mesh.ops import Resample, SpiralConv

        from .decoder3d import level_spirals

        levels = len(hierarchy.up)
        spirals = level_spirals(hierarchy, channels, spiral_length, spiral_dilation)
        self.upsample = nn.ModuleList()
        self.blocks = nn.ModuleList()
        self.heads = nn.ModuleList()
        width = int(channels[-1])
        for i, level in enumerate(reversed(range(levels))):         # coarse to fine: levels-1 .. 0
            self.upsample.append(Resample(hierarchy.up[level]))
            self.blocks.append(ParallelDeblock(width + (3 if i else 0), int(channels[level]), spirals[level]))
            self.heads.append(SpiralConv(int(channels[level]), 3, spirals[level]))
            width = int(channels[level])
        self.num_coarse = int(hierarchy.sizes[-1])
        self.in_channels = int(channels[-1])

    def forward(self, x: torch.Tensor) -> list:
        preds = []
        for i, (up, block, head) in enumerate(zip(self.upsample, self.blocks, self.heads)):
            x = block(up(x))
            pred = head(x)
            if i:
                pred = (pred + up(preds[-1])) / 2
            preds.append(pred)
            if i < len(self.blocks) - 1:
                x = torch.cat([x, pred], dim=-1)
        return preds[::-1]


class UVMaskHead(HeatmapHead):
    """HeatmapHead (maps2d -> S/4) with a second 1x1 output: (heatmap logits (B, 21, h, w), mask logits
    (B, h, w) or None). release: cmr/models/cmr_sg.py, `uvm_head` (21 heatmaps + 1 silhouette channel)."""

    def __init__(self, in_channels: int, joints: int = 21, mid: int = 64, mask: bool = True):
        super().__init__(in_channels, joints, mid)
        self.mask_out = nn.Conv2d(mid, 1, 1) if mask else None

    def forward(self, maps: torch.Tensor) -> tuple:
        x = F.interpolate(self.block1(maps), scale_factor=2, mode="bilinear", align_corners=False)
        x = self.block2(x)
        return self.out(x), (self.mask_out(x)[:, 0] if self.mask_out is not None else None)


def release_heatmaps(uv: torch.Tensor, size: int, heatmap_size: int, kernel: int = RELEASE_KERNEL) -> torch.Tensor:
    """(B, K, H, H) heatmap targets at input-pixel keypoints uv (B, K, 2), after the release's uv2map.

    release: utils/vis.py, uv2map: a kernel x kernel window (13: +-6 px) of a Gaussian with sigma
    (kernel + 1) / 4 (3.5 px) in input pixels, peak 1, zero outside the window. The release draws it at
    input resolution (integer keypoints) and resizes the map to S/2; here it is evaluated at the
    heatmap's pixel centres, mapped to input pixels (pixel-centre convention), at the keypoints as they are."""
    radius = (int(kernel) - 1) // 2
    sigma = (2 * radius + 2) / 4.0
    centres = (torch.arange(heatmap_size, dtype=uv.dtype, device=uv.device) + 0.5) * (size / heatmap_size) - 0.5
    dx = centres.view(1, 1, -1) - uv[..., 0:1]                     # (B, K, W)
    dy = centres.view(1, 1, -1) - uv[..., 1:2]                     # (B, K, H)
    gx = torch.exp(-dx ** 2 / (2 * sigma ** 2)) * (dx.abs() <= radius)
    gy = torch.exp(-dy ** 2 / (2 * sigma ** 2)) * (dy.abs() <= radius)
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)


def bce(target: torch.Tensor, logits: torch.Tensor | None = None, prob: torch.Tensor | None = None) -> torch.Tensor:
    """Element-wise binary cross-entropy, float32, of sigmoid(logits) or of probabilities.

    release: cmr/models/loss.py, bce_loss (F.binary_cross_entropy of sigmoid outputs). From logits it is
    F.binary_cross_entropy_with_logits (the same function, without the sigmoid's saturation); from
    probabilities F.binary_cross_entropy itself (logs clamped at -100), run with autocast off because that
    function refuses mixed precision."""
    t = target.float()
    if logits is not None:
        return F.binary_cross_entropy_with_logits(logits.float(), t, reduction="none")
    with torch.autocast(device_type=prob.device.type, enabled=False):
        return F.binary_cross_entropy(prob.float(), t, reduction="none")
