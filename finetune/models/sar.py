"""SAR, spatial-aware regression (Sun et al., TCSVT 2023; seed 000): 2.5D belief maps of the whole mesh.

    image (B, 3, S_in, S_in) in [0, 1] (S_in = `input_size`, 256 as in the release), ImageNet-normalised
      -> E-1: ResNet stem, layer1, layer2 (shared by the stages): mid-level features F_mid (S_in / 8)
      -> stage k = 1..K (K = `stages`, default 2):
           input    k = 1: F_mid;  k > 1: 1x1 conv of [F_mid, pose belief maps of stage k - 1]
           E-2      layer3, layer4 (stage 1 uses the encoder's own, every later stage its own copy)
           SAR-Head(N = 799, S = 32) on the layer4 features (finetune/models/sar_head.py)
           -> uvd of 21 keypoints + 778 vertices (keypoints first)
      -> the last stage's uvd -> camera-frame metres with K (below) -> root-relative vertices,
         keypoints_3d, keypoints_2d (and `root`, the camera-frame wrist)

forward(images, K=None, root_depth=None); `needs_camera` is True with lift='perspective', so
finetune.models.base.run_model passes the batch's crop intrinsics K.

Losses (`loss_terms`, summed over the stages): `uvd`, the L1 on (u, v, d) of all 799 keypoints
(release: nn.L1Loss on mesh_pose_uvd per stage); `normal` (0.1 x the normal loss, the release's
factor) and `edge` (edge-length loss) on the 778 vertices' uvd.

Settings where the paper is silent or disagrees with the authors' release (github.com/zxz267/SAR);
the release's behaviour is the default, the other reachable by name (release files in brackets):

- `input_size`: 256 (layer4 8 x 8; config.py input_img_shape); any multiple of 32 (128: 4 x 4).
- `nodes`: 'release' (model.py GBBMR): 778 vertex graph nodes, the 21 keypoints' heatmap logits
  and depth maps a learned linear 778 -> 21 map of the vertices'; 'paper': 799 graph nodes
  (keypoints first, the paper's N = 799).
- `adjacency_init`: 'release' (model.py GraphConv): a dense learnable N x N matrix started at the
  identity, normalised by its row sums, A / (sum_j A_ij + 1e-5); 'graph', 'mean', 'identity':
  softmax rows started from the graph (sar_head's doc).
- `lift`: 'perspective' (data/dataset.py FreiHAND.evaluate): X = Z K^-1 (u, v, 1) with
  Z = root depth + d; 'weak': the weak-perspective lift about the wrist.
- `depth_unit`: 0.3 m (config.py depth_box: d = (z - z_wrist) / 0.3); 0.2 (VERTEX_SCALE) before.
- `imagenet_weights`: a path to torchvision's ImageNet ResNet weights (model.py SAR.__init__,
  pretrained=True); None: random init, or `pretrained_encoder`.

Reading of the unclear details:

- Backbone split: E-1 = stem + layer1 + layer2, E-2 = layer3 + layer4, one E-2 per stage (the
  release builds each stage's layer3/layer4 from a fresh ImageNet ResNet; here each later stage's
  copy starts from the encoder's own weights, ImageNet, pretrained or random). Only plain ResNets
  (`resnet18`, `resnet34`, `resnet50`: an encoder with a `body` of stem / enter / layer1..layer4)
  can be split.
- ImageNet weights (`imagenet_weights=PATH`): a torchvision-format state dict of the same ResNet
  (`conv1.weight`, `bn1.*`, `layer1.0.conv1.weight`, ..., `fc.*`; e.g. resnet34-b627a593.pth),
  loaded by key into the encoder's ResNetBody (it uses torchvision's module names; `fc.*` is
  dropped, `num_batches_tracked` may be absent) before the later stages' layer3 / layer4 are copied
  from it, as the release gives every stage the ImageNet layer3 / layer4. A missing or extra key or
  a wrong shape is a ValueError naming the file. No weights ship with the project (nothing is
  downloaded); without them the ResNet starts at random (or from `pretrained_encoder`).
- Input normalisation: (x - mean) / std with ImageNet's RGB mean (0.485, 0.456, 0.406) and std
  (0.229, 0.224, 0.225) on [0, 1] images, as the release's ToTensor + Normalize.
- Pose-guided refinement: the release concatenates F_mid with the 21 keypoints' normalised
  heatmaps and their depth-weighted heatmaps (p * depth) and reduces them with a 1x1 conv to F_mid's
  width. Same here, with the maps resampled to F_mid's grid by area (32 -> 16 at 128 px input; at
  the release's 256 px they coincide) and scaled to densities of mean 1
  (`sar_head.pool_belief_maps`), because a softmax over 1024 pixels is ~1e-3 everywhere (the
  release feeds the raw probabilities).
- uvd targets: u, v of a keypoint are its crop pixel position in normalised crop coordinates
  n = (2 u + 1) / S_in - 1 (keypoints_2d; vertices projected with the batch's K from
  vertices_rel + the camera-frame wrist; the release's n = u / (S_in / 2) - 1 is half a pixel off
  the pixel-centre convention); d is its root-relative camera z (keypoints_3d_rel / vertices_rel)
  in `depth_unit` (0.3 m, the release's depth_box). Samples without a mesh of the model's topology
  supervise only the 21 keypoints; unlabelled keypoints (keypoints_2d_valid False) add nothing.
- Normal and edge losses act on the vertices' uvd coordinates (u, v normalised, d in depth_unit),
  as the release computes them on its uvd; the predicted and the target uvd are in the same space.
- Metric output, lift='perspective' (the release, data/dataset.py FreiHAND.evaluate): each node
  at depth Z_i = Z_root + d_i * depth_unit is back-projected through the crop's K,
  X_i = Z_i K^-1 (u_i, v_i, 1) (u, v in crop pixels; the release uses the full image's K after
  undoing the crop, which is the same, and fx for fy); the outputs are X_i minus the wrist node.
  The root depth Z_root: `root_depth` (B,) metres when the caller has one (the release reads
  RootNet's estimate from bbox_root_freihand_output.json at test time and uses no root depth for
  training: its loss is on uvd only). The model sees only the image and K (run_model passes no
  root depth), so without `root_depth` it is fitted here: the Z_root whose perspective lift gives
  the 20 bones of the hand model's template skeleton their template lengths (least squares on the
  bone lengths, Gauss-Newton from the weak-perspective guess, clamped to [0.05, 20] m). That
  assumes the template's hand size; the root-relative shape depends on Z_root only through the
  perspective across the hand. `root` (B, 3) is the camera-frame wrist, `root_depth` (B,) the Z_root
  used. Without K (the ONNX graph) the weak-perspective lift below stands in.
- lift='weak' (and the fallback without K): x = s (u - u_wrist), y = s (v - v_wrist),
  z = (d - d_wrist) * depth_unit, with the per-sample scale s (metres per normalised crop unit) the
  least-squares fit of the 20 template bone lengths: minimise sum_b (s^2 |du_b|^2 + dz_b^2 - L_b^2)^2,
  closed form in s^2, clamped to s in [0.02, 2] m. `scale` (B,) is s.
- keypoints_3d are SAR's own 21 keypoint nodes (not the joint regressor applied to the vertex
  nodes), vertices the 778 vertex nodes, both minus the wrist node; keypoints_2d are the keypoint
  nodes' (u, v) in crop pixels.

Other settings: `stages` (2), `heatmap_size` S (32), `maps_per_keypoint` M (8), `hidden` (None: S^2),
`dropout` (0.5), `backbone`, `hand_model`, `pretrained_encoder` (OUT/encoder.pt of `hands pretrain`
for the same ResNet and input size).

Cost (pretrain.complexity: conv / linear / matmul Mult-Adds; measured): sar_resnet34 at the default
256 px has 58.85M parameters and 16.50G Mult-Adds: encoder 21.28M / 4.79G, the second stage's
layer3 / layer4 19.94M / 2.58G, the two SAR-Heads 17.61M / 9.11G (per head and branch the dense
778 x 778 adjacency products 0.93G and the FCs 515 -> 1024 -> 1024 on 778 nodes 1.23G; SAIGB's conv
0.20G). At 128 px 57.28M / 8.49G (SAIGB gives 131 rather than 515 features per node); with
nodes='paper', adjacency_init='graph' (the earlier defaults) at 128 px 57.65M / 8.68G, at 256 px
59.22M / 16.78G. sar_resnet18 39.30M / 12.57G, sar_resnet50 82.58M / 18.93G at 256 px.

Registry names: sar_resnet18, sar_resnet34, sar_resnet50 (backbone `backbone`, a setting).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .base import NUM_JOINTS, VERTEX_SCALE, MeshModel
from .mobrecon import build_encoder_for
from .sar_head import ADJACENCY_INITS, SARHead, hand_mesh_adjacency, pool_belief_maps, vertex_adjacency

SCALE_RANGE = (0.02, 2.0)        # metres per normalised crop unit, the clamp of the weak-perspective scale fit
ROOT_DEPTH_RANGE = (0.05, 20.0)  # metres, the clamp of the root-depth fit
NORMAL_FACTOR = 0.1              # the release's weight of the normal loss (model.py, SAR.forward)
DEPTH_UNIT = 0.3                 # release: config.py depth_box (d = (z - z_wrist) / 0.3 m, data/dataset.py)
NODES = ("release", "paper")
LIFTS = ("perspective", "weak")
TORCHVISION_CLASSIFIER = ("fc.weight", "fc.bias")


def resnet_body(encoder):
    """The ResNetBody of a plain ResNet encoder (stem, enter, layer1..layer4), or a clear error."""
    body = getattr(encoder, "body", None)
    if body is None or not all(hasattr(body, n) for n in ("stem", "enter", "layer1", "layer2", "layer3", "layer4")):
        raise ValueError(f"SAR / SMR split a plain ResNet into E-1 (stem..layer2) and E-2 (layer3, layer4); "
                         f"encoder {type(encoder).__name__} is not one (use resnet18, resnet34 or resnet50)")
    return body


def load_torchvision_resnet(body: nn.Module, path, arch: str = "resnet") -> None:
    """Load a torchvision-format ImageNet ResNet state dict (file `path`) into a ResNetBody by key.

    The body uses torchvision's module names (conv1, bn1, layer1..layer4, downsample), so keys map
    one to one; the classifier (fc.*) is dropped and num_batches_tracked may be absent (older
    files). Anything else that does not fit is a ValueError naming the file."""
    from pretrain.checkpoint import safe_load

    sd = safe_load(path, f"torchvision {arch} state dict")
    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    bad = sorted(k for k, v in sd.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise ValueError(f"{path}: not a torchvision {arch} state dict (entries that are not tensors: {bad[:5]})")
    own = body.state_dict()
    missing = sorted(k for k in own if k not in sd and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in sd if k not in own and k not in TORCHVISION_CLASSIFIER)
    shapes = sorted(f"{k}: {tuple(sd[k].shape)} in the file, {tuple(own[k].shape)} here"
                    for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape))
    if missing or unexpected or shapes:
        parts = [f"{name} ({len(v)}): {v[:4]}" for name, v in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)) if v]
        raise ValueError(f"{path}: not a torchvision {arch} ImageNet state dict for this ResNet; " + "; ".join(parts))
    body.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)


def keypoint_template(hm) -> np.ndarray:
    """(21, 3) template keypoints of a hand model (joint regressor @ template), minus the wrist, metres."""
    kp = np.asarray(hm.joint_regressor) @ np.asarray(hm.template)
    return kp - kp[:1]


def bone_lengths(keypoints: np.ndarray) -> np.ndarray:
    """(20,) lengths of the skeleton bones (child i = 1..20 to PARENTS[i])."""
    from pretrain.data2d import PARENTS

    return np.array([np.linalg.norm(keypoints[i] - keypoints[p]) for i, p in enumerate(PARENTS) if p >= 0])


def _bones():
    from pretrain.data2d import PARENTS

    child = [i for i, p in enumerate(PARENTS) if p >= 0]
    return child, [PARENTS[i] for i in child]


def weak_perspective_lift(uvd: torch.Tensor, bones: torch.Tensor, scale_range=SCALE_RANGE,
                          depth_unit: float = VERTEX_SCALE) -> tuple:
    """Root-relative metres from 2.5D keypoints (see the module doc): (xyz (B, N, 3), s (B,)).

    uvd (B, N, 3) with the 21 keypoints first (u, v normalised crop coordinates, d in depth_unit metres);
    bones (20,) template bone lengths in metres, in the order of pretrain.data2d.PARENTS."""
    child, parent = _bones()
    rel = uvd - uvd[:, :1]
    du = rel[:, child, :2] - rel[:, parent, :2]
    dz = (rel[:, child, 2] - rel[:, parent, 2]) * depth_unit
    a = (du ** 2).sum(-1)                                                       # (B, 20)
    L2 = bones.to(uvd.dtype) ** 2
    s2 = (a * (L2 - dz ** 2)).sum(-1) / (a ** 2).sum(-1).clamp_min(1e-12)
    lo, hi = scale_range
    s = s2.clamp(lo ** 2, hi ** 2).sqrt()
    xyz = torch.cat([rel[..., :2] * s[:, None, None], rel[..., 2:] * depth_unit], dim=-1)
    return xyz, s


def pixel_rays(uv_px: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(B, N, 3) K^-1 (u, v, 1) scaled to z = 1: the camera-frame point at planar depth 1 seen at each pixel."""
    hom = torch.cat([uv_px, torch.ones_like(uv_px[..., :1])], dim=-1)
    rays = torch.linalg.solve(K.to(uv_px.dtype), hom.transpose(1, 2)).transpose(1, 2)
    return rays / rays[..., 2:]


