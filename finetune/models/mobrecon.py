"""MobRecon (Chen et al., CVPR 2022; seed 001, sections 3.1-3.4, Fig. 2).

    image (B, 3, S, S)
      -> stacked encoder (pretrain.encoders: DenseStack, GhostStack, ResNet stacks, ...)
      -> 2D pose: MapReg on the skip-fused S/8 map (or heatmap / heatmap+soft-argmax / regression,
         Table 2's alternatives; `lifting`)
      -> pose pooling: grid sampling of the latent map at the 21 positions (joint-wise pooling
         for heatmaps)
      -> PVL: 49 x 21 learnable lifting matrix -> features of the 49-vertex mesh
      -> 3D decoder: 4 x (up-sample, DSConv, ReLU) with D = {256, 128, 64, 32}, S = 9, DSConv to xyz
         (SpiralConv++ with `decoder='spiral'`, Table 4)
      -> root-relative mesh (778 x 3) and keypoints (joint regressor)

Losses (section 3.4, `loss_terms`): L1 mesh, L1 2D pose (in [0, 1] crop units, pixels / S, as the
release measures it; Gaussian-heatmap MSE for the heatmap variant), normal and edge-length losses
(equation 9), weighed by the fine-tuning task (`RELEASE_WEIGHTS`: the release's normal 0.1, edge 1.0;
the paper's plain sum with `loss_weights: paper`); the consistency losses
con2D / con3D (equation 10) are computed by the fine-tuning task on two augmented views of one
image (finetune/task_mesh.py), because they need both views' predictions.

Registry names: mobrecon_densestack, mobrecon_ghoststack, mobrecon_resnet18 (the ResNet-18 stack),
mobrecon_resnet50 (a plain ResNet-50 backbone: its latent is 2048 wide and its maps2d is layer2),
mobrecon_mobilenet (the MobileNet stack).
"""
from __future__ import annotations

import torch

from .base import VERTEX_SCALE, MeshModel
from .decoder3d import DECODER_CHANNELS, MeshDecoder
from .lifting import PVL, PosePooling, TwoD


def build_encoder_for(encoder: str, input_size: int, pretrained_encoder=None):
    """The named encoder, or the one saved by `hands pretrain` (its name and size must agree)."""
    from pretrain.encoders import build_named_encoder

    if not pretrained_encoder:
        return build_named_encoder(encoder, input_size)
    from pretrain.checkpoint import load_pretrained_encoder, read_encoder_file

    info = read_encoder_file(pretrained_encoder)
    if info["encoder"] != encoder or int(info["input_size"]) != int(input_size):
        raise ValueError(f"{pretrained_encoder}: a pretrained {info['encoder']} at {info['input_size']} px, "
                         f"but the model wants {encoder} at {input_size} px")
    return load_pretrained_encoder(pretrained_encoder)


# release (mobrecon/models/mobrecon_ds.py, MobRecon_DS.loss): normal 0.1 (0.05 per view of the pair, summed),
# edge 1.0 (0.5 per view), every other term 1; the paper's equation 11 is the plain sum
RELEASE_WEIGHTS = {"normal": 0.1, "edge": 1.0}


