"""DenseStack (MobRecon, Chen et al. CVPR 2022, section 3.1, Fig. 3).

Layout (S = input size, c = `width` = 128, shapes at S = 128 in brackets):

    image (3, S)
      stem     conv3x3/2 3->c/2, depth-wise separable unit c/2->c      (c, S/2)    [128, 64]
      reorg    space-to-depth x2                                        (4c, S/4)   [512, 32]
      shrink   1x1 4c->c                                                (c, S/4)    = f0
      stack 1  hourglass (below), output bilinearly upsampled           (24, S/4)
      fuse     1x1 remap 24->24, concat with f0, 1x1 (24+c)->c          (c, S/4)
      stack 2  encoder half of the hourglass + 2 bottleneck dense blocks (8c, S/32)
      latent   1x1 8c->256 (no BN, no ReLU)                             (256, S/32) -> latent
      map_decoder  decoder half of stack 2                              (24, S/8)   -> maps2d

One hourglass ("stack") of input width c:

    down 1   dense block (2 layers, growth c/2)   c -> 2c,  SE, avg-pool 2   -> d1 (2c, S/8)
    down 2   dense block (4 layers, growth c/2)  2c -> 4c,  SE, avg-pool 2   -> d2 (4c, S/16)
    down 3   dense block (4 layers, growth c)    4c -> 8c, [SE], avg-pool 2  -> d3 (8c, S/32)
    [stack 2 only: 2 bottleneck dense blocks 8c -> 8c at S/32 (layers 8c->6c and 14c->2c; output
     = the two new feature sets, so the width stays 8c)]
    up 1     DW unit 8c->4c, DW unit (two 3x3) 4c->4c, SE, nearest x2, + d2  (4c, S/16)
    up 2     DW unit 4c->2c, DW unit (two 3x3) 2c->2c, SE, nearest x2, + d1  (2c, S/8)
    up 3     DW unit 2c->2c, DW unit (two 3x3) 2c->24, SE                   (24, S/8)

A dense layer is a depth-wise separable unit (depth-wise 3x3 + BN + ReLU, point-wise 1x1 +
BN + ReLU, residual when the width is kept) whose output is concatenated to its input (DenseNet);
SE is squeeze-and-excitation with hidden width min(C/2, 256).

This is the structure of the authors' released DenseStack_Backnone (HandMesh repository),
re-derived and re-written. SE is the release's (`se='release'`, the default: FCs without bias,
BatchNorm1d, Hardtanh(0, 4); it needs 2+ images per training batch); `se='plain'` is the earlier
choice (FC biases, ReLU, no BatchNorm1d: it trains with a batch of one). Deliberately left out: the
modules the released code builds but never runs (SE after down 3 and the bottleneck blocks of
stack 1) are not built, and the MapReg head (1x1 24->21, MLP) belongs to the pretraining /
reconstruction heads, not to the encoder.

Table 1 ("Mult-Adds and #Param are w.r.t. the 2D encoding network") counts everything above
except `map_decoder`: stem .. stack 2's encoder and the latent projection, 6.58M parameters and
372.99M Mult-Adds at 128x128 with `pretrain.complexity` (paper: 6.6M / 373.0M). The decoder half
of stack 2 plus the MapReg head is Table 2's "2D part" of MapReg (ours 1.47M / 47.5M; paper
1.4M / 47.5M), and the sum equals Table 4's overall model minus its 3D decoder
(8.05M / 420.5M; paper 8.1 - 0.1 M / 439.9 - 19.5 = 420.4M).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import HALF, Encoder, EncoderFeatures, normalise
from .layers import DWSeparable, ReleaseSqueezeExcite, Reorg, SqueezeExcite, conv_bn_act, upsample2

SE_KINDS = {"release": ReleaseSqueezeExcite, "plain": SqueezeExcite}


class DenseBlock(nn.Module):
    """Dense layers (depth-wise separable units); layer i sees the concatenation of the input and
    every earlier layer's output. Output: [input, new features] (or only the new features)."""

    def __init__(self, c_in: int, growths: list[int], keep_input: bool = True):
        super().__init__()
        self.layers = nn.ModuleList()
        width = c_in
        for g in growths:
            self.layers.append(DWSeparable(width, g))
            width += g
        self.keep_input = keep_input
        self.out_channels = width if keep_input else width - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, dim=1) if len(feats) > 1 else x))
        return torch.cat(feats if self.keep_input else feats[1:], dim=1)


