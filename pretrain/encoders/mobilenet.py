"""MobileNet-v2 (Sandler et al. 2018, MobRecon's reference [67]) written here, and MobileNet-Stack.

`MobileNetV2Body`: the ImageNet network without its classifier (and without the final 1x1
convolution to 1280, which only feeds the classifier), width multiplier `width_mult`:

    stem     conv 3x3/2 3 -> 32, inverted residual (t 1) 32 -> 16           (16, S/2)
    S/4      t 6: 24 x 2 (first stride 2)                                   (24)
    S/8      t 6: 32 x 3                                                    (32)
    S/16     t 6: 64 x 4, 96 x 3                                            (96)
    S/32     t 6: 160 x 3, 320 x 1                                          (320)

(widths scaled by `width_mult` and rounded to multiples of 8, the stem's 32 and the first
block's 16 included, as in the MobileNet-v2 paper and torchvision).

MobileNet-Stack (Table 1, 1.7M parameters / 100.2M Mult-Adds at 128x128): CMR's two-stage
stack (`resnet.TwoStageStack`, the same structure as ResNet18-Stack) with two MobileNet-v2
bodies. The width is the one free choice the paper leaves open: at width 1.0 the two bodies
alone hold 3.6M parameters, twice the paper's figure, so the paper's network cannot be two
full-width MobileNet-v2s. We use width 0.5, the MobileNet-v2 setting whose stack lands on
the paper's budget; see the report in `tests/test_encoders.py` for the measured figures.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import conv_bn_act, make_divisible
from .resnet import TwoStageStack

# (expansion t, channels c, repeats n, first stride s) after the stem, grouped by output resolution
STAGES = (
    ((6, 24, 2, 2),),
    ((6, 32, 3, 2),),
    ((6, 64, 4, 2), (6, 96, 3, 1)),
    ((6, 160, 3, 2), (6, 320, 1, 1)),
)


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6, skipped when t = 1) -> depth-wise 3x3 (stride, ReLU6) -> 1x1 linear
    projection; identity residual when stride 1 and the width is kept."""

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


class MobileNetV2Body(nn.Module):
    stem_modules = ("stem_conv", "stem_block")

    def __init__(self, width_mult: float = 1.0):
        super().__init__()
        c_stem = make_divisible(32 * width_mult, 8)
        c0 = make_divisible(16 * width_mult, 8)
        self.stem_conv = conv_bn_act(3, c_stem, 3, 2, act="relu6")
        self.stem_block = InvertedResidual(c_stem, c0, 1, 1)
        self.stem_channels = c0
        width = c0
        stages, widths = [], []
        for group in STAGES:
            blocks = []
            for t, c, n, s in group:
                c_out = make_divisible(c * width_mult, 8)
                for i in range(n):
                    blocks.append(InvertedResidual(width, c_out, s if i == 0 else 1, t))
                    width = c_out
            stages.append(nn.Sequential(*blocks))
            widths.append(width)
        self.stage4, self.stage8, self.stage16, self.stage32 = stages
        self.widths = tuple(widths)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem_block(self.stem_conv(x))

    def enter(self, x: torch.Tensor) -> torch.Tensor:
        return x  # the S/4 stage starts with a stride-2 block

    def stages(self):
        return [self.stage4, self.stage8, self.stage16, self.stage32]


class MobileNetStack(TwoStageStack):
    def __init__(self, input_size: int = 128, width_mult: float = 0.5, latent_channels: int = 256):
        super().__init__(lambda: MobileNetV2Body(width_mult), input_size, latent_channels=latent_channels)
        self.width_mult = width_mult