def fit_root_depth(rays: torch.Tensor, depth: torch.Tensor, bones: torch.Tensor, iterations: int = 10,
                   depth_range=ROOT_DEPTH_RANGE) -> torch.Tensor:
    """(B,) root depth Z with which the 21 keypoints X_i = (Z + depth_i) rays_i have the template's bone lengths.

    rays (B, 21, 3) at z = 1 (`pixel_rays`), depth (B, 21) metres relative to Z, bones (20,) metres (PARENTS
    order). Least squares on the lengths, sum_b (|X_c - X_p| - L_b)^2, by Gauss-Newton from the
    weak-perspective guess sum |a_b| L_b / sum |a_b|^2 (a_b = rays_c - rays_p); no gradient."""
    child, parent = _bones()
    with torch.no_grad():
        r, d, L = rays.double(), depth.double(), bones.double().to(rays.device)
        a = r[:, child] - r[:, parent]                                          # dX/dZ (B, 20, 3)
        c = d[:, child, None] * r[:, child] - d[:, parent, None] * r[:, parent]
        na = a.norm(dim=-1)
        lo, hi = depth_range
        Z = ((na * L).sum(-1) / (na ** 2).sum(-1).clamp_min(1e-18)).clamp(lo, hi)
        for _ in range(int(iterations)):
            q = Z[:, None, None] * a + c
            n = q.norm(dim=-1).clamp_min(1e-12)
            J = (q * a).sum(-1) / n
            Z = (Z - (J * (n - L)).sum(-1) / (J ** 2).sum(-1).clamp_min(1e-18)).clamp(lo, hi)
    return Z.to(rays.dtype)


