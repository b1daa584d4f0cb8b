"""The interface every stacked 2D encoder offers to the heads that consume it.

An encoder takes (B, 3, S, S) RGB in [0, 1] normalised by `normalise` (S = 128
by default; the size is a constructor setting) and returns EncoderFeatures:

| field | shape at S = 128 | used by |
| --- | --- | --- |
| latent | (B, latent_channels, S/32, S/32) | global features (regression heads, CMR-style lifting) |
| maps2d | (B, map_channels, S/8, S/8) | the skip-fused middle-resolution map of MapReg / heatmap heads |
| skips | list of (B, C_i, S/2^i, S/2^i) | intermediate features (decoders that need them) |

Encoders are built by name through `REGISTRY` (pretrain/encoders/__init__.py):
`build_encoder(name, input_size=128)`.

Every registered encoder returns exactly five skips, skips[i - 1] at S/2^i for i = 1..5
(S/2, S/4, S/8, S/16, S/32), with `skip_channels` their widths; `latent_channels` and
`map_channels` give the widths of latent and maps2d. Stacked encoders may name, in the class
attribute `table1_exclude`, the top-level modules MobRecon's Table 1 does not count (the
second stack's decoder that makes maps2d); `pretrain.complexity` and `hands model-stats`
use it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

# ImageNet statistics, the usual input normalisation of the ResNet / MobileNet backbones
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# MobRecon's release (configs/defaults.py IMG_MEAN 0.5, IMG_STD 0.5; utils/vis.py base_transform): the stacks'
HALF = (0.5, 0.5, 0.5)


@dataclass
class EncoderFeatures:
    latent: torch.Tensor
    maps2d: torch.Tensor
    skips: list


def normalise(images: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    mean = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


class Encoder(torch.nn.Module):
    """Base class: subclasses set latent_channels, map_channels, skip_channels and implement forward."""

    latent_channels: int
    map_channels: int
    skip_channels: tuple

    def __init__(self, input_size: int = 128):
        super().__init__()
        if input_size % 32:
            raise ValueError(f"encoder input size must be a multiple of 32, got {input_size}")
        self.input_size = input_size

    def forward(self, images: torch.Tensor) -> EncoderFeatures:  # pragma: no cover - abstract
        raise NotImplementedError
