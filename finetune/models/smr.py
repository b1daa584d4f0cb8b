"""SMR, spatial-guided model-based regression (Sun et al., TCSVT 2023; seed 000): MANO from pose-guided features.

    image (B, 3, S_in, S_in) in [0, 1], ImageNet-normalised here
      -> E-1: ResNet stem, layer1, layer2 (shared): F_mid (S_in / 8)
      -> stage k = 1..K (K = `stages`, default 2):
           input      k = 1: F_mid;  k > 1: 1x1 conv of [F_mid, high-resolution pose maps of stage k - 1]
           E-2        layer3, layer4 (stage 1 the encoder's own, later stages their own copies): F_high
           SAR-Head(N = 21, S = 8) on F_high: the initial 2.5D pose (low-resolution belief maps)
           pose-guided features G = 3x3 conv-BN-ReLU of [F_high, the low-resolution maps on F_high's grid]
           SAPR-Head on G: MANO theta (48), beta (10), weak-perspective camera (s, t_x, t_y)
           MANO layer (`ManoLayer`, own differentiable LBS on the hand model's arrays) -> mesh (778)
           3D pose = the 21 x 778 joint regressor @ mesh; mesh and pose minus the wrist keypoint
           2D mesh and pose = weak-perspective projection of the root-relative mesh and pose
           SAR-Head(N = 21, S = 32) on G: high-resolution 2.5D pose maps (fed to stage k + 1)
      -> outputs of the last stage: vertices, keypoints_3d (root-relative metres), keypoints_2d (pixels)

Supervision (`supervision`, summed over the stages; weights of the task default to 1):

| mode | terms |
| --- | --- |
| 'full' (3D + 2D) | uvd_low, uvd_high (L1 on the two SAR-Heads' 21 uvd), mesh (L1 on vertices), pose3d (L1 on keypoints), pose2d (L1 of the projected keypoints), pose_prior, shape_prior |
| '2d' (keypoints_2d only) | uv_low, uv_high (L1 on the heads' u, v), pose2d (keypoint reprojection), pose_prior, shape_prior |

3D terms are in VERTEX_SCALE (0.2 m) units, 2D terms in normalised crop coordinates
n = (2 u + 1) / S_in - 1 (1 px = 2 / S_in), so at 128 px one pixel of 2D error weighs as much as
3.1 mm of 3D error (0.0156 units either way).

MANO priors. pose_prior = `pose_prior_weight` (0.01) x mean(theta_articulation^2)
+ `range_weight` (100) x mean(relu(|theta_j| - ANGLE_BOUND)^2) over the 15 articulated joints'
rotation angles |theta_j|; shape_prior = `shape_prior_weight` (0.01) x mean(beta^2). The small L2
weights make the priors a tie-breaker where the 2D labels leave the pose free (depth ambiguity): at
|theta| = 1 rad the L2 gradient is roughly an order of magnitude below the reprojection term's. The range of the prior
(`prior_range(theta, beta)`): every articulated joint's rotation angle at most ANGLE_BOUND
(110 degrees, the largest active range of motion of a finger joint, PIP flexion; a magnitude
bound, not a per-axis range of motion) and every |beta| < BETA_BOUND (3, three standard deviations
of the shape space).

Bounded articulation (`bounded`, default True): the SAPR-Head's raw axis-angle r of each
articulated joint becomes r * B tanh(|r| / B) / |r| (B = ANGLE_BOUND; `bound_articulation`): the
identity for small angles (tanh x ~ x: 95 degrees of flexion, the complement data's largest,
needs |r| = 1.3 B and keeps 25 % of the gradient), never beyond B (B itself only where tanh
rounds to 1). Why: with the range penalty alone the 2D-only overfitting check ended with joints at
120-145 degrees (the reprojection term outweighs a soft penalty where depth is free), and even
with range_weight 100 the evaluation-mode
predictions (BatchNorm running statistics, which lag behind fast-moving weights) went past the
bound that the training-mode ones respected. With `bounded=False` theta is the paper's plain
regression, held only by the penalty; with `bounded=True` the angle part of the penalty is
always 0 and the range holds by construction (the betas are still held only by their prior).

Self-supervised training (the paper's third setting, from photometric / silhouette consistency)
is not built: the 2D-only mode is the weakest supervision offered.

Reading of the unclear details:

- "Combines the low-resolution 2.5D belief maps with the CNN features": the 21 normalised heatmaps
  and depth-weighted heatmaps of the N = 21, S = 8 head (`sar_head.pool_belief_maps`, on F_high's
  grid: 8 x 8 at 256 px input as the paper's S = 8 suggests, area-resampled to 4 x 4 at 128 px) are
  concatenated with F_high (layer4) and mixed by a 3x3 conv-BN-ReLU to `guide_channels` (256)
  channels: G, read by the SAPR-Head and the second SAR-Head (256 rather than layer4's width keeps
  the conv at 1.3M parameters per stage for ResNet-34 and 4.8M for ResNet-50, instead of 2.6M and
  38.5M).
- SAPR-Head ("regresses parameters in a spatially aware manner like SAR's"): a SAIGB over 18 nodes,
  MANO's 16 joints (template = the template's rest joints, root-relative, 0.2 m units) plus a shape
  node and a camera node (template 0), each with its own M feature maps of G; an adaptive GCN
  (two AdaptiveGraphConv layers, hidden `sapr_hidden` = 256, learnable and row-normalised as in
  SAR-Head; graph = MANO's kinematic tree, and the shape and the camera node read every joint, while
  the joints do not read them: a joint's row mixes only itself and its parent / children, which
  kept the per-joint features distinct and trained faster than a symmetric link); then per joint node
  its own linear map to that joint's 3 axis-angle parameters (a grouped 1x1 conv; node 0 gives
  the global orientation), the shape node a linear map to beta, the camera node to (s, t_x, t_y).
  The output layers start near zero (std 1e-3): the first prediction is the rest pose of the mean
  shape, facing the camera as the model frame does, at scale s0 in the crop's centre.
- Weak-perspective camera: for root-relative points X (metres, camera orientation),
  n_x = s X_x + t_x, n_y = s X_y + t_y in normalised crop coordinates (the wrist projects to t), then
  pixels u = ((n + 1) S_in - 1) / 2 (`weak_perspective`). s = s0 exp(c_0) with s0 = 7.5 per metre (a
  0.18 m hand over 1.35 of the crop's 2 units, the complement crops' 1.5 margin), t = (c_1, c_2).
- MANO: theta is flat axis-angle (pose 0 = the model's rest pose, smplx's flat_hand_mean), in
  camera orientation: the global rotation maps the model frame to the camera frame, so the decoded
  mesh minus its wrist is directly the camera-oriented root-relative output. The LBS is written
  here (`ManoLayer`) with the hand model's arrays as non-persistent buffers, so it moves with
  `.to(device)`, keeps the HandModel out of the module tree and exports to ONNX; it reproduces
  `synth.hand_model.HandModel` (tests/test_sar_smr.py).
- Multi-stage refinement: as in SAR, each stage predicts afresh from the fused features
  (not a residual on the previous stage's parameters); every stage is supervised.
- In '2d' mode the heads' depth maps have no target; their u, v are supervised and the maps still
  guide the features. With 3D labels absent the scale of the hand is the prior's (mean shape).

Settings: `supervision` ('full' | '2d'), `stages` (2), `low_size` (8) and `high_size` (32) of the two
SAR-Heads, `maps_per_node` M (8), `hidden` (None: S^2 of each SAR-Head), `sapr_hidden` (256),
`guide_channels` (256), `dropout` (0.5), `adjacency_init` ('graph'), `pose_prior_weight` (0.01),
`shape_prior_weight` (0.01), `range_weight` (100), `bounded` (True), `backbone`, `input_size`,
`hand_model`, `pretrained_encoder`.

Cost at 128 px: smr_resnet34 49.16M parameters, 2.00G Mult-Adds (ResNet-34 with its second
layer3 / layer4 1.84G; SAR-Heads, guide conv, SAPR-Heads and MANO 0.15G).

Registry names: smr_resnet18, smr_resnet34, smr_resnet50 (backbone `backbone`, a setting).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import NUM_JOINTS, VERTEX_SCALE, MeshModel
from .mobrecon import build_encoder_for
from .sar import keypoint_template, masked_l1, resnet_body, uvd_targets
from .sar_head import GCNBranch, SAIGB, SARHead, kinematic_adjacency, pool_belief_maps, skeleton_adjacency

SUPERVISION = ("full", "2d")
ANGLE_BOUND = math.radians(110.0)   # largest rotation angle of an articulated joint inside the prior's range
BETA_BOUND = 3.0                    # |beta| inside the prior's range
CAMERA_SCALE0 = 7.5                 # s0: normalised crop units per metre at camera output 0
OUTPUT_INIT_STD = 1e-3              # weights of SAPR's output layers at initialisation (biases 0)


# ---------------------------------------------------------------------------------------------- MANO layer

def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices (Rodrigues; smplx's epsilon at angle 0)."""
    angle = torch.norm(aa + 1e-8, dim=-1, keepdim=True)
    axis = aa / angle
    c, s = torch.cos(angle)[..., None], torch.sin(angle)[..., None]
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*aa.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device)
    return eye + s * K + (1 - c) * (axis[..., :, None] * axis[..., None, :] - eye)


