"""ResNet backbones (He et al. 2016) written here (no torchvision), and ResNet18-Stack.

Plain backbones, registered as 'resnet18', 'resnet34', 'resnet50' (for SAR and the
camera-space model): the ImageNet layout without the classifier, the same module names as
torchvision's (`conv1`, `bn1`, `layer1` .. `layer4`, `downsample`; the stride of a
Bottleneck on its 3x3 as in torchvision), so an ImageNet state dict of torchvision's layout
loads with `encoder.body.load_state_dict(sd, strict=False)` (only `fc.*` is left over).
EncoderFeatures of a plain ResNet:

    skips   [stem after conv1/BN/ReLU (64, S/2), layer1 (S/4), layer2 (S/8), layer3 (S/16), layer4 (S/32)]
    latent  layer4, (512 or 2048, S/32)
    maps2d  layer2, (128 or 512, S/8): the last stage at the middle resolution MapReg works at;
            heads needing fused low/high-resolution maps add their own decoder.

ResNet18-Stack (Table 1 of MobRecon: "a stacked network with ResNet18", 25.2M parameters,
2391.3M Mult-Adds at 128x128) is the two-stage stack of CMR (Chen et al. CVPR 2021), the
baseline MobRecon's Table 1 is built on ("we only change the 2D encoding network"), with two
ResNet-18s; see `TwoStageStack`. Its stage 2 takes CMR-PG's input, the stem features and the
21 stage-1 heatmaps (85 channels; CMR-SG/G add 10 or 15 summed "relation" maps, which would
add 114M / 173M Mult-Adds). With Table 1's scope (everything but `map_decoder`) it has
25.02M parameters and 2389.2M Mult-Adds at 128x128 (paper 25.2M / 2391.3M); its
`map_decoder` (CMR's decoder stopped at S/8) adds 2.21M / 226.5M.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import Encoder, EncoderFeatures, normalise
from .layers import conv_bn_act


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1):
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                           if stride != 1 or c_in != c_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)), inplace=True)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1):
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)  # stride on the 3x3 (ResNet v1.5)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.downsample = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                           if stride != 1 or c_in != c_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)), inplace=True)


ARCHS = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNetBody(nn.Module):
    """conv1 7x7/2 + BN + ReLU (S/2), then `enter` (max-pool 3x3/2, S/4) and layer1..layer4
    (S/4 .. S/32). `stages()` gives the four layers, `widths` their output channels."""

    def __init__(self, arch: str = "resnet18"):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown ResNet {arch!r}; choose from {sorted(ARCHS)}")
        block, counts = ARCHS[arch]
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        width = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), counts)):
            blocks = []
            for j in range(n):
                blocks.append(block(width, planes, 2 if (j == 0 and i > 0) else 1))
                width = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.stem_channels = 64
        self.widths = tuple(p * block.expansion for p in (64, 128, 256, 512))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn1(self.conv1(x)), inplace=True)

    def enter(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(x)

    def stages(self):
        return [self.layer1, self.layer2, self.layer3, self.layer4]


class ResNetEncoder(Encoder):
    """A plain ResNet-18/34/50 as an encoder (see the module docstring for the outputs)."""

    def __init__(self, input_size: int = 128, arch: str = "resnet18"):
        super().__init__(input_size)
        self.arch = arch
        self.body = ResNetBody(arch)
        self.latent_channels = self.body.widths[3]
        self.map_channels = self.body.widths[1]
        self.skip_channels = (64,) + self.body.widths

    def forward(self, images: torch.Tensor) -> EncoderFeatures:
        x0 = self.body.stem(normalise(images))
        x = self.body.enter(x0)
        feats = []
        for stage in self.body.stages():
            x = stage(x)
            feats.append(x)
        return EncoderFeatures(latent=feats[3], maps2d=feats[1], skips=[x0] + feats)


def resnet18(input_size: int = 128) -> ResNetEncoder:
    return ResNetEncoder(input_size, "resnet18")


def resnet34(input_size: int = 128) -> ResNetEncoder:
    return ResNetEncoder(input_size, "resnet34")


def resnet50(input_size: int = 128) -> ResNetEncoder:
    return ResNetEncoder(input_size, "resnet50")


# ---------------------------------------------------------------------------------------------
# the two-stage stack of CMR (ResNet18-Stack)


def conv_block(c_in: int, c_out: int, kernel: int = 3, act: bool = True) -> nn.Sequential:
    """CMR's ConvBlock: conv (with bias) + BN [+ ReLU]."""
    return conv_bn_act(c_in, c_out, kernel, act="relu" if act else None, bias=True)


