"""The camera-space model of seed 002 (Li, Chan, Zhou: "3D Hand Mesh Recovery from Monocular RGB in
Camera Space"; sections 3-5, Figs. 1-5, Tables 1-2). First public implementation.

    image (B, 3, S, S) in [0, 1] (the encoder normalises with ImageNet statistics)
      -> ResNet (pretrain.encoders: resnet18 / resnet50), skips S/2 .. S/32
      -> hourglass decoder (top-down, additive skips) -> high-resolution map T (B, C_t, S/2, S/2)
      2D feature aggregation (section 3.1, equation 1):
         T^d = max pooling of T to h_e x w_e = S/8;  interpolation(T) = bilinear down-sampling of T
         T^p = Theta(T^d * interpolation(T))  (Theta: 3x3 conv-BN-ReLU, then a 1x1 conv to 21 channels)
         2D pose: each of the 21 channels flattened, MLP (h_e w_e) -> 32 -> ReLU -> 2 (relay supervision)
      root-relative mesh (section 3.2): residual network on [interpolation(T), T^p] -> T^a (256)
         -> Inception Graph Network (finetune/models/csr_graph.py) -> 778 vertices
      root depth (section 3.3): adaptive depth bins with global & local attention on T and T^p
         (finetune/models/depth_bins.py) -> normalised depths of the 21 keypoints
      -> outputs (below); with the camera K: the root in the camera frame

forward(images, K=None) returns the contract of finetune/models/__init__.py (`vertices` (B, 778, 3),
`keypoints_3d` (B, 21, 3) root-relative metres, `keypoints_2d` (B, 21, 2) crop pixels) and

| key | shape | meaning |
| --- | --- | --- |
| positions | (B, 21, 2) | 2D keypoints in normalised crop coordinates (2u + 1) / S - 1 |
| heatmaps | (B, 21, S/8, S/8) | T^p, the implicit heatmaps |
| depth_norm | (B, 21) | keypoint depths, normalised: d_hat = S d / sqrt(fx fy) (metres at focal length S px) |
| root_depth_norm | (B,) | depth_norm of the root (wrist) |
| bin_widths, bin_centres | (B, N) | equations 2-3 (centres in normalised depth) |
| bin_probs | (B, 21, N) | the bin confidences p of equation 4 |
| depth | (B, 21) | with K only: keypoint depths in metres (the inverse normalisation with K) |
| root | (B, 3) | with K only: the wrist in the camera frame, metres: X = z K^-1 (u, v, 1) |

`root` is the wrist's predicted 2D position (u, v) back-projected through K at its predicted depth z;
the camera-space mesh is `vertices + root[:, None]` (and the keypoints alike). `needs_camera = True`
tells the fine-tuning task and the evaluation to pass the batch's K (finetune.models.base.run_model).
The ONNX graph (K = None) has the normalised depth only.

Size at 128 px (pretrain.complexity): csr_resnet18 18.80M parameters / 1236.6M Mult-Adds, csr_resnet50
31.84M / 2048.2M (the encoder 11.18M / 592.2M resp. 23.51M / 1334.6M of it; the graph network 3.45M /
88.7M, of which the FC is 3.2M; the depth-bin net 1.71M / 135.1M). The paper's recipe (section 5.1:
Adam 1e-4, /10 at epoch 40, 50 epochs, batch 32, 224 px) is its row of hands/recipes.py, the default of
`hands finetune --model csr_resnet18`.

Losses (section 4, equation 5; `loss_terms`). Each term is returned already multiplied by the paper's
weight of section 5.1 (the `loss_weights` setting; PAPER_WEIGHTS below), so the task's `weights`
(default 1 each) multiply on top and the plain sum is equation 5:

| term | weight | what |
| --- | --- | --- |
| pose2d | 1 | L1 of the 2D keypoints (normalised crop coordinates), visible keypoints (eq. 6) |
| depth | 10 | scale-invariant log loss of the 21 keypoint depths (eq. 7, lambda = 0.85) |
| bins | 10 | bi-directional Chamfer between bin centres and ground-truth keypoint depths (eq. 8) |
| mesh | 1 | L1 of the root-relative vertices, 0.2 m units (eq. 9) |
| pose3d | 1 | L1 of the keypoints regressed from the vertices, 0.2 m units (eq. 9) |
| normal | 0.1 | normal loss (eq. 10) |
| edge | 1 | edge-length loss (eq. 11) |
| heatmap | 1 | only with `implicit_heatmap=False`: Gaussian-heatmap MSE on T^p (x 100, as MobRecon's) |

Settings (Table 2's ablation switches and the sizes the paper leaves open):

- `implicit_heatmap` (default True): T^p gets no heatmap loss; False adds the `heatmap` term (Table 2,
  "w/o Implicit Heatmap": the heatmap as part of the relay supervision). `heatmap_loss` says the same
  from the loss's side (heatmap_loss=True is implicit_heatmap=False); giving both, contradicting, is
  an error.
- `inception` (default True): Inception Graph Blocks; False: plain fixed-order Chebyshev blocks.
- `gl_attention` (default True): global & local attention; False: the AdaBins-like global-only
  bins of Table 2's comparison (depth_bins.py).
- `encoder` (resnet18 | resnet50 | any plain ResNet), `input_size` (128; the paper's 224 works),
  `hand_model`, `pretrained_encoder` (a `hands pretrain` file; the paper initialises Kaiming-normal).
- Sizes: `high_channels` C_t = 64, `decoder_widths` (256, 128, 64) at S/16, S/8, S/4 (then C_t at
  S/2), `latent` D_a = 256, `graph_channels` (64, 64, 32), `hops` (1, 2, 3), `plain_hops` 2,
  `bins` N = 64, `queries` 32, `patch_size` 8, `embed` 128, `depth_range` (0.05, 0.6),
  `heatmap_sigma` 1.0 (heatmap pixels), `loss_weights`.

Reading of the unclear details (besides those in csr_graph.py and depth_bins.py):

- "multi-layer Hourglass network" on a ResNet: the encoder is the hourglass' down path and a
  top-down path with additive skips (Newell et al.'s merge) brings it to S/2: at each of S/16, S/8,
  S/4, S/2, bilinear x2 of the coarser map plus a 1x1 conv-BN of the encoder's skip of that size,
  then a 3x3 conv-BN-ReLU. The paper's h_t = H/2.
- h_e (the size of T^p) is not given: S/8 (16 at 128 px, 28 at 224), the resolution of MobRecon's
  MapReg [29] that this hybrid of implicit heatmaps and regression follows; the max pooling and the
  bilinear down-sampling of equation 1 both go from S/2 to S/8 (4 x 4 windows; bilinear without
  anti-aliasing, as torch's and ONNX's resize). Theta is a 3x3 conv-BN-ReLU followed by the 1x1
  conv "that aligns the feature channel dimensions with the number of joints".
- The 2D MLP is shared by the 21 joints (MobRecon's MapReg layout) and regresses normalised crop
  coordinates; the L1 of equation 6 is taken in those units (CMR / MobRecon scale 2D targets by the
  crop size), not in pixels, which would outweigh every other term by two orders of magnitude.
- "The residual network first converts the high-resolution feature T along with the learned 2D
  features T^l into latent feature vectors T^a" (after Ge et al. [4]): T^l = T^p; the input is
  [interpolation(T), T^p] at S/8, two ResNet basic blocks with stride 2 (C_t + 21 -> 128 -> 256),
  global average pooling: D_a = 256.
- Mesh outputs in the project's decoder units (0.2 m), minus the regressed wrist (as every model
  here): vertices and keypoints are root-relative to the wrist keypoint, so the camera-space
  root is the wrist keypoint's position.
- The root: the depth of keypoint 0 from the bins (converted back with K) and its 2D position from
  the 2D head. The other 20 keypoint depths are supervised (equations 7-8) but not used at output.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import NUM_JOINTS, VERTEX_SCALE, MeshModel
from .csr_graph import DEFAULT_CHANNELS, DEFAULT_HOPS, InceptionGraphNet
from .depth_bins import (DEFAULT_RANGE, DepthBinNet, chamfer_loss, metric_depth, normalised_depth,
                         silog_loss)
from .mobrecon import build_encoder_for

PAPER_WEIGHTS = {"pose2d": 1.0, "depth": 10.0, "bins": 10.0, "mesh": 1.0, "pose3d": 1.0, "normal": 0.1,
                 "edge": 1.0, "heatmap": 1.0}
DECODER_WIDTHS = (256, 128, 64)


def implicit_heatmap_setting(implicit_heatmap=None, heatmap_loss=None) -> bool:
    """The one switch behind the two spellings: implicit (no heatmap loss) unless told otherwise."""
    if implicit_heatmap is None and heatmap_loss is None:
        return True
    if implicit_heatmap is None:
        return not bool(heatmap_loss)
    if heatmap_loss is not None and bool(heatmap_loss) == bool(implicit_heatmap):
        raise ValueError(f"implicit_heatmap={implicit_heatmap} and heatmap_loss={heatmap_loss} contradict each "
                         f"other: the implicit heatmap is the one without a heatmap loss")
    return bool(implicit_heatmap)


def _conv_bn(c_in: int, c_out: int, kernel: int, relu: bool) -> nn.Sequential:
    from pretrain.encoders.layers import conv_bn_act

    return conv_bn_act(c_in, c_out, kernel, act="relu" if relu else None)


class HourglassDecoder(nn.Module):
    """Top-down path from the S/32 skip to S/2 with additive 1x1 skips (see the module docstring)."""

    def __init__(self, skip_channels, widths=DECODER_WIDTHS, out_channels: int = 64):
        super().__init__()
        skip_channels = [int(c) for c in skip_channels]
        if len(skip_channels) != 5:
            raise ValueError(f"the hourglass decoder needs the encoder's 5 skips (S/2 .. S/32), got "
                             f"{len(skip_channels)} widths")
        widths = [int(w) for w in widths] + [int(out_channels)]      # after the S/16, S/8, S/4, S/2 steps
        if len(widths) != 4:
            raise ValueError(f"decoder_widths needs 3 widths (S/16, S/8, S/4), got {len(widths) - 1}")
        self.top = _conv_bn(skip_channels[4], widths[0], 1, relu=True)
        self.laterals, self.convs = nn.ModuleList(), nn.ModuleList()
        width = widths[0]
        for i, level in enumerate((3, 2, 1, 0)):
            self.laterals.append(_conv_bn(skip_channels[level], width, 1, relu=False))
            self.convs.append(_conv_bn(width, widths[i], 3, relu=True))
            width = widths[i]
        self.out_channels = width

    def forward(self, skips) -> torch.Tensor:
        x = self.top(skips[4])
        for lateral, conv, level in zip(self.laterals, self.convs, (3, 2, 1, 0)):
            skip = skips[level]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False) + lateral(skip)
            x = conv(x)
        return x


class PoseAggregation(nn.Module):
    """Equation 1 (pose pooling to T^p) and the 2D MLP ((h_e w_e) -> hidden -> 2, shared by the joints)."""

    def __init__(self, channels: int, map_size: int, joints: int = NUM_JOINTS, hidden: int = 32):
        super().__init__()
        self.map_size = int(map_size)
        self.theta = nn.Sequential(_conv_bn(channels, channels, 3, relu=True), nn.Conv2d(channels, joints, 1))
        self.mlp = nn.Sequential(nn.Linear(self.map_size ** 2, int(hidden)), nn.ReLU(inplace=True),
                                 nn.Linear(int(hidden), 2))

    def forward(self, high: torch.Tensor) -> tuple:
        h, m = int(high.shape[-1]), self.map_size
        if h % m:
            raise ValueError(f"the high-resolution map ({h}) must be a multiple of the pose map ({m})")
        factor = h // m
        pooled = F.max_pool2d(high, factor)                                          # T^d
        small = F.interpolate(high, size=(m, m), mode="bilinear", align_corners=False)   # interpolation(T)
        maps = self.theta(pooled * small)                                            # T^p (B, 21, m, m)
        return self.mlp(maps.flatten(2)), maps, small


class LatentNet(nn.Module):
    """The residual network of section 3.2: [interpolation(T), T^p] -> T^a (two strided basic blocks, mean)."""

    def __init__(self, c_in: int, widths=(128, 256)):
        super().__init__()
        from pretrain.encoders.resnet import BasicBlock

        blocks, width = [], int(c_in)
        for w in widths:
            blocks.append(BasicBlock(width, int(w), stride=2))
            width = int(w)
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).mean(dim=(2, 3))


def back_project(uv: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(B, 3) camera-frame points at planar depth `depth` (B,) seen at pixels uv (B, 2) through K (B, 3, 3)."""
    ones = torch.ones_like(uv[:, :1])
    ray = torch.linalg.solve(K.to(uv.dtype), torch.cat([uv, ones], dim=-1).unsqueeze(-1)).squeeze(-1)
    return ray / ray[:, 2:3] * depth.unsqueeze(-1)


