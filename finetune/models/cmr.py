"""The CMR baseline of MobRecon's Tables 1-2 (CMR-SG, Chen et al., CVPR 2021), after the authors' release.

    image -> stacked encoder (DenseStack by default, as Table 2; any registered encoder)
          -> 2D branch on maps2d: 21 heatmaps + 1 silhouette (sigmoid), at S/4
          -> global average pooling of the latent map (B, 256)
          -> self-attention over the channels of that vector
          -> FC 256 -> 49 x 256 (3.2M parameters: Table 2 row 1's "global pooling, FC")
          -> ISM decoder: per level (98, 195, 389, 778 vertices) up-sampling, a multi-scale spiral block
             (SpiralConv++ over 27, 18, 9 and 1 spiral positions) and a head to xyz; every level's mesh
             is a prediction with its own loss

The release (github.com/SeanChenxy/HandMesh, cmr/, `--model cmr_sg`, options/base_options.py) is the
reference where MobRecon's paper is silent. Where the two disagree the setting is named, the release
is the default and the paper's choice one keyword away:

| setting | default (release) | MobRecon's paper |
| --- | --- | --- |
| `spiral_length` | 27 (base_options.py `--seq_length 27 27 27 27`) | 9 (section 4.1: S = 9 for all models) |
| `attention` | True (cmr_sg.py builds it always; `--att` is CMR-G's) | False (Table 2 row 1: pooling + FC, 3.2M) |

The paper fixes, and the defaults keep, what its tables state: the DenseStack encoder and its
C^e = 256 latent, D = {256, 128, 64, 32} (so the FC is 256 -> 49 x 256 = 3.2M, Table 2 row 1; the
release's ResNet-18 latent is 1000 wide and its widths (64, 128, 256, 512), `channels=(64, 128, 256,
512)`), and the 128 px input of the model's constructor (the release trains at 224 px: the fine-tuning
recipe's `input_size`). Other settings: `decoder` ('ism', the release; 'spiral' or 'dsconv' a single-output
MeshDecoder, MobRecon's Table 4 decoders), `ms_mesh` (a loss per level, release `--ms_mesh yes`), `mask`
(the silhouette output and loss), `heatmap_kernel` (13: the release's target Gaussian, sigma 3.5 px).

Losses (`loss_terms`, with the release's weights inside the terms: cmr_sg.py, CMR_SG.loss):

| term | what | weight |
| --- | --- | --- |
| mesh, mesh_1, mesh_2, mesh_3 | L1 per level (778, 389, 195, 98 vertices) | 1 each |
| normal, edge | on the finest level | 0.1, 1 |
| pose2d | BCE of the sigmoid heatmaps against the release's Gaussian maps | 10 |
| pose2d_prior | the same on the ResNet-18 stack's stage-1 heatmaps (release `uv_prior_loss`) | 10 |
| mask | BCE of the sigmoid silhouette against the mask (area-averaged to S/4), where has_mask | 0.5 |

The coarse targets are the ground truth down-sampled level by level with the hierarchy's `down`
matrices, as the release's freihand.py builds them. Mesh terms only where `mesh_valid`, heatmap
terms on the labelled keypoints (`keypoints_2d_valid`). The heatmaps' refined peaks are the 2D
keypoints (root recovery, 2D metrics); they do not feed the mesh (Table 2's "-" in the 2D columns).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import VERTEX_SCALE, MeshModel
from .cmr_blocks import RELEASE_KERNEL, ISMDecoder, SelfAttention, UVMaskHead, bce, release_heatmaps
from .decoder3d import CONVS, DECODER_CHANNELS, MeshDecoder
from .mobrecon import build_encoder_for

DECODERS = ("ism",) + CONVS
# release: cmr/models/cmr_sg.py, CMR_SG.loss
WEIGHTS = {"mesh": 1.0, "normal": 0.1, "edge": 1.0, "pose2d": 10.0, "pose2d_prior": 10.0, "mask": 0.5}


class CMRBaseline(MeshModel):
    reads_keypoints_3d = False   # mesh terms only where mesh_valid, 2D on the 2D labels

    def __init__(self, encoder: str = "densestack", input_size: int = 128, hand_model="openhand",
                 channels=DECODER_CHANNELS, spiral_length: int = 27, decoder: str = "ism", attention: bool = True,
                 ms_mesh: bool = True, mask: bool = True, heatmap_kernel: int = RELEASE_KERNEL,
                 pretrained_encoder=None):
        super().__init__(hand_model, input_size)
        if decoder not in DECODERS:
            raise ValueError(f"unknown CMR decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
        self.encoder = build_encoder_for(encoder, self.input_size, pretrained_encoder)
        c = int(self.encoder.latent_channels)
        hierarchy = self.mesh_hierarchy()
        self.coarse_vertices = int(hierarchy.sizes[-1])
        # release: cmr_sg.py, uvm_head: 21 heatmaps and the silhouette from one 2D decoder
        self.uv_head = UVMaskHead(int(self.encoder.map_channels), mask=bool(mask))
        # release: cmr_sg.py, CMR_SG.decoder: self-attention on the latent vector before the FC
        self.attention = SelfAttention(c) if attention else None
        top = int(channels[-1])
        self.lift = nn.Linear(c, self.coarse_vertices * top)
        if decoder == "ism":
            # release: cmr_sg.py, ParallelDeblock per level and a head per level; base_options.py, seq_length 27
            self.decoder = ISMDecoder(hierarchy, channels, spiral_length)
        else:
            self.decoder = MeshDecoder(hierarchy, top, channels, decoder, spiral_length)
        from finetune.mesh.ops import Resample

        # release: datasets/FreiHAND/freihand.py: the coarse targets are the ground truth down-sampled level by level
        self.down = nn.ModuleList(Resample(d) for d in hierarchy.down)
        self.ms_mesh, self.heatmap_kernel = bool(ms_mesh), int(heatmap_kernel)

    def forward(self, images: torch.Tensor) -> dict:
        from pretrain.task2d import heatmap_peaks, px_to_norm

        S = self.input_size
        if hasattr(self.encoder, "forward_with_heatmaps"):
            feats, prior = self.encoder.forward_with_heatmaps(images)
        else:
            feats, prior = self.encoder(images), None
        hm_logits, mask_logits = self.uv_head(feats.maps2d)
        heatmaps = torch.sigmoid(hm_logits)
        # argmax is not differentiable: the peaks are for evaluation and root recovery only
        peaks = heatmap_peaks(heatmaps.detach(), S)
        g = feats.latent.mean(dim=(2, 3))
        if self.attention is not None:
            g = self.attention(g)
        coarse = self.lift(g).view(g.shape[0], self.coarse_vertices, -1)
        levels = self.decoder(coarse)
        levels = levels if isinstance(levels, list) else [levels]
        fine = levels[0] * VERTEX_SCALE
        vertices, keypoints = self.root_relative(fine)
        root = fine[:, :1] - vertices[:, :1]
        out = {"vertices": vertices, "keypoints_3d": keypoints, "keypoints_2d": peaks,
               "positions": px_to_norm(peaks, S), "heatmaps": heatmaps, "heatmap_logits": hm_logits}
        # release: cmr_sg.py, CMR_SG.decoder returns every level's mesh; here in metres, minus the same root
        for level, pred in enumerate(levels[1:], start=1):
            out[f"vertices_{level}"] = pred * VERTEX_SCALE - root
        if mask_logits is not None:
            out["mask"], out["mask_logits"] = torch.sigmoid(mask_logits), mask_logits
        if prior is not None:
            out["heatmaps_prior"] = prior
        return out

    def coarse_targets(self, vertices: torch.Tensor) -> list:
        """[level 1, level 2, ...] of (B, V_0, 3) vertices, each the previous level's down-sampled.
        release: cmr/datasets/FreiHAND/freihand.py, get_training_sample (v1 = Pool(v0, down[0]), ...)."""
        out, v = [], vertices
        for down in self.down:
            v = down(v)
            out.append(v)
        return out

    def loss_terms(self, pred: dict, batch: dict) -> dict:
        from finetune.mesh.losses import edge_length_loss, normal_loss, vertex_l1

        valid = batch["mesh_valid"].float()
        gt = batch["vertices_rel"].float() / VERTEX_SCALE
        pr = pred["vertices"].float() / VERTEX_SCALE
        terms = {"mesh": WEIGHTS["mesh"] * vertex_l1(pr, gt, valid)}
        if self.ms_mesh:
            # release: cmr_sg.py, CMR_SG.loss: one L1 per level of the mesh hierarchy, weight 1 each
            for level, target in enumerate(self.coarse_targets(gt), start=1):
                if f"vertices_{level}" in pred:
                    terms[f"mesh_{level}"] = WEIGHTS["mesh"] * vertex_l1(
                        pred[f"vertices_{level}"].float() / VERTEX_SCALE, target, valid)
        # release: cmr_sg.py, CMR_SG.loss: normal x 0.1, edge x 1, on the finest level
        terms["normal"] = WEIGHTS["normal"] * normal_loss(pr, gt, self.faces, valid=valid)
        terms["edge"] = WEIGHTS["edge"] * edge_length_loss(pr, gt, self.faces, valid=valid)
        vis = batch["keypoints_2d_valid"].float()
        uv = batch["keypoints_2d"].float()
        # release: cmr_sg.py, CMR_SG.loss: uv_loss = 10 x BCE of the sigmoid heatmaps
        terms["pose2d"] = WEIGHTS["pose2d"] * self._heatmap_bce(pred["heatmap_logits"], None, uv, vis)
        if "heatmaps_prior" in pred:
            # release: cmr_sg.py, CMR_SG.loss: uv_prior_loss = 10 x BCE of the first stage's heatmaps
            terms["pose2d_prior"] = WEIGHTS["pose2d_prior"] * self._heatmap_bce(None, pred["heatmaps_prior"], uv, vis)
        if "mask_logits" in pred:
            # release: cmr_sg.py, CMR_SG.loss: mask_loss = 0.5 x BCE of the silhouette
            terms["mask"] = WEIGHTS["mask"] * self._mask_bce(pred["mask_logits"], batch)
        return terms

    def _heatmap_bce(self, logits, prob, uv, vis) -> torch.Tensor:
        """Mean BCE over the pixels of the labelled keypoints' maps (the release's mean over all of them)."""
        maps = logits if logits is not None else prob
        target = release_heatmaps(uv, self.input_size, maps.shape[-1], self.heatmap_kernel)
        err = bce(target, logits=logits, prob=prob).mean(dim=(2, 3))                # (B, K)
        return (err * vis).sum() / vis.sum().clamp(min=1.0)

    def _mask_bce(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """Mean BCE over the samples with a mask (has_mask); 0 (with a graph) when none has one."""
        if "mask" not in batch or "has_mask" not in batch:
            return logits.float().sum() * 0.0
        has = batch["has_mask"].to(logits.device).float().reshape(-1)
        # the crop's mask, area-averaged to the head's resolution (the release resizes it to S/2 with cv2)
        target = F.adaptive_avg_pool2d(batch["mask"].to(logits.device).float().unsqueeze(1), logits.shape[-2:])[:, 0]
        per_sample = bce(target, logits=logits).mean(dim=(1, 2))
        return (per_sample * has).sum() / has.sum().clamp(min=1.0)


def cmr_baseline(**kw):
    return CMRBaseline(**kw)
