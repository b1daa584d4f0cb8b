"""The 3D mesh decoders of MobRecon (DSConv, seed 001 section 3.3) and CMR (SpiralConv++).

`MeshDecoder` takes features of the coarsest mesh (B, 49, C) and returns (B, 778, 3):

    for level 3, 2, 1, 0 (98, 195, 389, 778 vertices):
        up-sample x2 (barycentric matrix of the hierarchy) -> graph conv (spirals of that level) -> ReLU
    graph conv to xyz at level 0

with widths D = (32, 64, 128, 256) for levels 0..3 (the paper's S = 9, D = {256, 128, 64, 32}),
so the convolutions are 256->256 at 98 vertices, 256->128 at 195, 128->64 at 389, 64->32 at 778,
then 32->3. `conv='dsconv'` uses DSConv (MobRecon; 0.1M parameters, 19.5M Mult-Adds in Table 4),
`conv='spiral'` SpiralConv++ (CMR's decoder and MobRecon's Table 4 alternative; 1.0M / 159.0M).
The sparse up-sampling is not a Mult-Add (as in the paper's counts).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

DECODER_CHANNELS = (32, 64, 128, 256)
CONVS = ("dsconv", "spiral")


def graph_conv(kind: str, c_in: int, c_out: int, indices):
    from finetune.mesh.ops import DSConv, SpiralConv

    if kind not in CONVS:
        raise ValueError(f"unknown graph convolution {kind!r}; choose one of {', '.join(CONVS)}")
    return (DSConv if kind == "dsconv" else SpiralConv)(c_in, c_out, indices)


def level_spirals(hierarchy, channels, spiral_length: int, spiral_dilation: int = 1) -> list:
    """The spiral indices (LongTensor) of every level of `hierarchy`, after checking one width per level."""
    from finetune.mesh.spiral import spirals_for

    levels = len(hierarchy.up)
    if len(channels) != levels:
        raise ValueError(f"{len(channels)} decoder widths for a hierarchy of {levels} up-sampling steps")
    return [torch.as_tensor(np.asarray(s), dtype=torch.long)
            for s in spirals_for(hierarchy, length=spiral_length, dilation=spiral_dilation)]


class MeshDecoder(nn.Module):
    """Coarsest-mesh features (B, V_mini, C) -> vertices (B, V, 3), through the hierarchy's up-sampling."""

    def __init__(self, hierarchy, in_channels: int = 256, channels=DECODER_CHANNELS, conv: str = "dsconv",
                 spiral_length: int = 9, spiral_dilation: int = 1):
        super().__init__()
        from finetune.mesh.ops import Resample

        levels = len(hierarchy.up)
        spirals = level_spirals(hierarchy, channels, spiral_length, spiral_dilation)
        self.upsample = nn.ModuleList()
        self.convs = nn.ModuleList()
        width = int(in_channels)
        for level in reversed(range(levels)):          # coarse to fine: levels-1 .. 0
            self.upsample.append(Resample(hierarchy.up[level]))
            self.convs.append(graph_conv(conv, width, int(channels[level]), spirals[level]))
            width = int(channels[level])
        self.head = graph_conv(conv, width, 3, spirals[0])
        self.num_coarse = int(hierarchy.sizes[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for up, conv in zip(self.upsample, self.convs):
            x = torch.relu(conv(up(x)))
        return self.head(x)
