"""SAR, spatial-aware regression (Sun et al., TCSVT 2023; seed 000): 2.5D belief maps of the whole mesh.

    image (B, 3, S_in, S_in) in [0, 1], ImageNet-normalised here
      -> E-1: ResNet stem, layer1, layer2 (shared by the stages): mid-level features F_mid (S_in / 8)
      -> stage k = 1..K (K = `stages`, default 2):
           input    k = 1: F_mid;  k > 1: 1x1 conv of [F_mid, pose belief maps of stage k - 1]
           E-2      layer3, layer4 (stage 1 uses the encoder's own, every later stage its own copy)
           SAR-Head(N = 799, S = 32) on the layer4 features (finetune/models/sar_head.py)
           -> uvd of 21 keypoints + 778 vertices
      -> the last stage's uvd -> root-relative metres (below) -> vertices, keypoints_3d, keypoints_2d

Losses (`loss_terms`, summed over the stages): `uvd`, the L1 on (u, v, d) of all 799 keypoints
(release: nn.L1Loss on mesh_pose_uvd per stage); `normal` (0.1 x the normal loss, the release's
factor) and `edge` (edge-length loss) on the 778 vertices' uvd.

Reading of the unclear details (the authors' release, github.com/zxz267/SAR, where it says more):

- Backbone split: E-1 = stem + layer1 + layer2, E-2 = layer3 + layer4, one E-2 per stage (the
  release builds each stage's layer3/layer4 from a fresh ImageNet ResNet; here each later stage's
  copy starts from the encoder's own weights, pretrained or not). Only plain ResNets (`resnet18`,
  `resnet34`, `resnet50`: an encoder with a `body` of stem / enter / layer1..layer4) can be split.
- Pose-guided refinement: the release concatenates F_mid with the 21 keypoints' normalised
  heatmaps and their depth-weighted heatmaps (p * depth) and reduces them with a 1x1 conv to F_mid's
  width. Same here, with the maps resampled to F_mid's grid by area (32 -> 16 at 128 px input; at
  the release's 256 px they coincide) and scaled to densities of mean 1
  (`sar_head.pool_belief_maps`), because a softmax over 1024 pixels is ~1e-3 everywhere.
- uvd targets: u, v of a keypoint are its crop pixel position in normalised crop coordinates
  n = (2 u + 1) / S_in - 1 (keypoints_2d; vertices projected with the batch's K from
  vertices_rel + the camera-frame wrist); d is its root-relative camera z (keypoints_3d_rel /
  vertices_rel) in VERTEX_SCALE (0.2 m) units (the release: metres / 0.3). Samples without a mesh
  of the model's topology supervise only the 21 keypoints; unlabelled keypoints
  (keypoints_2d_valid False) add nothing.
- Normal and edge losses act on the vertices' uvd coordinates (u, v normalised, d in 0.2 m), as the
  release computes them on its uvd; the predicted and the target uvd are in the same space.
- Metric output. The 2.5D prediction has no metric x, y without the camera, and the model sees
  only the image. x, y come from a weak-perspective back-projection about the wrist:
  x = s (u - u_wrist), y = s (v - v_wrist), z = (d - d_wrist) * 0.2 m, with the per-sample scale s
  (metres per normalised crop unit) the least-squares fit of the 20 bone lengths of the hand
  model's template skeleton to the predicted keypoints: minimise sum_b (s^2 |du_b|^2 + dz_b^2 - L_b^2)^2,
  closed form in s^2, clamped to s in [0.02, 2] m. It ignores the perspective across the hand
  (a few per cent) and assumes the template's hand size, which the Procrustes-aligned metrics do
  not see; the release converts uvd with K and a separately estimated root depth (RootNet) at test
  time instead. keypoints_3d are SAR's own 21 keypoint nodes (not the joint regressor applied to
  the vertex nodes), vertices the 778 vertex nodes, both minus the wrist node; keypoints_2d are the
  keypoint nodes' (u, v) in crop pixels.
- The graph has 799 nodes (keypoints first); the release regresses 778 vertex nodes and mixes the
  21 joints' maps from them with a learned linear 778 -> 21 map. Here the joints are graph nodes of
  their own, as the paper's N = 799 says.

Settings: `stages` (2), `heatmap_size` S (32), `maps_per_keypoint` M (8), `hidden` (None: S^2),
`dropout` (0.5), `adjacency_init` ('graph'; see sar_head), `backbone`, `input_size`, `hand_model`,
`pretrained_encoder` (OUT/encoder.pt of `hands pretrain` for the same ResNet).

Cost at 128 px (pretrain.complexity, conv / linear / matmul Mult-Adds): sar_resnet34 57.65M
parameters, 8.68G Mult-Adds, of which the two SAR-Heads are 16.4M / 6.83G: per stage and branch
the 1024 x 1024 FC on 799 nodes (0.84G) and the dense 799 x 799 adjacency products (0.74G). The
heads' cost does not depend on the input size (at 256 px only SAIGB's maps grow).

Registry names: sar_resnet18, sar_resnet34, sar_resnet50 (backbone `backbone`, a setting).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .base import NUM_JOINTS, VERTEX_SCALE, MeshModel
from .mobrecon import build_encoder_for
from .sar_head import SARHead, hand_mesh_adjacency, pool_belief_maps

SCALE_RANGE = (0.02, 2.0)    # metres per normalised crop unit, the clamp of the weak-perspective scale fit
NORMAL_FACTOR = 0.1          # the release's weight of the normal loss


def resnet_body(encoder):
    """The ResNetBody of a plain ResNet encoder (stem, enter, layer1..layer4), or a clear error."""
    body = getattr(encoder, "body", None)
    if body is None or not all(hasattr(body, n) for n in ("stem", "enter", "layer1", "layer2", "layer3", "layer4")):
        raise ValueError(f"SAR / SMR split a plain ResNet into E-1 (stem..layer2) and E-2 (layer3, layer4); "
                         f"encoder {type(encoder).__name__} is not one (use resnet18, resnet34 or resnet50)")
    return body


def keypoint_template(hm) -> np.ndarray:
    """(21, 3) template keypoints of a hand model (joint regressor @ template), minus the wrist, metres."""
    kp = np.asarray(hm.joint_regressor) @ np.asarray(hm.template)
    return kp - kp[:1]


def bone_lengths(keypoints: np.ndarray) -> np.ndarray:
    """(20,) lengths of the skeleton bones (child i = 1..20 to PARENTS[i])."""
    from pretrain.data2d import PARENTS

    return np.array([np.linalg.norm(keypoints[i] - keypoints[p]) for i, p in enumerate(PARENTS) if p >= 0])


def weak_perspective_lift(uvd: torch.Tensor, bones: torch.Tensor, scale_range=SCALE_RANGE) -> tuple:
    """Root-relative metres from 2.5D keypoints (see the module doc): (xyz (B, N, 3), s (B,)).

    uvd (B, N, 3) with the 21 keypoints first (u, v normalised crop coordinates, d in VERTEX_SCALE);
    bones (20,) template bone lengths in metres, in the order of pretrain.data2d.PARENTS."""
    from pretrain.data2d import PARENTS

    child = [i for i, p in enumerate(PARENTS) if p >= 0]
    parent = [PARENTS[i] for i in child]
    rel = uvd - uvd[:, :1]
    du = rel[:, child, :2] - rel[:, parent, :2]
    dz = (rel[:, child, 2] - rel[:, parent, 2]) * VERTEX_SCALE
    a = (du ** 2).sum(-1)                                                       # (B, 20)
    L2 = bones.to(uvd.dtype) ** 2
    s2 = (a * (L2 - dz ** 2)).sum(-1) / (a ** 2).sum(-1).clamp_min(1e-12)
    lo, hi = scale_range
    s = s2.clamp(lo ** 2, hi ** 2).sqrt()
    xyz = torch.cat([rel[..., :2] * s[:, None, None], rel[..., 2:] * VERTEX_SCALE], dim=-1)
    return xyz, s


def project_points(points: torch.Tensor, K: torch.Tensor) -> tuple:
    """Pinhole projection of camera-frame points (B, P, 3) with K (B, 3, 3): (pixels (B, P, 2), z (B, P))."""
    p = torch.einsum("bij,bpj->bpi", K.to(points.dtype), points)
    z = p[..., 2]
    return p[..., :2] / z.unsqueeze(-1).clamp_min(1e-6), z


def uvd_targets(batch: dict, input_size: int, with_vertices: bool = True) -> tuple:
    """(target (B, 21 [+ V], 3), weight (B, 21 [+ V])): the 2.5D targets of the module doc.

    Keypoints: keypoints_2d (normalised) and keypoints_3d_rel z / VERTEX_SCALE, weight
    keypoints_2d_valid. Vertices: vertices_rel + the camera-frame wrist projected with K, z of
    vertices_rel / VERTEX_SCALE, weight mesh_valid (and a wrist in front of the camera)."""
    from pretrain.task2d import px_to_norm

    kp_uv = px_to_norm(batch["keypoints_2d"].float(), input_size)
    kp_d = batch["keypoints_3d_rel"][..., 2:].float() / VERTEX_SCALE
    target = [torch.cat([kp_uv, kp_d], dim=-1)]
    weight = [batch["keypoints_2d_valid"].float()]
    if with_vertices:
        verts = batch["vertices_rel"].float()
        root = batch["keypoints_3d"][:, :1].float()
        uv, _ = project_points(verts + root, batch["K"].float())
        ok = batch["mesh_valid"].float() * (root[:, 0, 2] > 1e-3).float()
        target.append(torch.cat([px_to_norm(uv, input_size), verts[..., 2:] / VERTEX_SCALE], dim=-1))
        weight.append(ok[:, None].expand(-1, verts.shape[1]))
    return torch.cat(target, dim=1), torch.cat(weight, dim=1)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean |pred - target| over the coordinates of the points with weight (B, P) > 0."""
    w = weight.to(pred.dtype).unsqueeze(-1)
    return ((pred - target).abs() * w).sum() / (w.sum() * pred.shape[-1]).clamp_min(1.0)


