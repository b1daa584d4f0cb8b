"""MobileNet-Stack: the stacked structure of GhostStack (`ghoststack.LightStack`, DenseStack's
macro structure) built from MobileNet-v2 blocks (Sandler et al. 2018, MobRecon's reference
[67]).

Table 1 of MobRecon compares "MobileNet-Stack" (1.7M parameters / 100.2M Mult-Adds at
128x128) with the other stacks; the paper gives no more detail. Why this structure and not
the two-stage CMR stack ResNet18-Stack reproduces: with MobileNet-v2 in CMR's stack the
full-resolution (S/2) reduction and decoder alone cost more than 100M Mult-Adds (width 1.0:
4.15M / 358M), so the paper's MobileNet-Stack cannot be that; in MobRecon's own stacked
structure MobileNet-v2 lands near the paper's budget.

Blocks (MobileNet-v2's Table 2, widths times `width_mult`, rounded to multiples of 8):

    stem   conv 3x3/2 -> 32, inverted residual (t 1) -> 16                  (S/2)
    S/4    w = 24; inverted residual t 6 -> 24
    S/8    t 6: 32 x 3 (first stride 2)
    S/16   t 6: 64 x 4 (first stride 2), 96 x 3
    S/32   t 6: 160 (stride 2); stack 2 also: 160 x 2, 320
    1x1 ops (shrink, remap, fuse)   conv 1x1 + BN + ReLU6
    up step  depth-wise separable unit C_in -> C_out, unit with two depth-wise 3x3 C_out ->
             C_out (DenseStack's up step, MobileNet-v1 units, without SE: MobileNet-v2 has none)

An inverted residual is 1x1 expand (ReLU6; none when t = 1), depth-wise 3x3 (ReLU6), linear
1x1 projection, identity residual when the shape is kept.

The width multiplier is the one free parameter; it was set from the paper's budget: at
width 1.0 the structure has 2.62M parameters and 145.0M Mult-Adds (Table 1 scope, everything
but `map_decoder`); the default 0.8 gives about 1.73M / 104M (see the report of
`tests/test_encoders.py`).
"""
from __future__ import annotations

import torch
from torch import nn

from .ghoststack import LightStack, StackDown
from .layers import DWSeparable, conv_bn_act, make_divisible

# (expansion t, channels c, repeats n, first stride s)
MBV2_S4 = [(6, 24, 1, 1)]
MBV2_S8 = [(6, 32, 3, 2)]
MBV2_S16 = [(6, 64, 4, 2), (6, 96, 3, 1)]
MBV2_S32 = [(6, 160, 1, 2)]
MBV2_S32_BOTTLENECK = [(6, 160, 2, 1), (6, 320, 1, 1)]


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int):
        super().__init__()
        hidden = c_in * expansion
        layers = [] if expansion == 1 else [conv_bn_act(c_in, hidden, 1, act="relu6")]
        layers += [conv_bn_act(hidden, hidden, 3, stride, groups=hidden, act="relu6"),
                   conv_bn_act(hidden, c_out, 1, act=None)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out + x if self.residual else out


class MobileNetStack(LightStack):
    def __init__(self, input_size: int = 128, width_mult: float = 0.8, map_channels: int = 24,
                 latent_channels: int = 256):
        self.width_mult = width_mult
        self.stack_width = self._w(24)
        super().__init__(input_size, map_channels, latent_channels)

    def _w(self, c: int) -> int:
        return make_divisible(c * self.width_mult, 8)

    def _stage(self, c_in: int, spec) -> tuple[nn.Sequential, int]:
        blocks = []
        for t, c, n, s in spec:
            for i in range(n):
                blocks.append(InvertedResidual(c_in, self._w(c), s if i == 0 else 1, t))
                c_in = self._w(c)
        return nn.Sequential(*blocks), c_in

    def make_stem(self):
        c_s, c0 = self._w(32), self._w(16)
        return nn.Sequential(conv_bn_act(3, c_s, 3, 2, act="relu6"), InvertedResidual(c_s, c0, 1, 1)), c0

    def make_pointwise(self, c_in, c_out):
        return conv_bn_act(c_in, c_out, 1, act="relu6")

    def make_down(self, c_in, bottleneck):
        s4, c = self._stage(c_in, MBV2_S4)
        s8, c8 = self._stage(c, MBV2_S8)
        s16, c16 = self._stage(c8, MBV2_S16)
        s32, c32 = self._stage(c16, MBV2_S32 + (MBV2_S32_BOTTLENECK if bottleneck else []))
        return StackDown(s4, s8, s16, s32, (c8, c16, c32))

    def make_up_step(self, c_in, c_out):
        return nn.Sequential(DWSeparable(c_in, c_out, act="relu6"), DWSeparable(c_out, c_out, n_dw=2, act="relu6"))
