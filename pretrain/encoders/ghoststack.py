"""GhostStack: MobRecon's stacked encoder built from GhostNet blocks.

The paper (MobRecon, section 3.1) gives GhostStack one sentence: the stacked structure of
Fig. 3 with "the ghost operation [GhostNet] ... where cheap operations can produce ghost
features based on primary features", 5.0M parameters and 96.2M Mult-Adds at 128x128
(Table 1), and, by difference of Table 4's totals, a 2D (MapReg) part of about 0.2M / 7.8M.
The authors never released it. This is our design, fixed from those constraints:

* Same macro structure as DenseStack (`densestack.py`): stem at S/2, reorg (space-to-depth)
  to S/4, a 1x1 shrink, stack 1 (a full hourglass whose output is bilinearly upsampled to S/4),
  fusion (1x1 remap of stack 1's output, concatenation with the shrunk stem, 1x1), stack 2's
  encoder half with extra bottleneck blocks at S/32, a 1x1 latent projection to C^e = 256, and
  stack 2's decoder half as `map_decoder` (the S/8 map of MapReg). Skip fusion by addition
  after nearest-neighbour upsampling, as in DenseStack.
* The block alternative is GhostNet's: every ordinary convolution of a block becomes a ghost
  module (primary 1x1 to half the channels, a depth-wise 3x3 "cheap operation" makes the other
  half), and the dense blocks become GhostNet bottlenecks (ghost module expand, depth-wise
  stride-2 convolution when downsampling, SE with a hard-sigmoid gate, linear ghost module
  project, residual). Downsampling happens inside the stride-2 bottlenecks (GhostNet's way)
  instead of DenseStack's average pooling.
* Widths, expansions, kernel sizes and SE placement are GhostNet 1.0x's own (Han et al. 2020,
  Table 1): stem conv 3x3/2 to 16 plus the first bottleneck (16, exp 16) at S/2; an hourglass
  input of 24 channels at S/4 (GhostNet's S/4 width); encoder stages
    S/8   (k5, SE): exp 72 -> 40 (stride 2), exp 120 -> 40                      = d1 (40)
    S/16  (k3): exp 240 -> 80 (stride 2), 200, 184, 184 -> 80, (SE) 480, 672 -> 112 = d2 (112)
    S/32  (k5, SE): exp 672 -> 160 (stride 2)                                   = d3 (160)
  and, in stack 2 only (DenseStack's bottleneck blocks), the rest of GhostNet's last stage:
    S/32  (k5): exp 960 -> 160 x 4, SE on the second and fourth.
  Stack 1 stops after the stride-2 block at S/32, as DenseStack's stack 1 has no bottleneck.
* Decoder step (DenseStack's "DW unit, DW unit (two 3x3), SE" with ghost modules): ghost
  module c_in -> c_out, depth-wise 3x3 + BN, linear ghost module c_out -> c_out, SE, then
  nearest x2 and the skip added: 160 -> 112 (+ d2, S/16), 112 -> 40 (+ d1, S/8), 40 -> 24
  (the S/8 output; stack 1 upsamples it to S/4).
* Fusion: ghost modules for the 1x1 remap (24 -> 24) and fuse ((24 + 24) -> 24); the stem's
  shrink after reorg is a ghost module 64 -> 24; the latent projection is a plain 1x1
  convolution 160 -> 256 (as DenseStack's, no BN/ReLU).

Counted like Table 1 (everything except `map_decoder`, see `pretrain.complexity`), this is
5.21M parameters and 91.3M Mult-Adds at 128x128 (paper 5.0M / 96.2M: +4 % and -5 %); the
map decoder is 0.13M / 4.4M (paper, by difference, about 0.2M / 7.8M). Nothing was tuned to
hit the figures beyond taking GhostNet's published widths.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Encoder, EncoderFeatures, normalise
from .layers import GhostBottleneck, GhostModule, Reorg, SqueezeExcite, conv_bn_act, make_divisible, upsample2

# (kernel, expansion, out, SE, stride) per GhostNet 1.0x bottleneck
STAGE_S8 = [(5, 72, 40, True, 2), (5, 120, 40, True, 1)]
STAGE_S16 = [(3, 240, 80, False, 2), (3, 200, 80, False, 1), (3, 184, 80, False, 1), (3, 184, 80, False, 1),
             (3, 480, 112, True, 1), (3, 672, 112, True, 1)]
STAGE_S32 = [(5, 672, 160, True, 2)]
BOTTLENECK_S32 = [(5, 960, 160, False, 1), (5, 960, 160, True, 1), (5, 960, 160, False, 1), (5, 960, 160, True, 1)]


def ghost_stage(c_in: int, spec) -> tuple[nn.Sequential, int]:
    blocks = []
    for k, exp, out, se, stride in spec:
        blocks.append(GhostBottleneck(c_in, exp, out, kernel=k, stride=stride, se=se))
        c_in = out
    return nn.Sequential(*blocks), c_in


class GhostUpStep(nn.Sequential):
    """Ghost module c_in -> c_out (ReLU), depth-wise 3x3 + BN, linear ghost module, SE."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(GhostModule(c_in, c_out), conv_bn_act(c_out, c_out, 3, groups=c_out, act=None),
                         GhostModule(c_out, c_out, act=None),
                         SqueezeExcite(c_out, make_divisible(c_out / 4), gate="hardsigmoid"))