class SAR(MeshModel):
    def __init__(self, backbone: str = "resnet34", input_size: int = 128, hand_model="openhand", stages: int = 2,
                 heatmap_size: int = 32, maps_per_keypoint: int = 8, hidden: int | None = None,
                 dropout: float = 0.5, adjacency_init: str = "graph", pretrained_encoder=None):
        super().__init__(hand_model, input_size)
        if int(stages) < 1:
            raise ValueError(f"SAR needs at least one stage, got stages={stages}")
        self.backbone, self.stages = backbone, int(stages)
        self.encoder = build_encoder_for(backbone, self.input_size, pretrained_encoder)
        body = resnet_body(self.encoder)
        mid_c, high_c = int(body.widths[1]), int(body.widths[3])
        high_hw = (self.input_size // 32) ** 2
        self.mid_side = self.input_size // 8
        self.refine_high = nn.ModuleList(
            [nn.Sequential(copy.deepcopy(body.layer3), copy.deepcopy(body.layer4)) for _ in range(self.stages - 1)])
        self.fuse = nn.ModuleList([nn.Conv2d(mid_c + 2 * NUM_JOINTS, mid_c, 1) for _ in range(self.stages - 1)])
        hm = self._hand_model
        kp = keypoint_template(hm)
        verts = np.asarray(hm.template) - (np.asarray(hm.joint_regressor) @ np.asarray(hm.template))[:1]
        template = np.concatenate([kp, verts]) / VERTEX_SCALE
        adjacency = hand_mesh_adjacency(hm.faces, hm.joint_regressor)
        self.heads = nn.ModuleList([
            SARHead(high_c, high_hw, template, adjacency, heatmap_size, maps_per_keypoint, hidden, dropout,
                    adjacency_init) for _ in range(self.stages)])
        self.register_buffer("bones", torch.as_tensor(bone_lengths(kp), dtype=torch.float32), persistent=False)
        self.num_keypoints = NUM_JOINTS + self.num_vertices

    def forward(self, images: torch.Tensor) -> dict:
        from pretrain.encoders import normalise
        from pretrain.task2d import norm_to_px

        body = self.encoder.body
        x = body.enter(body.stem(normalise(images)))
        mid = body.layer2(body.layer1(x))
        feat, maps, stage_uvd = mid, None, []
        for k, head in enumerate(self.heads):
            if k > 0:
                guide = pool_belief_maps(maps.prob[:, :NUM_JOINTS], maps.depth[:, :NUM_JOINTS], self.mid_side,
                                         head.size)
                feat = self.fuse[k - 1](torch.cat([mid, guide.to(mid.dtype)], dim=1))
                high = self.refine_high[k - 1](feat)
            else:
                high = body.layer4(body.layer3(feat))
            maps = head(high)
            stage_uvd.append(maps.uvd)
        uvd = maps.uvd
        xyz, scale = weak_perspective_lift(uvd.float(), self.bones)
        return {"vertices": xyz[:, NUM_JOINTS:], "keypoints_3d": xyz[:, :NUM_JOINTS],
                "keypoints_2d": norm_to_px(uvd[:, :NUM_JOINTS, :2].float(), self.input_size),
                "uvd": uvd, "uvd_stages": torch.stack(stage_uvd), "scale": scale}

    def loss_terms(self, pred: dict, batch: dict) -> dict:
        from finetune.mesh.losses import edge_length_loss, normal_loss

        target, weight = uvd_targets(batch, self.input_size)
        J = NUM_JOINTS
        mesh_w = weight[:, J]                      # one weight per sample for the vertex part
        terms = {"uvd": 0.0, "normal": 0.0, "edge": 0.0}
        for uvd in pred["uvd_stages"]:
            uvd = uvd.float()
            terms["uvd"] = terms["uvd"] + masked_l1(uvd, target, weight)
            terms["normal"] = terms["normal"] + NORMAL_FACTOR * normal_loss(uvd[:, J:], target[:, J:], self.faces,
                                                                            valid=mesh_w)
            terms["edge"] = terms["edge"] + edge_length_loss(uvd[:, J:], target[:, J:], self.faces, valid=mesh_w)
        return terms


def sar_resnet18(**kw):
    return SAR(**{"backbone": "resnet18", **kw})


def sar_resnet34(**kw):
    return SAR(**{"backbone": "resnet34", **kw})


def sar_resnet50(**kw):
    return SAR(**{"backbone": "resnet50", **kw})
