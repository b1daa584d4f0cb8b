"""GhostStack: MobRecon's stacked encoder built from GhostNet blocks, and `LightStack`, the
stacked structure it shares with MobileNet-Stack.

The paper (MobRecon, section 3.1) gives GhostStack one sentence: the stacked structure of
Fig. 3 with "the ghost operation [GhostNet] ... where cheap operations can produce ghost
features based on primary features", and its budget: 5.0M parameters and 96.2M Mult-Adds at
128x128 (Table 1); by difference of Table 4's totals its MapReg 2D part is about 0.2M / 7.8M.
The authors never released it. This is our design.

`LightStack`, the macro structure: DenseStack's (`densestack.py`), block-agnostic

    stem         a conv 3x3/2 and the family's first block                    (c_s, S/2)
    reorg        space-to-depth x2                                            (4 c_s, S/4)
    shrink       1x1 (family's point-wise op) 4 c_s -> w                      (w, S/4)    = f0
    stack 1      encoder half (below) and decoder half, output bilinearly upsampled to S/4
    fuse         1x1 remap of stack 1's output, concat with f0, 1x1 -> w      (w, S/4)
    stack 2      encoder half with the family's extra bottleneck blocks at S/32 (C_32, S/32)
    latent       plain 1x1 conv C_32 -> 256 (no BN, no ReLU, as DenseStack's)  -> latent
    map_decoder  decoder half of stack 2 -> (24, S/8)                          -> maps2d

  encoder half: one stride-1 block at S/4 (DenseStack's first dense block also runs at S/4),
  then the family's stages at S/8 (-> d1), S/16 (-> d2), S/32 (-> d3), each starting with a
  stride-2 block (the blocks downsample themselves instead of DenseStack's average pooling).
  Stack 1 has only the first (stride-2) block at S/32, as DenseStack's stack 1 has no
  bottleneck blocks; stack 2 has the family's whole S/32 stage.
  decoder half: up step (C_32 -> C_16), nearest x2, + d2; up step (C_16 -> C_8), nearest x2,
  + d1; up step (C_8 -> 24) at S/8.

GhostStack's blocks are GhostNet's (Han et al. CVPR 2020): every ordinary point-wise
convolution becomes a ghost module (a primary 1x1 makes half the channels, a depth-wise 3x3
"cheap operation" makes the other half from them), the blocks are ghost bottlenecks (ghost
module expand, depth-wise stride-2 convolution when downsampling, SE with a hard-sigmoid gate,
linear ghost module project, residual); the up step is DenseStack's (unit, unit, SE) with
ghost modules: ghost module C_in -> C_out, depth-wise 3x3 + BN, linear ghost module, SE.
Stages, expansions, kernels and SE placement are GhostNet's Table 1:

    stem   conv 3x3/2 -> 16, bottleneck (exp 16) -> 16                     (S/2)
    S/4    w = 24; bottleneck exp 72 -> 24
    S/8    k5, SE: exp 72 -> 40 (stride 2), exp 120 -> 40
    S/16   k3: exp 240 -> 80 (stride 2), 200, 184, 184 -> 80; SE: exp 480 -> 112, 672 -> 112
    S/32   k5, SE: exp 672 -> 160 (stride 2); stack 2 also: exp 960 -> 160 x 4 (SE on 2nd, 4th)

all widths times `width_mult` (rounded to multiples of 4, GhostNet's rounding).

The width multiplier is the one free parameter; it was set from the paper's budget. At
GhostNet's 1.0x this structure has 3.53M parameters and 68.4M Mult-Adds (Table 1 scope:
everything but `map_decoder`), 1.1x 4.25M / 81.8M, 1.3x (GhostNet's published larger
setting) 5.89M / 110.4M; the default 1.2x has 5.07M / 96.2M (paper 5.0M / 96.2M). One knob
matching both figures is a check that the structure has the paper's ratio of parameters to
Mult-Adds, not only its size. Our map decoder is lighter than the paper's implied
0.2M / 7.8M (0.04M / 1.1M): with skip fusion by addition the decoder's widths are the
encoder's (192 / 136 / 48 at 1.2x), and GhostNet's are narrow.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import HALF, Encoder, EncoderFeatures, normalise
from .layers import GhostBottleneck, GhostModule, Reorg, SqueezeExcite, conv_bn_act, make_divisible, upsample2

# (kernel, expansion, out, SE, stride) per GhostNet 1.0x bottleneck
GHOST_S4 = [(3, 72, 24, False, 1)]
GHOST_S8 = [(5, 72, 40, True, 2), (5, 120, 40, True, 1)]
GHOST_S16 = [(3, 240, 80, False, 2), (3, 200, 80, False, 1), (3, 184, 80, False, 1), (3, 184, 80, False, 1),
             (3, 480, 112, True, 1), (3, 672, 112, True, 1)]
GHOST_S32 = [(5, 672, 160, True, 2)]
GHOST_S32_BOTTLENECK = [(5, 960, 160, False, 1), (5, 960, 160, True, 1), (5, 960, 160, False, 1),
                        (5, 960, 160, True, 1)]


class StackDown(nn.Module):
    """Encoder half of a light stack: `s4` (stride 1, S/4), `s8`, `s16`, `s32` stages (each a
    Sequential); returns (d1 at S/8, d2 at S/16, d3 at S/32)."""

    def __init__(self, s4: nn.Module, s8: nn.Module, s16: nn.Module, s32: nn.Module, widths: tuple):
        super().__init__()
        self.s4, self.s8, self.s16, self.s32 = s4, s8, s16, s32
        self.widths = widths  # (C_8, C_16, C_32)

    def forward(self, x: torch.Tensor):
        d1 = self.s8(self.s4(x))
        d2 = self.s16(d1)
        return d1, d2, self.s32(d2)


class StackUp(nn.Module):
    def __init__(self, up1: nn.Module, up2: nn.Module, up3: nn.Module):
        super().__init__()
        self.up1, self.up2, self.up3 = up1, up2, up3

    def forward(self, d1, d2, d3):
        u = upsample2(self.up1(d3)) + d2
        u = upsample2(self.up2(u)) + d1
        return self.up3(u)


class LightStack(Encoder):
    """The stacked structure above; subclasses provide the blocks through `make_stem`,
    `make_pointwise`, `make_down` and `make_up_step`."""

    table1_exclude = ("map_decoder",)

    def __init__(self, input_size: int = 128, map_channels: int = 24, latent_channels: int = 256):
        super().__init__(input_size)
        self.latent_channels = latent_channels
        self.map_channels = map_channels
        self.stem, c_s = self.make_stem()
        w = self.stack_width
        self.reorg = Reorg()
        self.shrink = self.make_pointwise(4 * c_s, w)
        self.stack1_down = self.make_down(w, bottleneck=False)
        self.stack1_up = self._up(self.stack1_down.widths, map_channels)
        self.remap = self.make_pointwise(map_channels, map_channels)
        self.fuse = self.make_pointwise(map_channels + w, w)
        self.stack2_down = self.make_down(w, bottleneck=True)
        c8, c16, c32 = self.stack2_down.widths
        self.latent = nn.Conv2d(c32, latent_channels, 1, bias=False)
        self.map_decoder = self._up(self.stack2_down.widths, map_channels)
        self.skip_channels = (c_s, w, c8, c16, c32)

    stack_width: int

    def make_stem(self) -> tuple[nn.Module, int]:
        raise NotImplementedError

    def make_pointwise(self, c_in: int, c_out: int) -> nn.Module:
        raise NotImplementedError

    def make_down(self, c_in: int, bottleneck: bool) -> StackDown:
        raise NotImplementedError

    def make_up_step(self, c_in: int, c_out: int) -> nn.Module:
        raise NotImplementedError

    def _up(self, widths, out: int) -> StackUp:
        c8, c16, c32 = widths
        return StackUp(self.make_up_step(c32, c16), self.make_up_step(c16, c8), self.make_up_step(c8, out))

    def forward(self, images: torch.Tensor) -> EncoderFeatures:
        s2 = self.stem(normalise(images, HALF, HALF))   # the release's (x - 0.5) / 0.5
        f0 = self.shrink(self.reorg(s2))
        out1 = upsample2(self.stack1_up(*self.stack1_down(f0)), "bilinear")
        f1 = self.fuse(torch.cat([self.remap(out1), f0], dim=1))
        d1, d2, d3 = self.stack2_down(f1)
        return EncoderFeatures(latent=self.latent(d3), maps2d=self.map_decoder(d1, d2, d3),
                               skips=[s2, f1, d1, d2, d3])


class GhostUpStep(nn.Sequential):
    """Ghost module c_in -> c_out (ReLU), depth-wise 3x3 + BN, linear ghost module, SE."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(GhostModule(c_in, c_out), conv_bn_act(c_out, c_out, 3, groups=c_out, act=None),
                         GhostModule(c_out, c_out, act=None),
                         SqueezeExcite(c_out, make_divisible(c_out / 4), gate="hardsigmoid"))