class GhostDown(nn.Module):
    def __init__(self, c_in: int, bottleneck: bool):
        super().__init__()
        self.stage8, c = ghost_stage(c_in, STAGE_S8)
        self.stage16, c = ghost_stage(c, STAGE_S16)
        self.stage32, c = ghost_stage(c, STAGE_S32 + (BOTTLENECK_S32 if bottleneck else []))
        self.widths = (STAGE_S8[-1][2], STAGE_S16[-1][2], c)

    def forward(self, x):
        d1 = self.stage8(x)
        d2 = self.stage16(d1)
        return d1, d2, self.stage32(d2)


class GhostUp(nn.Module):
    def __init__(self, widths, out: int):
        super().__init__()
        w8, w16, w32 = widths
        self.up1 = GhostUpStep(w32, w16)
        self.up2 = GhostUpStep(w16, w8)
        self.up3 = GhostUpStep(w8, out)

    def forward(self, d1, d2, d3):
        u = upsample2(self.up1(d3)) + d2
        u = upsample2(self.up2(u)) + d1
        return self.up3(u)


class GhostStack(Encoder):
    table1_exclude = ("map_decoder",)

    def __init__(self, input_size: int = 128, stem_channels: int = 16, width: int = 24, map_channels: int = 24,
                 latent_channels: int = 256):
        super().__init__(input_size)
        self.latent_channels = latent_channels
        self.map_channels = map_channels
        self.stem = nn.Sequential(conv_bn_act(3, stem_channels, 3, 2),
                                  GhostBottleneck(stem_channels, stem_channels, stem_channels))
        self.reorg = Reorg()
        self.shrink = GhostModule(4 * stem_channels, width)
        self.stack1_down = GhostDown(width, bottleneck=False)
        self.stack1_up = GhostUp(self.stack1_down.widths, map_channels)
        self.remap = GhostModule(map_channels, map_channels)
        self.fuse = GhostModule(map_channels + width, width)
        self.stack2_down = GhostDown(width, bottleneck=True)
        w8, w16, w32 = self.stack2_down.widths
        self.latent = nn.Conv2d(w32, latent_channels, 1, bias=False)
        self.map_decoder = GhostUp(self.stack2_down.widths, map_channels)
        self.skip_channels = (stem_channels, width, w8, w16, w32)

    def forward(self, images: torch.Tensor) -> EncoderFeatures:
        s2 = self.stem(normalise(images))
        f0 = self.shrink(self.reorg(s2))
        out1 = upsample2(self.stack1_up(*self.stack1_down(f0)), "bilinear")
        f1 = self.fuse(torch.cat([self.remap(out1), f0], dim=1))
        d1, d2, d3 = self.stack2_down(f1)
        return EncoderFeatures(latent=self.latent(d3), maps2d=self.map_decoder(d1, d2, d3),
                               skips=[s2, f1, d1, d2, d3])
