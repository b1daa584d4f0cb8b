"""SiMA-Hand (Wang et al., AAAI 2024; seed 003, section 3): MVR-Hand and SVR-Hand with the dual-branch
reconstructor of H2ONet (Xu et al. 2023). Building blocks: finetune/models/sima_fusion.py.

Dual branch (both models):

    image -> stacked encoder (DenseStack by default; the paper's "hourglass block")
      shape branch:  2D pose (MapReg) -> pose pooling -> joint features f_j (21 x 256)
                     -> PVL (MobRecon's 2D-to-3D lifting) -> vertex features f_v (49 x 256)
                     -> SpiralConv++ decoder -> mesh at the canonical pose
      orientation:   orientation encoder -> orientation feature f_o (21 x d_o) -> MLP -> 6D -> R

    vertices = R @ canonical mesh (root-relative), keypoints = R @ canonical keypoints

MVR-Hand (`sima_mvr`, N views of one hand, (B, N, 3, S, S)): image-level fusion (eq. 1) per target view of
the views' image-level features, each the view's orientation tokens (below) flattened, so that the
fused feature keeps where things are in every view (a globally pooled map does not; on 15 rendered poses
after 450 steps the training-pose rotation error was 98 degrees with pooled maps, 76 with tokens, both
still with some views near 180 degrees: palm-side and back-side views confused);
joint-level fusion (eq. 2) of the views' f_j; the orientation feature of
view k is f_o^M,k = Linear(ReLU(P_j f_j^M + f_i^M,k)) per joint (the joint-level fusion "propagates joint
information from the shape to the orientation branch"); the views' f_v are fused by attention (eq. 3)
into f_v^M, decoded once: one canonical mesh per hand, one rotation per view.

Orientation encoder (both): a 1x1 conv + ReLU on the latent map, S/32 x S/32 tokens of d_o channels
with a learned position embedding.

SVR-Hand (`sima_svr`, (B, 3, S, S)): the orientation feature
enhancement (eq. 5) attends the projected joint tokens over them, followed by a learned output
projection (Linear d_o -> d_o, the "cross-attention block"'s; without it f^_o is a convex combination of
only (S/32)^2 tokens and cannot follow the teacher, whose f_o^M also ends in a Linear); the enhanced
f^_o (21 x d_o) has the shape of MVR's f_o^M so L_OE (eq. 6) compares them directly; L_SE (eq. 4)
compares f_v^S with f_v^M (Table 6's best row: the initial-stage vertex feature, the enhanced
orientation feature). Table 5's ablations are settings of SiMAMVR and SiMASVR (see their docstrings).

Our reading of what the paper leaves open:
- Canonical pose: the palm frame of the hand's own keypoints (sima_fusion.palm_frame: wrist -> middle
  MCP, index MCP - little MCP; joints rigid with the MANO root). It is the same for every view of one
  pose, needs no camera extrinsics (so it works for every dataset with 3D keypoints, complement, HanCo,
  Dex-YCB alike), and the ground-truth rotation is R_gt = palm_frame(keypoints_3d_rel), canonical
  mesh = R_gt^T (vertices - wrist). H2ONet uses MANO's global rotation instead; the two differ by a
  fixed per-hand-model rotation.
- Output contract: `vertices` / `keypoints_3d` are the rotated (camera-orientation) mesh, root-relative.
  A 4-D input to MVR is one view per hand, repeated to fill its N view slots (so `hands model-stats`,
  benchmarks/inference.py and ONNX export work; its Mult-Adds are then those of N encoder passes).
  A 5-D input (B, N, 3, S, S) returns every output per view, flattened to (B*N, ...) view-major.
- ||.||_2 of equations 4, 6 and 10: for the features (eq. 4, 6) the mean squared difference divided by
  the teacher feature's mean square (detached; the paper gives no beta, gamma, and the raw MSE of the
  unbounded orientation feature was ~40 against ~0.1 for the reconstruction terms on our renders, so a
  scale-free term makes beta = gamma = 1 a usable default); for eq. 10 the per-sample Frobenius norm
  of R_gt R^T - I, averaged over the batch.
- Losses are L1 means in the decoder's 0.2 m units (as MobRecon here), 2D on normalised coordinates.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import VERTEX_SCALE, MeshModel
from .decoder3d import DECODER_CHANNELS, MeshDecoder
from .lifting import PVL, PosePooling, TwoD
from .mobrecon import build_encoder_for
from .sima_fusion import (ImageFusion, JointFusion, OrientationEnhancement, VertexFusion, mlp, palm_frame,
                          rotation_6d_to_matrix)

IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


class SiMABase(MeshModel):
    """What MVR and SVR share: encoder, shape branch, rotation regressor, outputs and loss terms."""

    def __init__(self, encoder: str = "densestack", input_size: int = 128, hand_model="openhand",
                 channels=DECODER_CHANNELS, spiral_length: int = 9, orient_dim: int = 64, pretrained_encoder=None):
        super().__init__(hand_model, input_size)
        self.encoder = build_encoder_for(encoder, self.input_size, pretrained_encoder)
        c = int(self.encoder.latent_channels)
        self.latent_channels, self.orient_dim = c, int(orient_dim)
        self.two_d = TwoD("mapreg", int(self.encoder.map_channels), c, self.input_size)
        self.pose_pooling = PosePooling(c, "grid", input_size=self.input_size)
        hierarchy = self.mesh_hierarchy()
        self.pvl = PVL(int(hierarchy.sizes[-1]), 21)
        self.decoder = MeshDecoder(hierarchy, self.pose_pooling.out_channels, channels, "spiral", spiral_length)
        self.orient_encoder = nn.Sequential(nn.Conv2d(c, self.orient_dim, 1), nn.ReLU(inplace=True))
        self.orient_pos = nn.Parameter(torch.zeros(1, max(1, self.input_size // 32) ** 2, self.orient_dim))
        nn.init.normal_(self.orient_pos, std=0.02)
        self.rot_head = mlp(21 * self.orient_dim, 256, 6)
        nn.init.zeros_(self.rot_head[-1].weight)
        with torch.no_grad():
            self.rot_head[-1].bias.copy_(torch.tensor(IDENTITY_6D))
        self.lifting = "mapreg"

    def view_features(self, images: torch.Tensor) -> tuple:
        """(encoder features, 2D dict, f_j (B, 21, C), f_v (B, 49, C)) of single images."""
        feats = self.encoder(images)
        two_d = self.two_d(feats)
        f_j = self.pose_pooling(feats.latent, two_d)
        return feats, two_d, f_j, self.pvl(f_j)

    def orientation_tokens(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) latent map -> (B, h*w, d_o) tokens (position embedding when h*w matches the build size)."""
        tokens = self.orient_encoder(latent).flatten(2).transpose(1, 2)
        if tokens.shape[1] == self.orient_pos.shape[1]:
            tokens = tokens + self.orient_pos
        return tokens

    def rotation(self, f_o: torch.Tensor) -> tuple:
        d6 = self.rot_head(f_o.flatten(-2))
        return d6, rotation_6d_to_matrix(d6)

    def assemble(self, decoded: torch.Tensor, R: torch.Tensor, two_d: dict) -> dict:
        canon_v, canon_j = self.root_relative(decoded * VERTEX_SCALE)
        return {"vertices": torch.einsum("bij,bvj->bvi", R, canon_v),
                "keypoints_3d": torch.einsum("bij,bvj->bvi", R, canon_j),
                "keypoints_2d": self.two_d.pixels(two_d), "canonical_vertices": canon_v,
                "canonical_keypoints": canon_j, "rotation": R, **two_d}

    def loss_terms(self, pred: dict, batch: dict) -> dict:
        return sima_terms(self, pred, batch)