def perspective_lift(uvd: torch.Tensor, K: torch.Tensor, input_size: int, depth_unit: float = DEPTH_UNIT,
                     root_depth=None, bones: torch.Tensor | None = None) -> tuple:
    """Camera-frame metres from 2.5D points (release: data/dataset.py, FreiHAND.evaluate; data/processing.py,
    uvd2xyz): (xyz (B, N, 3), root_depth (B,)).

    uvd (B, N, 3): u, v normalised crop coordinates (keypoints first when the root depth is fitted), d in
    depth_unit metres relative to the root; K (B, 3, 3) the crop's intrinsics; root_depth (B,) metres, or
    None: fitted to the template bone lengths `bones` (see the module doc). Z_i = root_depth + d_i depth_unit,
    X_i = Z_i K^-1 (u_i, v_i, 1) with (u_i, v_i) in crop pixels."""
    from pretrain.task2d import norm_to_px

    B = uvd.shape[0]
    rays = pixel_rays(norm_to_px(uvd[..., :2], input_size), K)
    depth = uvd[..., 2] * depth_unit
    if root_depth is None:
        if bones is None:
            raise ValueError("perspective_lift: give root_depth or the template bones to fit it")
        root_depth = fit_root_depth(rays[:, :NUM_JOINTS], depth[:, :NUM_JOINTS], bones)
    root_depth = torch.as_tensor(root_depth, dtype=uvd.dtype, device=uvd.device).reshape(-1).expand(B)
    Z = root_depth[:, None] + depth
    return rays * Z.unsqueeze(-1), root_depth


