"""The CMR-style baseline of MobRecon's Table 2, row 1 (Chen et al., CVPR 2021, as MobRecon re-used it).

    image -> stacked encoder (DenseStack by default, as Table 2; any registered encoder)
          -> global average pooling of the latent map (B, 256)
          -> FC 256 -> 49 x 256 (3.2M parameters: the lifting MobRecon's PVL replaces)
          -> SpiralConv++ decoder (the same hierarchy, spirals and widths as MobRecon's, S = 9)

The latent path has no 2D pose in it (Table 2's "-"). CMR itself predicted 2D heatmaps beside the
mesh and registered the mesh's root against them; this baseline keeps that 2D branch as a
heatmap head on the encoder's maps2d (Gaussian-heatmap supervision), used for the 2D metrics and
for root recovery only, never for lifting.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import MeshModel
from .decoder3d import DECODER_CHANNELS, MeshDecoder
from .lifting import TwoD
from .mobrecon import build_encoder_for, mesh_and_pose_terms


class CMRBaseline(MeshModel):
    reads_keypoints_3d = False   # MobRecon's terms: mesh only where mesh_valid, 2D on the 2D labels

    def __init__(self, encoder: str = "densestack", input_size: int = 128, hand_model="openhand",
                 channels=DECODER_CHANNELS, spiral_length: int = 9, pretrained_encoder=None,
                 heatmap_sigma: float = 1.0):
        super().__init__(hand_model, input_size)
        self.encoder = build_encoder_for(encoder, self.input_size, pretrained_encoder)
        c = int(self.encoder.latent_channels)
        hierarchy = self.mesh_hierarchy()
        self.coarse_vertices = int(hierarchy.sizes[-1])
        self.two_d = TwoD("heatmap", int(self.encoder.map_channels), c, self.input_size)
        self.lift = nn.Linear(c, self.coarse_vertices * c)
        self.decoder = MeshDecoder(hierarchy, c, channels, "spiral", spiral_length)
        self.lifting, self.heatmap_sigma = "heatmap", float(heatmap_sigma)

    def forward(self, images: torch.Tensor) -> dict:
        feats = self.encoder(images)
        two_d = self.two_d(feats)
        g = feats.latent.mean(dim=(2, 3))
        coarse = self.lift(g).view(g.shape[0], self.coarse_vertices, -1)
        return self.mesh_outputs(self.decoder(coarse), two_d, self.two_d.pixels(two_d))

    def loss_terms(self, pred: dict, batch: dict) -> dict:
        return mesh_and_pose_terms(self, pred, batch)


def cmr_baseline(**kw):
    return CMRBaseline(**kw)
