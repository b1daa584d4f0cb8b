"""Building blocks shared by the encoders.

- `conv_bn_act`: convolution (no bias) + BatchNorm + activation, the unit every
  backbone here is made of.
- `DWSeparable`: MobileNet-v1 style depth-wise separable unit (one or two
  depth-wise 3x3 convolutions, then a point-wise 1x1), with an identity residual
  when the shape allows; the "mobile unit" DenseStack's dense layers are made of.
- `SqueezeExcite`: SENet channel attention. Global average pool -> FC (C -> r)
  -> ReLU -> FC (r -> C) -> sigmoid -> channel-wise scale. The hidden width r is
  a parameter: DenseStack uses min(C / 2, 256), GhostNet uses make_divisible(C / 4).
  It uses FC biases and no BatchNorm, so it trains with a batch of one.
- `Reorg`: space-to-depth by a factor 2 (YOLOv2's reorg layer): (B, C, H, W) ->
  (B, 4C, H/2, W/2), output channel c * 4 + 2 * dy + dx holding pixel (2y + dy, 2x + dx)
  of channel c (the same order as `torch.nn.functional.pixel_unshuffle`).
- `GhostModule`, `GhostBottleneck`: GhostNet (Han et al., CVPR 2020). A ghost
  module makes ceil(C_out / ratio) "primary" channels with an ordinary
  convolution and the rest with a cheap depth-wise convolution of the primary
  ones ("ghost" features), then concatenates them.
- `make_divisible`: the channel rounding of MobileNet-v2/v3 and GhostNet.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def make_divisible(value: float, divisor: int = 4, min_value: int | None = None) -> int:
    """Round `value` to a multiple of `divisor`, never going more than 10 % below it."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def activation(name: str | None) -> nn.Module:
    if name is None or name == "none":
        return nn.Identity()
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"unknown activation {name!r} (relu, relu6, hswish, none)")


def conv_bn_act(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                act: str | None = "relu", bn: bool = True, bias: bool = False, dilation: int = 1) -> nn.Sequential:
    """Conv2d with 'same' padding for odd kernels, then BatchNorm and an activation."""
    pad = dilation * (kernel - 1) // 2
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, pad, dilation=dilation, groups=groups,
                                         bias=bias or not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    if act is not None:
        layers.append(activation(act))
    return nn.Sequential(*layers)


class DWSeparable(nn.Module):
    """Depth-wise 3x3 (conv-BN-ReLU, `n_dw` times, the last one with `stride`) then point-wise 1x1
    (conv-BN-ReLU); adds the input when stride is 1 and the channel count is kept."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, n_dw: int = 1, act: str = "relu",
                 residual: bool = True):
        super().__init__()
        dws = [conv_bn_act(c_in, c_in, 3, stride if i == n_dw - 1 else 1, groups=c_in, act=act) for i in range(n_dw)]
        self.depthwise = nn.Sequential(*dws)
        self.pointwise = conv_bn_act(c_in, c_out, 1, act=act)
        self.residual = residual and stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pointwise(self.depthwise(x))
        return out + x if self.residual else out


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, hidden: int | None = None, gate: str = "sigmoid"):
        super().__init__()
        hidden = hidden or min(channels // 2, 256)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3))
        s = self.fc2(F.relu(self.fc1(s)))
        s = torch.sigmoid(s) if self.gate == "sigmoid" else F.hardsigmoid(s)
        return x * s[:, :, None, None]


class ReleaseSqueezeExcite(nn.Module):
    """DenseStack's SE as the release builds it (mobrecon/models/densestack.py SenetBlock, modules.py
    linear_layer): FC without bias -> BatchNorm1d -> Hardtanh(0, 4) -> FC without bias -> BatchNorm1d ->
    sigmoid. Its BatchNorm1d needs two or more images per batch in training."""

    def __init__(self, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or min(channels // 2, 256)
        self.fc1 = nn.Linear(channels, hidden, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, channels, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] < 2:
            raise ValueError("DenseStack's release SE (BatchNorm1d) cannot train on one image per batch: use a batch "
                             "of 2 or more per process, or the encoder setting se='plain'")
        s = F.hardtanh(self.bn1(self.fc1(x.mean(dim=(2, 3)))), 0.0, 4.0)
        s = torch.sigmoid(self.bn2(self.fc2(s)))
        return x * s[:, :, None, None]


class Reorg(nn.Module):
    """Space-to-depth by `factor` (default 2): no parameters, no multiply-adds."""

    def __init__(self, factor: int = 2):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(x, self.factor)


class GhostModule(nn.Module):
    """Ghost module: primary = conv(k) to ceil(C_out / ratio) channels, ghosts = depth-wise
    conv(dw_kernel) of the primary ones ((ratio - 1) per primary channel); output = the first C_out
    channels of [primary, ghosts]. BN after both; `act` after both (None for a linear module)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, ratio: int = 2, dw_kernel: int = 3, stride: int = 1,
                 act: str | None = "relu"):
        super().__init__()
        self.c_out = c_out
        primary = math.ceil(c_out / ratio)
        cheap = primary * (ratio - 1)
        self.primary = conv_bn_act(c_in, primary, kernel, stride, act=act)
        self.cheap = conv_bn_act(primary, cheap, dw_kernel, 1, groups=primary, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.primary(x)
        return torch.cat([p, self.cheap(p)], dim=1)[:, :self.c_out]


class GhostBottleneck(nn.Module):
    """GhostNet bottleneck: ghost module (expand, ReLU) -> [depth-wise k x k, stride 2, BN] ->
    [SE] -> ghost module (project, linear); the shortcut is the identity, or a depth-wise +
    point-wise projection when the stride or the channel count changes."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, kernel: int = 3, stride: int = 1, se: bool = False):
        super().__init__()
        self.ghost1 = GhostModule(c_in, c_mid, act="relu")
        self.dw = conv_bn_act(c_mid, c_mid, kernel, stride, groups=c_mid, act=None) if stride > 1 else nn.Identity()
        self.se = SqueezeExcite(c_mid, make_divisible(c_mid / 4), gate="hardsigmoid") if se else nn.Identity()
        self.ghost2 = GhostModule(c_mid, c_out, act=None)
        if stride == 1 and c_in == c_out:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(conv_bn_act(c_in, c_in, kernel, stride, groups=c_in, act=None),
                                          conv_bn_act(c_in, c_out, 1, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ghost2(self.se(self.dw(self.ghost1(x)))) + self.shortcut(x)


def upsample2(x: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return F.interpolate(x, scale_factor=2, mode=mode, align_corners=True)