def project_points(points: torch.Tensor, K: torch.Tensor) -> tuple:
    """Pinhole projection of camera-frame points (B, P, 3) with K (B, 3, 3): (pixels (B, P, 2), z (B, P))."""
    p = torch.einsum("bij,bpj->bpi", K.to(points.dtype), points)
    z = p[..., 2]
    return p[..., :2] / z.unsqueeze(-1).clamp_min(1e-6), z


def uvd_targets(batch: dict, input_size: int, with_vertices: bool = True, depth_unit: float = VERTEX_SCALE) -> tuple:
    """(target (B, 21 [+ V], 3), weight (B, 21 [+ V])): the 2.5D targets of the module doc.

    Keypoints: keypoints_2d (normalised) and keypoints_3d_rel z / depth_unit, weight
    keypoints_2d_valid. Vertices: vertices_rel + the camera-frame wrist projected with K, z of
    vertices_rel / depth_unit, weight mesh_valid (and a wrist in front of the camera)."""
    from pretrain.task2d import px_to_norm

    kp_uv = px_to_norm(batch["keypoints_2d"].float(), input_size)
    kp_d = batch["keypoints_3d_rel"][..., 2:].float() / depth_unit
    target = [torch.cat([kp_uv, kp_d], dim=-1)]
    weight = [batch["keypoints_2d_valid"].float()]
    if with_vertices:
        verts = batch["vertices_rel"].float()
        root = batch["keypoints_3d"][:, :1].float()
        uv, _ = project_points(verts + root, batch["K"].float())
        ok = batch["mesh_valid"].float() * (root[:, 0, 2] > 1e-3).float()
        target.append(torch.cat([px_to_norm(uv, input_size), verts[..., 2:] / depth_unit], dim=-1))
        weight.append(ok[:, None].expand(-1, verts.shape[1]))
    return torch.cat(target, dim=1), torch.cat(weight, dim=1)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean |pred - target| over the coordinates of the points with weight (B, P) > 0."""
    w = weight.to(pred.dtype).unsqueeze(-1)
    return ((pred - target).abs() * w).sum() / (w.sum() * pred.shape[-1]).clamp_min(1.0)


class SAR(MeshModel):
    def __init__(self, backbone: str = "resnet34", input_size: int = 256, hand_model="openhand", stages: int = 2,
                 heatmap_size: int = 32, maps_per_keypoint: int = 8, hidden: int | None = None,
                 dropout: float = 0.5, adjacency_init: str = "release", pretrained_encoder=None,
                 nodes: str = "release", lift: str = "perspective", depth_unit: float = DEPTH_UNIT,
                 imagenet_weights=None):
        # release: config.py input_img_shape (256, 256)
        super().__init__(hand_model, input_size)
        if int(stages) < 1:
            raise ValueError(f"SAR needs at least one stage, got stages={stages}")
        if nodes not in NODES:
            raise ValueError(f"SAR nodes must be one of {', '.join(NODES)}, got {nodes!r}")
        if lift not in LIFTS:
            raise ValueError(f"SAR lift must be one of {', '.join(LIFTS)}, got {lift!r}")
        if adjacency_init not in ADJACENCY_INITS:
            raise ValueError(f"SAR adjacency_init must be one of {', '.join(ADJACENCY_INITS)}, got {adjacency_init!r}")
        if not float(depth_unit) > 0:
            raise ValueError(f"SAR depth_unit must be a positive number of metres, got {depth_unit!r}")
        if imagenet_weights and pretrained_encoder:
            raise ValueError("SAR: give imagenet_weights or pretrained_encoder, not both")
        if self.input_size % 32:
            raise ValueError(f"SAR input_size must be a multiple of 32 (ResNet layer4 is input / 32), got {input_size}")
        self.backbone, self.stages, self.nodes, self.lift = backbone, int(stages), nodes, lift
        self.depth_unit = float(depth_unit)
        self.needs_camera = lift == "perspective"     # run_model passes K
        self.encoder = build_encoder_for(backbone, self.input_size, pretrained_encoder)
        body = resnet_body(self.encoder)
        if imagenet_weights:      # release: model.py, SAR.__init__ (torchvision models.resnet*(pretrained=True))
            load_torchvision_resnet(body, imagenet_weights, backbone)
        mid_c, high_c = int(body.widths[1]), int(body.widths[3])
        high_hw = (self.input_size // 32) ** 2
        self.mid_side = self.input_size // 8
        self.refine_high = nn.ModuleList(
            [nn.Sequential(copy.deepcopy(body.layer3), copy.deepcopy(body.layer4)) for _ in range(self.stages - 1)])
        self.fuse = nn.ModuleList([nn.Conv2d(mid_c + 2 * NUM_JOINTS, mid_c, 1) for _ in range(self.stages - 1)])
        hm = self._hand_model
        kp = keypoint_template(hm)
        verts = np.asarray(hm.template) - (np.asarray(hm.joint_regressor) @ np.asarray(hm.template))[:1]
        if nodes == "release":    # release: model.py, GBBMR (778 graph nodes, mesh2pose_hm / _dm: 778 -> 21)
            template, mapped = verts / VERTEX_SCALE, NUM_JOINTS
            adjacency = vertex_adjacency(hm.faces, self.num_vertices)
        else:                     # the paper's N = 799 graph nodes
            template, mapped = np.concatenate([kp, verts]) / VERTEX_SCALE, 0
            adjacency = hand_mesh_adjacency(hm.faces, hm.joint_regressor)
        self.heads = nn.ModuleList([
            SARHead(high_c, high_hw, template, adjacency, heatmap_size, maps_per_keypoint, hidden, dropout,
                    adjacency_init, mapped) for _ in range(self.stages)])
        self.register_buffer("bones", torch.as_tensor(bone_lengths(kp), dtype=torch.float32), persistent=False)
        self.num_keypoints = NUM_JOINTS + self.num_vertices

    # the ImageNet file is only read at build time: save_model's kwargs must not name it (the weights are
    # in the state dict, and a rebuild on another machine would look for the file)
    @property
    def build_kwargs(self) -> dict:
        return self.__dict__.get("_build_kwargs", {})

    @build_kwargs.setter
    def build_kwargs(self, kw: dict) -> None:
        self.__dict__["_build_kwargs"] = {k: v for k, v in dict(kw).items() if k != "imagenet_weights"}

    def forward(self, images: torch.Tensor, K: torch.Tensor | None = None, root_depth=None) -> dict:
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
        out = {"keypoints_2d": norm_to_px(uvd[:, :NUM_JOINTS, :2].float(), self.input_size),
               "uvd": uvd, "uvd_stages": torch.stack(stage_uvd)}
        if self.lift == "perspective" and K is not None:
            # release: data/dataset.py, FreiHAND.evaluate (d * depth_box + root depth, uvd2xyz with K)
            xyz, z_root = perspective_lift(uvd.float(), K.float(), self.input_size, self.depth_unit, root_depth,
                                           self.bones)
            out.update(root=xyz[:, 0], root_depth=z_root)
            xyz = xyz - xyz[:, :1]
        else:
            xyz, out["scale"] = weak_perspective_lift(uvd.float(), self.bones, depth_unit=self.depth_unit)
        out.update(vertices=xyz[:, NUM_JOINTS:], keypoints_3d=xyz[:, :NUM_JOINTS])
        return out

    def loss_terms(self, pred: dict, batch: dict) -> dict:
        from finetune.mesh.losses import edge_length_loss, normal_loss

        # release: data/dataset.py, FreiHAND.__getitem__ (d = (z - z_wrist) / depth_box)
        target, weight = uvd_targets(batch, self.input_size, depth_unit=self.depth_unit)
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