class SiMAMVR(SiMABase):
    """MVR-Hand: forward((B, N, 3, S, S)) -> per-view outputs (B*N, ...); (B, 3, S, S) = one view per hand.

    Table 5's ablations (MVR rows i-v) as settings: image_fusion 'mlp' (eq. 1) | 'none' (the target view's
    own image-level feature, a Linear to d_o); joint_fusion 'pool' (eq. 2) | 'none' (the target view's own joint
    features) | 'concat' (an MLP on the views' joint features concatenated, target view first);
    vertex_fusion 'attention' (eq. 3) | 'literal' | 'mean' | 'max' | 'concat' (sima_fusion.VertexFusion)."""

    IMAGE_FUSIONS = ("mlp", "none")
    JOINT_FUSIONS = ("pool", "none", "concat")

    def __init__(self, num_views: int = 8, vertex_fusion: str = "attention", image_fusion: str = "mlp",
                 joint_fusion: str = "pool", **kw):
        super().__init__(**kw)
        for name, value, allowed in (("image_fusion", image_fusion, self.IMAGE_FUSIONS),
                                     ("joint_fusion", joint_fusion, self.JOINT_FUSIONS)):
            if value not in allowed:
                raise ValueError(f"sima_mvr: {name} must be one of {allowed}, got {value!r}")
        d, cj = self.orient_dim, self.pose_pooling.out_channels
        self.num_views = int(num_views)
        self.image_fusion_mode, self.joint_fusion_mode = image_fusion, joint_fusion
        f_i_size = self.orient_pos.shape[1] * d                  # a view's flattened orientation tokens
        self.image_fusion = ImageFusion(f_i_size, self.num_views, d, hidden=256) if image_fusion == "mlp" \
            else nn.Linear(f_i_size, d)
        self.joint_fusion = {"pool": lambda: JointFusion(cj), "none": lambda: nn.Identity(),
                             "concat": lambda: ImageFusion(cj, self.num_views, cj)}[joint_fusion]()
        self.joint_to_orient = nn.Linear(cj, d)
        self.orient_out = nn.Linear(d, d)
        self.vertex_fusion = VertexFusion(vertex_fusion, self.pose_pooling.out_channels, self.num_views)

    def fused_joints(self, f_j: torch.Tensor) -> torch.Tensor:
        """(B, N, 21, C) per-view joint features -> (B, 1 or N, 21, C): one fused set per hand, or per target view."""
        if self.joint_fusion_mode == "pool":
            return self.joint_fusion(f_j).unsqueeze(1)
        return self.joint_fusion(f_j)

    def forward(self, images: torch.Tensor) -> dict:
        single = images.dim() == 4
        if single:
            images = images.unsqueeze(1).expand(-1, self.num_views, -1, -1, -1)
        B, N = images.shape[:2]
        feats, two_d, f_j, f_v = self.view_features(images.reshape(B * N, *images.shape[2:]))
        f_i = self.image_fusion(self.orientation_tokens(feats.latent).reshape(B, N, -1))  # (B, N, d)
        f_jm = self.fused_joints(f_j.view(B, N, *f_j.shape[1:]))                       # (B, 1|N, 21, C)
        f_o = self.orient_out(torch.relu(self.joint_to_orient(f_jm) + f_i.unsqueeze(2)))
        f_vm = self.vertex_fusion(f_v.view(B, N, *f_v.shape[1:]))                      # (B, 49, C)
        decoded = self.decoder(f_vm)                                                   # (B, 778, 3)
        d6, R = self.rotation(f_o.reshape(B * N, 21, -1))
        out = self.assemble(decoded.repeat_interleave(N, dim=0), R, two_d)
        out.update(rotation_6d=d6, f_v=f_vm, f_o=f_o.reshape(B * N, 21, -1))
        if single:   # the N copies are identical: keep view 0 of each hand
            out = {k: (v.view(B, N, *v.shape[1:])[:, 0] if v.shape[0] == B * N else v) for k, v in out.items()}
        return out