class GhostStack(LightStack):
    def __init__(self, input_size: int = 128, width_mult: float = 1.2, map_channels: int = 24,
                 latent_channels: int = 256):
        self.width_mult = width_mult
        self.stack_width = self._w(24)
        super().__init__(input_size, map_channels, latent_channels)

    def _w(self, c: int) -> int:
        return make_divisible(c * self.width_mult, 4)

    def _stage(self, c_in: int, spec) -> tuple[nn.Sequential, int]:
        blocks = []
        for k, exp, out, se, stride in spec:
            blocks.append(GhostBottleneck(c_in, self._w(exp), self._w(out), kernel=k, stride=stride, se=se))
            c_in = self._w(out)
        return nn.Sequential(*blocks), c_in

    def make_stem(self):
        c = self._w(16)
        return nn.Sequential(conv_bn_act(3, c, 3, 2), GhostBottleneck(c, c, c)), c

    def make_pointwise(self, c_in, c_out):
        return GhostModule(c_in, c_out)

    def make_down(self, c_in, bottleneck):
        s4, c = self._stage(c_in, GHOST_S4)
        s8, c8 = self._stage(c, GHOST_S8)
        s16, c16 = self._stage(c8, GHOST_S16)
        s32, c32 = self._stage(c16, GHOST_S32 + (GHOST_S32_BOTTLENECK if bottleneck else []))
        return StackDown(s4, s8, s16, s32, (c8, c16, c32))

    def make_up_step(self, c_in, c_out):
        return GhostUpStep(c_in, c_out)