class CSR(MeshModel):
    """The camera-space model (see the module docstring for the structure, outputs, losses and settings)."""

    needs_camera = True

    def __init__(self, encoder: str = "resnet18", input_size: int = 128, hand_model="openhand",
                 pretrained_encoder=None, implicit_heatmap=None, heatmap_loss=None, inception: bool = True,
                 gl_attention: bool = True, high_channels: int = 64, decoder_widths=DECODER_WIDTHS,
                 latent: int = 256, graph_channels=DEFAULT_CHANNELS, hops=DEFAULT_HOPS, plain_hops: int = 2,
                 bins: int = 64, queries: int = 32, patch_size: int = 8, embed: int = 128,
                 depth_range=DEFAULT_RANGE, heatmap_sigma: float = 1.0, mlp_hidden: int = 32, loss_weights=None):
        super().__init__(hand_model, input_size)
        if self.input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {self.input_size}")
        self.implicit_heatmap = implicit_heatmap_setting(implicit_heatmap, heatmap_loss)
        self.heatmap_sigma = float(heatmap_sigma)
        unknown = sorted(set(loss_weights or {}) - set(PAPER_WEIGHTS))
        if unknown:
            raise ValueError(f"loss_weights: unknown term(s) {unknown}; terms: {sorted(PAPER_WEIGHTS)}")
        self.loss_weights = {**PAPER_WEIGHTS, **{k: float(v) for k, v in (loss_weights or {}).items()}}

        self.encoder = build_encoder_for(encoder, self.input_size, pretrained_encoder)
        skips = tuple(getattr(self.encoder, "skip_channels", ()))
        self.hourglass = HourglassDecoder(skips, decoder_widths, high_channels)
        c_t = self.hourglass.out_channels
        self.pose_map_size = self.input_size // 8
        self.aggregation = PoseAggregation(c_t, self.pose_map_size, NUM_JOINTS, mlp_hidden)
        self.latent_net = LatentNet(c_t + NUM_JOINTS, (latent // 2, latent))
        self.graph = InceptionGraphNet(self.mesh_hierarchy(), self.latent_net.out_channels, graph_channels,
                                       inception=inception, hops=hops, plain_hops=plain_hops)
        self.depth = DepthBinNet(c_t, NUM_JOINTS, self.input_size // 2, embed, patch_size, queries, bins,
                                 depth_range, gl_attention)

    # ------------------------------------------------------------ forward

    def forward(self, images: torch.Tensor, K: torch.Tensor | None = None) -> dict:
        from pretrain.task2d import norm_to_px

        feats = self.encoder(images)
        high = self.hourglass(feats.skips)                                           # T (B, C_t, S/2, S/2)
        positions, pose_maps, small = self.aggregation(high)
        latent = self.latent_net(torch.cat([small, pose_maps], dim=1))               # T^a
        depth = self.depth(high, pose_maps)
        extra = {"positions": positions, "heatmaps": pose_maps, **depth,
                 "root_depth_norm": depth["depth_norm"][:, 0]}
        out = self.mesh_outputs(self.graph(latent), extra, norm_to_px(positions.float(), self.input_size))
        if K is not None:
            out.update(self.camera_outputs(out, K))
        return out

    def camera_outputs(self, pred: dict, K: torch.Tensor) -> dict:
        """`depth` (B, 21) metres and `root` (B, 3) camera frame from a prediction and the crop's K."""
        K = K.to(pred["depth_norm"].dtype)
        depth = metric_depth(pred["depth_norm"], K, self.input_size)
        return {"depth": depth, "root": back_project(pred["keypoints_2d"][:, 0].to(depth.dtype), depth[:, 0], K)}

    # ------------------------------------------------------------ losses

    def loss_terms(self, pred: dict, batch: dict) -> dict:
        """Equation 5's terms, each multiplied by its weight of section 5.1 (`loss_weights`)."""
        from finetune.mesh.losses import edge_length_loss, normal_loss
        from pretrain.task2d import gaussian_heatmaps, px_to_norm

        S, w = self.input_size, self.loss_weights
        valid = batch["mesh_valid"].float()
        n_mesh = valid.sum().clamp(min=1.0)
        gt_v = batch["vertices_rel"].float() / VERTEX_SCALE
        pr_v = pred["vertices"].float() / VERTEX_SCALE
        terms = {"mesh": ((pr_v - gt_v).abs().mean(dim=(1, 2)) * valid).sum() / n_mesh,
                 "normal": normal_loss(pr_v, gt_v, self.faces, valid=valid),
                 "edge": edge_length_loss(pr_v, gt_v, self.faces, valid=valid)}
        kp3d = batch["keypoints_3d"].float()
        kp_valid = (kp3d[..., 2] > 0).float()                                        # (B, 21) labelled keypoints
        err3d = (pred["keypoints_3d"].float() - batch["keypoints_3d_rel"].float()).abs() / VERTEX_SCALE
        terms["pose3d"] = (err3d * kp_valid.unsqueeze(-1)).sum() / (3 * kp_valid.sum()).clamp(min=1.0)
        vis = batch["keypoints_2d_valid"].float().unsqueeze(-1)
        err2d = (pred["positions"].float() - px_to_norm(batch["keypoints_2d"].float(), S)).abs() * vis
        terms["pose2d"] = err2d.sum() / (2 * vis.sum()).clamp(min=1.0)
        gt_depth = normalised_depth(kp3d[..., 2], batch["K"].float(), S)
        lo, hi = self.depth.range
        terms["depth"] = silog_loss(pred["depth_norm"].float(), gt_depth, kp_valid)
        terms["bins"] = chamfer_loss(pred["bin_centres"].float(), gt_depth, kp_valid, scale=hi - lo)
        if not self.implicit_heatmap:
            hm = pred["heatmaps"].float()
            target = gaussian_heatmaps(batch["keypoints_2d"].float(), S, hm.shape[-1], self.heatmap_sigma)
            err = (hm - target) ** 2 * vis.unsqueeze(-1)
            terms["heatmap"] = 100.0 * err.sum() / (vis.sum() * hm.shape[-1] * hm.shape[-2]).clamp(min=1.0)
        return {k: v * w[k] for k, v in terms.items()}


def csr_resnet18(**kw):
    return CSR(encoder="resnet18", **kw)


def csr_resnet50(**kw):
    return CSR(encoder="resnet50", **kw)