class UpStep(nn.Sequential):
    """Decoder step of an hourglass: DW unit c_in->c_out, DW unit (two depth-wise 3x3) c_out->c_out, SE."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, se=SqueezeExcite):
        super().__init__(DWSeparable(c_in, c_mid), DWSeparable(c_mid, c_out, n_dw=2), se(c_out))


class DenseDown(nn.Module):
    """Encoder half of a DenseStack hourglass: returns (d1 at S/8, d2 at S/16, d3 at S/32) for an
    S/4 input of width c."""

    def __init__(self, c: int, se_last: bool, bottleneck_blocks: int, se=SqueezeExcite):
        super().__init__()
        self.dense1 = DenseBlock(c, [c // 2] * 2)
        self.se1 = se(2 * c)
        self.dense2 = DenseBlock(2 * c, [c // 2] * 4)
        self.se2 = se(4 * c)
        self.dense3 = DenseBlock(4 * c, [c] * 4)
        self.se3 = se(8 * c) if se_last else nn.Identity()
        self.bottleneck = nn.Sequential(*[DenseBlock(8 * c, [6 * c, 2 * c], keep_input=False)
                                          for _ in range(bottleneck_blocks)])

    def forward(self, x: torch.Tensor):
        d1 = F.avg_pool2d(self.se1(self.dense1(x)), 2)
        d2 = F.avg_pool2d(self.se2(self.dense2(d1)), 2)
        d3 = self.bottleneck(F.avg_pool2d(self.se3(self.dense3(d2)), 2))
        return d1, d2, d3


class DenseUp(nn.Module):
    """Decoder half: S/32 -> S/16 (+ d2) -> S/8 (+ d1) -> `out` channels at S/8."""

    def __init__(self, c: int, out: int, se=SqueezeExcite):
        super().__init__()
        self.up1 = UpStep(8 * c, 4 * c, 4 * c, se)
        self.up2 = UpStep(4 * c, 2 * c, 2 * c, se)
        self.up3 = UpStep(2 * c, 2 * c, out, se)

    def forward(self, d1, d2, d3):
        u = upsample2(self.up1(d3)) + d2
        u = upsample2(self.up2(u)) + d1
        return self.up3(u)


class DenseStack(Encoder):
    """DenseStack encoder; see the module docstring. `width` (c) and `map_channels` (24) are the
    paper's; `latent_channels` is C^e = 256."""

    # top-level modules that are not part of Table 1's "2D encoding network"
    table1_exclude = ("map_decoder",)

    def __init__(self, input_size: int = 128, width: int = 128, map_channels: int = 24, latent_channels: int = 256,
                 se: str = "release"):
        super().__init__(input_size)
        if se not in SE_KINDS:
            raise ValueError(f"DenseStack se must be one of {sorted(SE_KINDS)}, got {se!r}")
        se_block = SE_KINDS[se]
        c = width
        self.latent_channels = latent_channels
        self.map_channels = map_channels
        # skips: S/2 stem, S/4 stem after reorg+shrink, stack 2's d1 (S/8), d2 (S/16), d3 (S/32)
        self.skip_channels = (c, c, 2 * c, 4 * c, 8 * c)
        self.stem = nn.Sequential(conv_bn_act(3, c // 2, 3, 2), DWSeparable(c // 2, c))
        self.reorg = Reorg()
        self.shrink = conv_bn_act(4 * c, c)
        self.stack1_down = DenseDown(c, se_last=False, bottleneck_blocks=0, se=se_block)
        self.stack1_up = DenseUp(c, map_channels, se_block)
        self.remap = conv_bn_act(map_channels, map_channels)
        self.fuse = conv_bn_act(map_channels + c, c)
        self.stack2_down = DenseDown(c, se_last=True, bottleneck_blocks=2, se=se_block)
        self.latent = nn.Conv2d(8 * c, latent_channels, 1, bias=False)
        self.map_decoder = DenseUp(c, map_channels, se_block)

    def forward(self, images: torch.Tensor) -> EncoderFeatures:
        s2 = self.stem(normalise(images, HALF, HALF))   # the release's (x - 0.5) / 0.5
        f0 = self.shrink(self.reorg(s2))
        out1 = upsample2(self.stack1_up(*self.stack1_down(f0)), "bilinear")
        f1 = self.fuse(torch.cat([self.remap(out1), f0], dim=1))
        d1, d2, d3 = self.stack2_down(f1)
        latent = self.latent(d3)
        maps2d = self.map_decoder(d1, d2, d3)
        return EncoderFeatures(latent=latent, maps2d=maps2d, skips=[s2, f1, d1, d2, d3])