class SiMASVR(SiMABase):
    """SVR-Hand: forward((B, 3, S, S)) with the orientation feature enhancement (eq. 5).

    Table 5's SVR ablations as the setting orientation_enhancement: 'attention' (eq. 5, default) |
    'none' (row vii: the orientation branch alone, its pooled tokens projected, the same for every joint) |
    'concat' (row viii: a Linear on the joint feature concatenated with the pooled orientation tokens)."""

    ENHANCEMENTS = ("attention", "none", "concat")

    def __init__(self, orientation_enhancement: str = "attention", **kw):
        super().__init__(**kw)
        if orientation_enhancement not in self.ENHANCEMENTS:
            raise ValueError(f"sima_svr: orientation_enhancement must be one of {self.ENHANCEMENTS}, "
                             f"got {orientation_enhancement!r}")
        self.enhancement = orientation_enhancement
        d = self.orient_dim
        self.joint_to_orient = nn.Linear(self.pose_pooling.out_channels, d)
        self.enhance = OrientationEnhancement()
        self.orient_out = nn.Linear(2 * d if orientation_enhancement == "concat" else d, d)

    def orientation_feature(self, f_j: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(B, 21, d) from the joint features (B, 21, C) and the orientation tokens (B, T, d)."""
        if self.enhancement == "attention":   # orient_out: the output projection of the cross-attention block
            return self.orient_out(self.enhance(self.joint_to_orient(f_j), tokens))
        pooled = tokens.mean(dim=1, keepdim=True).expand(-1, f_j.shape[1], -1)
        if self.enhancement == "none":
            return self.orient_out(pooled)
        return self.orient_out(torch.cat([self.joint_to_orient(f_j), pooled], dim=-1))

    def forward(self, images: torch.Tensor) -> dict:
        feats, two_d, f_j, f_v = self.view_features(images)
        tokens = self.orientation_tokens(feats.latent)                                 # (B, T, d)
        f_o = self.orientation_feature(f_j, tokens)                                    # (B, 21, d)
        d6, R = self.rotation(f_o)
        out = self.assemble(self.decoder(f_v), R, two_d)
        out.update(rotation_6d=d6, f_v=f_v, f_o=f_o)
        return out


def canonical_targets(batch: dict) -> dict:
    """Ground truth of the dual branch from root-relative keypoints / vertices: R_gt, canonical mesh, joints."""
    kp = batch["keypoints_3d_rel"].float()
    R = palm_frame(kp)
    return {"R": R, "keypoints": torch.einsum("bji,bvj->bvi", R, kp),
            "vertices": torch.einsum("bji,bvj->bvi", R, batch["vertices_rel"].float()),
            "valid": (batch["keypoints_3d"].float()[..., 2] != 0).all(dim=1).float()}


def _masked_mean(per_sample: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return (per_sample * valid).sum() / valid.sum().clamp(min=1.0)


def sima_terms(model, pred: dict, batch: dict) -> dict:
    """Equations 7-10 on one (per-view flattened) batch: mesh_c, joint_c, mesh_r, joint_r, pose2d, normal_c,
    edge_c, rot. Units: VERTEX_SCALE for 3D, normalised crop coordinates for 2D."""
    from finetune.mesh.losses import edge_length_loss, normal_loss
    from pretrain.task2d import px_to_norm

    gt = canonical_targets(batch)
    s = 1.0 / VERTEX_SCALE
    kp_valid = gt["valid"]
    mesh_valid = batch["mesh_valid"].float() * kp_valid
    rot_mesh_valid = batch["mesh_valid"].float()
    pc_v, pc_j = pred["canonical_vertices"].float() * s, pred["canonical_keypoints"].float() * s
    gc_v = gt["vertices"] * s
    terms = {
        "mesh_c": _masked_mean((pc_v - gc_v).abs().mean(dim=(1, 2)), mesh_valid),
        "joint_c": _masked_mean((pc_j - gt["keypoints"] * s).abs().mean(dim=(1, 2)), kp_valid),
        "mesh_r": _masked_mean((pred["vertices"].float() * s - batch["vertices_rel"].float() * s)
                               .abs().mean(dim=(1, 2)), rot_mesh_valid),
        "joint_r": _masked_mean((pred["keypoints_3d"].float() * s - batch["keypoints_3d_rel"].float() * s)
                                .abs().mean(dim=(1, 2)), kp_valid),
        "normal_c": normal_loss(pc_v, gc_v, model.faces, valid=mesh_valid),
        "edge_c": edge_length_loss(pc_v, gc_v, model.faces, valid=mesh_valid),
    }
    eye = torch.eye(3, dtype=gt["R"].dtype, device=gt["R"].device)
    rel = torch.matmul(gt["R"], pred["rotation"].float().transpose(-1, -2)) - eye
    terms["rot"] = _masked_mean(rel.flatten(1).norm(dim=1), kp_valid)
    vis = batch["keypoints_2d_valid"].float().unsqueeze(-1)
    err = (pred["positions"].float() - px_to_norm(batch["keypoints_2d"].float(), model.input_size)).abs() * vis
    terms["pose2d"] = err.sum() / (2 * vis.sum()).clamp(min=1.0)
    return terms


def distillation_terms(student: dict, teacher: dict, views: int) -> dict:
    """L_SE (eq. 4) and L_OE (eq. 6): mean squared feature differences relative to the teacher's mean square
    (so beta = gamma = 1 means the same whatever the features' scale). The student ran on the B*N views
    one by one; the teacher's fused f_v^M (B, 49, C) is shared by the N views of its hand."""
    f_vm = teacher["f_v"].detach().repeat_interleave(int(views), dim=0)
    f_om = teacher["f_o"].detach()
    if f_vm.shape != student["f_v"].shape or f_om.shape != student["f_o"].shape:
        raise ValueError(f"teacher features {tuple(f_vm.shape)} / {tuple(f_om.shape)} do not match the "
                         f"student's {tuple(student['f_v'].shape)} / {tuple(student['f_o'].shape)}: build both "
                         "with the same encoder, input size and orient_dim")
    return {"se": _relative_mse(student["f_v"], f_vm), "oe": _relative_mse(student["f_o"], f_om)}


def _relative_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """mean |s - t|^2 / mean |t|^2 (the teacher's scale detached): 1 for a zero student, whatever the unit."""
    t = teacher.float()
    return (student.float() - t).pow(2).mean() / t.pow(2).mean().clamp(min=1e-12)


def sima_mvr(**kw):
    return SiMAMVR(**kw)


def sima_svr(**kw):
    return SiMASVR(**kw)