class ManoLayer(nn.Module):
    """Linear blend skinning of a MANO-format hand model: forward(theta (B, 48), beta (B, 10)) ->
    vertices (B, V, 3) in metres, model frame (the same as synth.hand_model.HandModel)."""

    def __init__(self, hand_model):
        super().__init__()
        layer = hand_model.layer
        f32 = dict(dtype=torch.float32)
        self.register_buffer("v_template", layer.v_template.detach().to(**f32).clone(), persistent=False)
        self.register_buffer("shapedirs", layer.shapedirs.detach().to(**f32).clone(), persistent=False)
        self.register_buffer("posedirs", layer.posedirs.detach().to(**f32).clone(), persistent=False)
        self.register_buffer("J_regressor", layer.J_regressor.detach().to(**f32).clone(), persistent=False)
        self.register_buffer("lbs_weights", layer.lbs_weights.detach().to(**f32).clone(), persistent=False)
        self.parents = [int(p) for p in np.asarray(hand_model.parents)]
        self.num_joints = len(self.parents)

    def forward(self, theta: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        B, J = theta.shape[0], self.num_joints
        dtype = self.v_template.dtype
        theta, beta = theta.to(dtype), beta.to(dtype)
        v_shaped = self.v_template + torch.einsum("bl,vcl->bvc", beta, self.shapedirs)
        joints = torch.matmul(self.J_regressor, v_shaped)                                  # (B, J, 3)
        rots = axis_angle_to_matrix(theta.reshape(B, J, 3))                                 # (B, J, 3, 3)
        eye = torch.eye(3, dtype=dtype, device=theta.device)
        pose_feature = (rots[:, 1:] - eye).reshape(B, -1)
        v_posed = v_shaped + torch.matmul(pose_feature, self.posedirs).reshape(B, -1, 3)
        g_rot, g_pos = [rots[:, 0]], [joints[:, 0]]
        for i in range(1, J):
            p = self.parents[i]
            g_rot.append(torch.matmul(g_rot[p], rots[:, i]))
            g_pos.append(g_pos[p] + torch.matmul(g_rot[p], (joints[:, i] - joints[:, p]).unsqueeze(-1)).squeeze(-1))
        g_rot, g_pos = torch.stack(g_rot, 1), torch.stack(g_pos, 1)                         # (B, J, 3, 3), (B, J, 3)
        g_trans = g_pos - torch.matmul(g_rot, joints.unsqueeze(-1)).squeeze(-1)            # skinning translation
        W = self.lbs_weights                                                                # (V, J)
        R = torch.matmul(W, g_rot.reshape(B, J, 9)).reshape(B, -1, 3, 3)                   # (B, V, 3, 3)
        t = torch.matmul(W, g_trans)                                                        # (B, V, 3)
        return torch.matmul(R, v_posed.unsqueeze(-1)).squeeze(-1) + t


# ---------------------------------------------------------------------------------------------- camera, priors

def weak_perspective(points: torch.Tensor, camera: torch.Tensor, input_size: int) -> torch.Tensor:
    """Crop pixels (B, P, 2) of root-relative points (B, P, 3) under camera (B, 3) = (s, t_x, t_y):
    n = s X_xy + t in normalised crop coordinates, u = ((n + 1) S - 1) / 2."""
    from pretrain.task2d import norm_to_px

    n = camera[:, None, :1] * points[..., :2] + camera[:, None, 1:3]
    return norm_to_px(n, input_size)


def camera_from_raw(raw: torch.Tensor) -> torch.Tensor:
    """(B, 3) = (s, t_x, t_y) of the SAPR-Head's raw camera output c: s = s0 exp(c_0), t = (c_1, c_2)."""
    return torch.cat([CAMERA_SCALE0 * raw[:, :1].exp(), raw[:, 1:3]], dim=1)


def joint_angles(theta: torch.Tensor) -> torch.Tensor:
    """(B, 15) rotation angles (radians) of the articulated joints of flat axis-angle theta (B, 48)."""
    return (theta[:, 3:].reshape(theta.shape[0], 15, 3) ** 2).sum(-1).add(1e-12).sqrt()


def bound_articulation(theta: torch.Tensor, bound: float = ANGLE_BOUND) -> torch.Tensor:
    """theta (B, 48) with every articulated joint's axis-angle r soft-clamped to an angle below `bound`:
    r * bound tanh(|r| / bound) / |r| (the identity for small angles, the direction kept, |.| <= bound)."""
    B = theta.shape[0]
    r = theta[:, 3:].reshape(B, 15, 3)
    angle = (r ** 2).sum(-1, keepdim=True).add(1e-12).sqrt()
    r = r * (bound * torch.tanh(angle / bound) / angle)
    return torch.cat([theta[:, :3], r.reshape(B, 45)], dim=1)


def prior_range(theta: torch.Tensor, beta: torch.Tensor, angle_bound: float = ANGLE_BOUND,
                beta_bound: float = BETA_BOUND) -> dict:
    """Whether MANO parameters are inside the prior's range (see the module doc):
    {'max_angle': radians, 'max_beta', 'inside': bool, 'inside_per_sample': (B,) bool tensor}."""
    theta, beta = theta.detach().float(), beta.detach().float()
    angles = joint_angles(theta).amax(dim=1)
    betas = beta.abs().amax(dim=1)
    per = (angles <= angle_bound) & (betas < beta_bound)
    return {"max_angle": float(angles.max()), "max_beta": float(betas.max()), "inside": bool(per.all()),
            "inside_per_sample": per}


# ---------------------------------------------------------------------------------------------- SAPR-Head

class SAPRHead(nn.Module):
    """Spatial-aware parameter regression: pose-guided features (B, C, h, w) -> theta (B, 48),
    beta (B, 10), raw camera (B, 3) (see the module doc)."""

    def __init__(self, in_channels: int, feature_hw: int, joint_template, parents, maps_per_node: int = 8,
                 hidden: int = 256, dropout: float = 0.5, init: str = "graph"):
        super().__init__()
        J = len(parents)
        adj = np.zeros((J + 2, J + 2), dtype=bool)
        adj[:J, :J] = kinematic_adjacency(parents)
        adj[J:, :J] = True                  # the shape and camera nodes read every joint (not the reverse)
        template = np.concatenate([np.asarray(joint_template, dtype=np.float64), np.zeros((2, 3))])
        self.num_joints, self.hidden = J, int(hidden)
        self.saigb = SAIGB(in_channels, template, maps_per_node, feature_hw)
        self.gcn = GCNBranch(adj, self.saigb.out_features, self.hidden, self.hidden, dropout, init)
        self.pose_out = nn.Conv1d(J * self.hidden, 3 * J, 1, groups=J)
        self.shape_out = nn.Linear(self.hidden, 10)
        self.camera_out = nn.Linear(self.hidden, 3)
        for m in (self.pose_out, self.shape_out, self.camera_out):
            nn.init.normal_(m.weight, std=OUTPUT_INIT_STD)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple:
        B, J = x.shape[0], self.num_joints
        h = F.leaky_relu(self.gcn(self.saigb(x)), 0.1)                          # (B, J + 2, hidden)
        theta = self.pose_out(h[:, :J].reshape(B, J * self.hidden, 1)).reshape(B, 3 * J)
        return theta, self.shape_out(h[:, J]), self.camera_out(h[:, J + 1])


# ---------------------------------------------------------------------------------------------- SMR

class SMR(MeshModel):
    def __init__(self, backbone: str = "resnet34", input_size: int = 128, hand_model="openhand", stages: int = 2,
                 supervision: str = "full", low_size: int = 8, high_size: int = 32, maps_per_node: int = 8,
                 hidden: int | None = None, sapr_hidden: int = 256, dropout: float = 0.5,
                 adjacency_init: str = "graph", pose_prior_weight: float = 0.01, shape_prior_weight: float = 0.01,
                 range_weight: float = 100.0, bounded: bool = True, guide_channels: int = 256,
                 pretrained_encoder=None):
        super().__init__(hand_model, input_size)
        if supervision not in SUPERVISION:
            raise ValueError(f"SMR supervision must be one of {', '.join(SUPERVISION)}, got {supervision!r}")
        if int(stages) < 1:
            raise ValueError(f"SMR needs at least one stage, got stages={stages}")
        self.backbone, self.stages, self.supervision = backbone, int(stages), supervision
        self.pose_prior_weight, self.shape_prior_weight = float(pose_prior_weight), float(shape_prior_weight)
        self.range_weight, self.bounded = float(range_weight), bool(bounded)
        self.encoder = build_encoder_for(backbone, self.input_size, pretrained_encoder)
        body = resnet_body(self.encoder)
        mid_c, high_c = int(body.widths[1]), int(body.widths[3])
        high_hw = (self.input_size // 32) ** 2
        self.mid_side, self.high_side = self.input_size // 8, self.input_size // 32
        K = self.stages
        self.refine_high = nn.ModuleList(
            [nn.Sequential(copy.deepcopy(body.layer3), copy.deepcopy(body.layer4)) for _ in range(K - 1)])
        self.fuse = nn.ModuleList([nn.Conv2d(mid_c + 2 * NUM_JOINTS, mid_c, 1) for _ in range(K - 1)])
        hm = self._hand_model
        kp_template = keypoint_template(hm) / VERTEX_SCALE
        skeleton = skeleton_adjacency()
        rest = hm.rest_joints()
        joint_template = (rest - rest[:1]) / VERTEX_SCALE

        g_c = int(guide_channels)

        def head(channels, size):
            return SARHead(channels, high_hw, kp_template, skeleton, size, maps_per_node, hidden, dropout,
                           adjacency_init)

        self.pose_low = nn.ModuleList([head(high_c, low_size) for _ in range(K)])
        self.guide = nn.ModuleList([nn.Sequential(nn.Conv2d(high_c + 2 * NUM_JOINTS, g_c, 3, padding=1, bias=False),
                                                  nn.BatchNorm2d(g_c), nn.ReLU(inplace=True)) for _ in range(K)])
        self.sapr = nn.ModuleList([SAPRHead(g_c, high_hw, joint_template, hm.parents, maps_per_node, sapr_hidden,
                                            dropout, adjacency_init) for _ in range(K)])
        self.pose_high = nn.ModuleList([head(g_c, high_size) for _ in range(K)])
        self.mano = ManoLayer(hm)

    def forward(self, images: torch.Tensor) -> dict:
        from pretrain.encoders import normalise

        body = self.encoder.body
        x = body.enter(body.stem(normalise(images)))
        mid = body.layer2(body.layer1(x))
        feat, high_maps = mid, None
        keys = ("theta", "beta", "camera", "vertices", "keypoints_3d", "keypoints_2d", "vertices_2d", "uvd_low",
                "uvd_high")
        st = {k: [] for k in keys}
        for k in range(self.stages):
            if k > 0:
                guide = pool_belief_maps(high_maps.prob, high_maps.depth, self.mid_side,
                                         self.pose_high[k - 1].size)
                feat = self.fuse[k - 1](torch.cat([mid, guide.to(mid.dtype)], dim=1))
                high = self.refine_high[k - 1](feat)
            else:
                high = body.layer4(body.layer3(feat))
            low_maps = self.pose_low[k](high)
            low_guide = pool_belief_maps(low_maps.prob, low_maps.depth, self.high_side, self.pose_low[k].size)
            g = self.guide[k](torch.cat([high, low_guide.to(high.dtype)], dim=1))
            theta, beta, raw_cam = self.sapr[k](g)
            if self.bounded:
                theta = bound_articulation(theta)
            high_maps = self.pose_high[k](g)
            cam = camera_from_raw(raw_cam.float())
            vertices, keypoints = self.root_relative(self.mano(theta.float(), beta.float()))
            for name, value in (("theta", theta), ("beta", beta), ("camera", cam), ("vertices", vertices),
                                ("keypoints_3d", keypoints),
                                ("keypoints_2d", weak_perspective(keypoints, cam, self.input_size)),
                                ("vertices_2d", weak_perspective(vertices, cam, self.input_size)),
                                ("uvd_low", low_maps.uvd), ("uvd_high", high_maps.uvd)):
                st[name].append(value)
        out = {k: v[-1] for k, v in st.items()}
        out.update({f"{k}_stages": torch.stack(v) for k, v in st.items() if k != "vertices_2d"})
        return out

    # -- losses
    @property
    def reads_keypoints_3d(self) -> bool:
        """Only 'full' supervision reads 3D keypoints: '2d' trains on 2D-only samples (coco_hand) as they are."""
        return self.supervision == "full"

    def prior_terms(self, theta: torch.Tensor, beta: torch.Tensor) -> dict:
        angles = joint_angles(theta.float())
        pose = (self.pose_prior_weight * (theta[:, 3:].float() ** 2).mean()
                + self.range_weight * (F.relu(angles - ANGLE_BOUND) ** 2).mean())
        return {"pose_prior": pose, "shape_prior": self.shape_prior_weight * (beta.float() ** 2).mean()}

    def loss_terms(self, pred: dict, batch: dict) -> dict:
        from pretrain.task2d import px_to_norm

        S = self.input_size
        full = self.supervision == "full"
        if full:
            target, weight = uvd_targets(batch, S, with_vertices=False)     # (B, 21, 3), (B, 21)
        else:                                                               # 2D labels only: no depth read
            target, weight = px_to_norm(batch["keypoints_2d"].float(), S), batch["keypoints_2d_valid"].float()
        names = (("uvd_low", "uvd_high", "mesh", "pose3d") if full else ("uv_low", "uv_high")) + \
            ("pose2d", "pose_prior", "shape_prior")
        terms = {n: 0.0 for n in names}
        mesh_w = batch["mesh_valid"].float() if full else None
        for k in range(pred["theta_stages"].shape[0]):
            low, high = pred["uvd_low_stages"][k].float(), pred["uvd_high_stages"][k].float()
            if full:
                terms["uvd_low"] = terms["uvd_low"] + masked_l1(low, target, weight)
                terms["uvd_high"] = terms["uvd_high"] + masked_l1(high, target, weight)
                v = pred["vertices_stages"][k].float() / VERTEX_SCALE
                gt_v = batch["vertices_rel"].float() / VERTEX_SCALE
                per = (v - gt_v).abs().mean(dim=(1, 2))
                terms["mesh"] = terms["mesh"] + (per * mesh_w).sum() / mesh_w.sum().clamp_min(1.0)
                terms["pose3d"] = terms["pose3d"] + masked_l1(pred["keypoints_3d_stages"][k].float() / VERTEX_SCALE,
                                                              batch["keypoints_3d_rel"].float() / VERTEX_SCALE, weight)
            else:
                terms["uv_low"] = terms["uv_low"] + masked_l1(low[..., :2], target[..., :2], weight)
                terms["uv_high"] = terms["uv_high"] + masked_l1(high[..., :2], target[..., :2], weight)
            kp2d = px_to_norm(pred["keypoints_2d_stages"][k].float(), S)
            terms["pose2d"] = terms["pose2d"] + masked_l1(kp2d, target[..., :2], weight)
            for name, value in self.prior_terms(pred["theta_stages"][k], pred["beta_stages"][k]).items():
                terms[name] = terms[name] + value
        return terms


def smr_resnet18(**kw):
    return SMR(**{"backbone": "resnet18", **kw})


def smr_resnet34(**kw):
    return SMR(**{"backbone": "resnet34", **kw})


def smr_resnet50(**kw):
    return SMR(**{"backbone": "resnet50", **kw})