class MobRecon(MeshModel):
    reads_keypoints_3d = False   # mesh terms only where mesh_valid, pose2d on the 2D labels
    release_weights = RELEASE_WEIGHTS

    def __init__(self, encoder: str = "densestack", input_size: int = 128, lifting: str = "mapreg",
                 decoder: str = "dsconv", hand_model="openhand", channels=DECODER_CHANNELS, spiral_length: int = 9,
                 joint_pooling: str = "max", pretrained_encoder=None, heatmap_sigma: float = 1.0,
                 dsconv_init: str = "default"):
        super().__init__(hand_model, input_size)
        self.encoder = build_encoder_for(encoder, self.input_size, pretrained_encoder)
        c = int(self.encoder.latent_channels)
        self.two_d = TwoD(lifting, int(self.encoder.map_channels), c, self.input_size)
        self.pose_pooling = PosePooling(c, "joint" if lifting == "heatmap" else "grid", joint_pooling,
                                        input_size=self.input_size)
        hierarchy = self.mesh_hierarchy()
        self.pvl = PVL(int(hierarchy.sizes[-1]), 21)
        self.decoder = MeshDecoder(hierarchy, self.pose_pooling.out_channels, channels, decoder, spiral_length)
        if dsconv_init not in ("default", "release"):
            raise ValueError(f"dsconv_init must be 'default' or 'release', got {dsconv_init!r}")
        if dsconv_init == "release":
            # release (modules.py SpiralDeblock.reset_parameters): every block's DSConv, not the head, Xavier.
            # Not the default: its decoder output starts near 1e-7 m and our 120-step overfit check then
            # leaves PA-MPJPE where it began (ratio 0.98 against the 0.5 bound; 0.5 needs PyTorch's init)
            for conv in self.decoder.convs:
                if hasattr(conv, "release_init"):
                    conv.release_init()
        self.lifting, self.heatmap_sigma = lifting, float(heatmap_sigma)

    def forward(self, images: torch.Tensor) -> dict:
        feats = self.encoder(images)
        two_d = self.two_d(feats)
        coarse = self.pvl(self.pose_pooling(feats.latent, two_d))
        return self.mesh_outputs(self.decoder(coarse), two_d, self.two_d.pixels(two_d))

    def loss_terms(self, pred: dict, batch: dict) -> dict:
        return mesh_and_pose_terms(self, pred, batch)


def mesh_and_pose_terms(model, pred: dict, batch: dict) -> dict:
    """Equation 9's terms for one batch: mesh (L1, in VERTEX_SCALE units), pose2d, normal, edge.

    Samples without vertices of the model's topology (batch['mesh_valid'] False) add no mesh,
    normal or edge loss; their 2D keypoints still supervise the 2D branch.
    """
    from finetune.mesh.losses import edge_length_loss, normal_loss
    from pretrain.task2d import gaussian_heatmaps, px_to_norm

    S = model.input_size
    valid = batch["mesh_valid"].float()
    gt_v = batch["vertices_rel"].float() / VERTEX_SCALE
    # release (mobrecon_ds.py loss): the decoder's own mesh, not shifted to its regressed wrist first
    pr_v = pred.get("decoded", pred["vertices"]).float() / VERTEX_SCALE
    per_sample = (pr_v - gt_v).abs().mean(dim=(1, 2))
    n = valid.sum().clamp(min=1.0)
    terms = {"mesh": (per_sample * valid).sum() / n,
             "normal": normal_loss(pr_v, gt_v, model.faces, valid=valid),
             "edge": edge_length_loss(pr_v, gt_v, model.faces, valid=valid)}
    vis = batch["keypoints_2d_valid"].float().unsqueeze(-1)                      # (B, 21, 1)
    if getattr(model, "lifting", "mapreg") == "heatmap":
        hm = pred["heatmaps"].float()
        target = gaussian_heatmaps(batch["keypoints_2d"].float(), S, hm.shape[-1], model.heatmap_sigma)
        err = (hm - target) ** 2 * vis.unsqueeze(-1)
        terms["pose2d"] = 100.0 * err.sum() / (vis.sum() * hm.shape[-1] * hm.shape[-2]).clamp(min=1.0)
    else:
        # release (mobrecon_ds.py, loss): L1 in [0, 1] crop units (pixels / S), half the normalised [-1, 1] error
        err = (pred["positions"].float() - px_to_norm(batch["keypoints_2d"].float(), S)).abs() * vis / 2.0
        terms["pose2d"] = err.sum() / (2 * vis.sum()).clamp(min=1.0)
    return terms


def mobrecon_densestack(**kw):
    return MobRecon(encoder="densestack", **kw)


def mobrecon_ghoststack(**kw):
    return MobRecon(encoder="ghoststack", **kw)


def mobrecon_resnet18(**kw):
    return MobRecon(encoder="resnet18_stack", **kw)


def mobrecon_resnet50(**kw):
    return MobRecon(encoder="resnet50", **kw)


def mobrecon_mobilenet(**kw):
    return MobRecon(encoder="mobilenet_stack", **kw)