class SkipDecoder(nn.Module):
    """CMR's 2D decoder: from the S/32 features, `steps` times: bilinear x2, concatenate the
    skip of that resolution (while there is one), 3x3 conv block to the skip's width.
    widths = (S/4, S/8, S/16, S/32) body widths; steps = 2 ends at S/8, 4 at S/2 (the last
    step has no skip and keeps the S/4 width)."""

    def __init__(self, widths, steps: int):
        super().__init__()
        w = list(widths)[::-1]  # S/32, S/16, S/8, S/4
        layers = []
        for i in range(steps):
            if i < 3:
                layers.append(conv_block(w[i] + w[i + 1], w[i + 1]))
            else:
                layers.append(conv_block(w[3], w[3]))
        self.layers = nn.ModuleList(layers)
        self.out_channels = w[min(steps, 3)]

    def forward(self, feats):
        """feats: body outputs [S/4, S/8, S/16, S/32]."""
        skips = feats[::-1]
        x = skips[0]
        for i, layer in enumerate(self.layers):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            if i < 3:
                x = torch.cat([x, skips[i + 1]], dim=1)
            x = layer(x)
        return x


class TwoStageStack(Encoder):
    """CMR's stacked encoder with any body that offers `stem` (-> S/2), `enter` (S/2 -> S/4
    input of stage 1), `stages()` (S/4, S/8, S/16, S/32) and `widths`:

        stage 1  body 1 on the image: x0 (stem, S/2) and the four stage outputs
        decoder  SkipDecoder to S/2, 3x3 head (with bias) to 21 heatmaps, sigmoid
        stage 2  reduce [x0, heatmaps] at S/2: 3x3 conv block (w0+21 -> w0+21), 3x3 conv block
                 (-> 2 w0), 1x1 conv + BN (-> w0); then body 2 from `enter` on
        latent   1x1 conv of stage 2's S/32 output to C^e = 256 (no BN, no ReLU)
        map_decoder  SkipDecoder of stage 2 for two steps: (w_{S/8}, S/8) -> maps2d

    Stage 1 and its decoder are the first "hourglass", stage 2 the second. The stage-1
    heatmaps, (B, 21, S/2, S/2) in [0, 1], are CMR's intermediate 2D supervision:
    `forward_with_heatmaps(images)` returns (EncoderFeatures, heatmaps) for heads that use them.
    Table 1 scope: everything except `map_decoder`."""

    table1_exclude = ("map_decoder",)

    def __init__(self, body_factory, input_size: int = 128, heatmaps: int = 21, latent_channels: int = 256):
        super().__init__(input_size)
        self.body1 = body_factory()
        self.body2 = body_factory()
        self._drop_stem(self.body2)
        w0, widths = self.body1.stem_channels, self.body1.widths
        self.decoder1 = SkipDecoder(widths, steps=4)
        self.heat_head = nn.Conv2d(widths[0], heatmaps, 3, padding=1)
        c = w0 + heatmaps
        self.reduce = nn.Sequential(conv_block(c, c), conv_block(c, 2 * w0), conv_block(2 * w0, w0, 1, act=False))
        self.latent = nn.Conv2d(widths[3], latent_channels, 1, bias=False)
        self.map_decoder = SkipDecoder(widths, steps=2)
        self.latent_channels = latent_channels
        self.map_channels = self.map_decoder.out_channels
        self.skip_channels = (w0,) + tuple(widths)

    @staticmethod
    def _drop_stem(body: nn.Module) -> None:
        """Stage 2 starts from the reduced S/2 features: its body's stem modules are not built."""
        for name in getattr(body, "stem_modules", ("conv1", "bn1")):
            delattr(body, name)

    def forward(self, images: torch.Tensor) -> EncoderFeatures:
        return self.forward_with_heatmaps(images)[0]

    def forward_with_heatmaps(self, images: torch.Tensor) -> tuple[EncoderFeatures, torch.Tensor]:
        x0 = self.body1.stem(normalise(images))
        x = self.body1.enter(x0)
        feats1 = []
        for stage in self.body1.stages():
            x = stage(x)
            feats1.append(x)
        heat = torch.sigmoid(self.heat_head(self.decoder1(feats1)))
        r = self.reduce(torch.cat([x0, heat], dim=1))
        x = self.body2.enter(r)
        feats2 = []
        for stage in self.body2.stages():
            x = stage(x)
            feats2.append(x)
        feats = EncoderFeatures(latent=self.latent(feats2[3]), maps2d=self.map_decoder(feats2),
                                skips=[r] + feats2)
        return feats, heat


class ResNet18Stack(TwoStageStack):
    def __init__(self, input_size: int = 128, latent_channels: int = 256):
        super().__init__(lambda: ResNetBody("resnet18"), input_size, latent_channels=latent_channels)
