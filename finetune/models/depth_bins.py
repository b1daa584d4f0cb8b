"""Root depth by adaptive bins (seed 002, section 3.3, equations 2-4, Fig. 5) and its losses (equations 7-8).

Arithmetic (plain functions, unit-tested):

    normalised_depth(d, K, S)   d_hat = S d / sqrt(fx fy)                    (the paper's d / sqrt(fx fy), times S)
    metric_depth(d_hat, K, S)   the inverse
    bin_widths(y, eps)          b_i = (relu(y_i) + eps) / sum_j (relu(y_j) + eps)           (equation 2)
    bin_centres(b, lo, hi)      c_i = lo + (hi - lo) (b_i / 2 + sum_{j<i} b_j)              (equation 3)
    expected_depth(p, c)        d_hat = sum_i c_i p_i                                       (equation 4)
    silog_loss(pred, gt, ...)   sqrt(mean g^2 - lam (mean g)^2), g = log pred - log gt      (equation 7)
    chamfer_loss(c, x, ...)     chamfer(X, c) + chamfer(c, X)                               (equation 8)

Module `DepthBinNet` (Fig. 5): from the high-resolution map T (B, C_t, S/2, S/2) and the
pose-aligned features T^p (B, 21, h_e, w_e) to bin widths, centres, per-keypoint bin confidences
and normalised keypoint depths:

    T_d   = 1x1 conv(T)   -> E channels          (decoded high-resolution feature)
    T^p_d = 1x1 conv(T^p) -> E channels          (decoded pose-aligned feature)
    patch embedding: s x s conv, stride s, on T_d -> (h_t/s x w_t/s) tokens of S_E = E
    Conv Block (3x3 conv-BN-ReLU, 3x3 conv-BN, + global context, + identity, ReLU) -> L tokens
    C_query = the first N_query tokens
    Regressor Block: 1-D convolutions (kernel 1) over C_query, mean over the queries -> y (N)
    widths, centres (equations 2-3)
    G&L attention: keys, values = two 1x1 convs of T^p_d (h_e w_e tokens); query = C_query;
                   A = C_query + softmax(C_query K^T / sqrt(E)) V       (residual learning)
    head: 1-D conv + LeakyReLU over A, adaptive average pooling over the queries, linear to 21 x N
    p = softmax over the N bins per keypoint; d_hat_j = sum_i c_i p_ji (equation 4)

With `gl_attention=False` (Table 2's comparison, "similar to AdaBins ... solely global"): no
pose-aligned key/value; the range-attention maps are the dot products of the queries with a
3x3 convolutional encoding of T_d at every pixel (h_t x w_t), the bin widths come from the
query sequence's head token only, and the same head (1x1 conv + LeakyReLU, average pooling,
linear) turns the N_query maps into bin logits.

Reading of the unclear details (the paper has no code or figure text to settle them):

- Normalisation. d_hat = d / sqrt(fx fy) as the paper, multiplied by the crop size S so the
  unit is "metres at a focal length of S pixels" (about 0.1-0.4 for a hand filling 2/3 of a
  crop) and the same range fits any input size. sqrt(fx fy) is taken as sqrt(|det K[:2, :2]|),
  which equals sqrt(fx fy) for an upper-triangular K and stays the right focal scale for the
  slightly skewed K that rotation augmentation makes (finetune/augment.py: K' = A K R^T).
  log-ratios (the SI loss) do not depend on the normalisation. The range (d_hat_min, d_hat_max)
  is a setting (`depth_range`, default (0.05, 0.6)): "estimated according to [26]" gives no
  numbers; the default holds every hand of the project's crop rule (box x 1.5) from fist-on to
  flat-on views with margin.
- Equation 2 as printed, (y'_i + eps) / (sum_j y'_j + eps), does not sum to 1; the AdaBins
  form it cites, (y'_i + eps) / sum_j (y'_j + eps) with y' = relu(y) and eps = 0.1, does, and is
  used.
- Depth per keypoint. Equation 7 sums over "hand key points with valid ground truth depth" and
  the Chamfer loss compares the bin centres with "the set of all depth values in the ground
  truth", so the head predicts bin confidences for each of the 21 keypoints over shared bins
  ("aligned with the channels of the root node index and N depth bin centers"): 21 normalised
  depths; the root (wrist, index 0) depth is the camera-space output. X of equation 8 is the set
  of the 21 ground-truth keypoint depths of the sample (normalised), so the bins gather over the
  hand's depth extent.
- SI loss: the scaled version of [36] (BTS) with lambda = 0.85; its scale alpha = 10 is the
  weight lambda_d = 10 of section 5.1. Per sample over its valid keypoints, then averaged over
  the batch; the square root is taken of max(D, 1e-12) (D is 0 only for a perfect prediction).
- Chamfer: squared distances (Fan et al. [37]), each direction the mean over its points, in
  units of the normalised range (d_hat / (d_hat_max - d_hat_min)), averaged over the batch.
- C_query "contains global hierarchical information of depth for each image": a stack of 3x3
  convolutions alone gives the first tokens (the top rows of the patch grid) a local view, so
  the Conv Block adds a global-context term (a 1x1 conv of the tokens' mean, added to every
  token) before the residual sum.
- Sizes (none given): E = S_E = 128, patch s = 8 (8 x 8 tokens at 128 px input, 14 x 14 at 224),
  N_query = 32, N = 64 bins, regressor width 256. Queries enter the attention unprojected (the
  paper projects only keys and values).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NUM_JOINTS = 21
BIN_EPS = 0.1            # AdaBins' eps of equation 2
SILOG_LAMBDA = 0.85      # BTS [36] / AdaBins
DEFAULT_RANGE = (0.05, 0.6)


# ---------------------------------------------------------------- arithmetic

def focal_scale(K: torch.Tensor) -> torch.Tensor:
    """(B,) sqrt(|det K[:2, :2]|): sqrt(fx fy) for an upper-triangular K."""
    k = K[..., :2, :2]
    return (k[..., 0, 0] * k[..., 1, 1] - k[..., 0, 1] * k[..., 1, 0]).abs().sqrt()


def normalised_depth(depth: torch.Tensor, K: torch.Tensor, size: int) -> torch.Tensor:
    """d_hat = S d / sqrt(fx fy); depth (B, ...) metres, K (B, 3, 3)."""
    f = focal_scale(K).to(depth.dtype)
    return depth * float(size) / f.reshape((-1,) + (1,) * (depth.dim() - 1))


def metric_depth(depth_norm: torch.Tensor, K: torch.Tensor, size: int) -> torch.Tensor:
    """The inverse of `normalised_depth`: metres."""
    f = focal_scale(K).to(depth_norm.dtype)
    return depth_norm * f.reshape((-1,) + (1,) * (depth_norm.dim() - 1)) / float(size)


def bin_widths(y: torch.Tensor, eps: float = BIN_EPS) -> torch.Tensor:
    """Equation 2 (AdaBins' normalisation): (B, N) raw outputs -> widths, each > 0, summing to 1."""
    if eps <= 0:
        raise ValueError(f"bin eps must be > 0 (it keeps every width positive), got {eps}")
    y = torch.relu(y) + eps
    return y / y.sum(dim=-1, keepdim=True)


def bin_centres(widths: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Equation 3: c_i = lo + (hi - lo) (b_i / 2 + sum_{j<i} b_j), strictly inside (lo, hi)."""
    if not hi > lo:
        raise ValueError(f"depth range must have hi > lo, got ({lo}, {hi})")
    before = torch.cumsum(widths, dim=-1) - widths
    return lo + (hi - lo) * (before + 0.5 * widths)


def expected_depth(probs: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Equation 4: probs (B, J, N) over bins, centres (B, N) -> (B, J) depths sum_i c_i p_i."""
    return (probs * centres.unsqueeze(1)).sum(-1)


def silog_loss(pred: torch.Tensor, gt: torch.Tensor, valid=None, lam: float = SILOG_LAMBDA) -> torch.Tensor:
    """Equation 7 per sample over its valid points (B, N), averaged over samples with any valid point.

    sqrt(1/n sum g_i^2 - lam / n^2 (sum g_i)^2), g = log pred - log gt (both > 0 where valid).
    """
    if pred.shape != gt.shape or pred.dim() != 2:
        raise ValueError(f"silog_loss: pred and gt must both be (B, N), got {tuple(pred.shape)}, {tuple(gt.shape)}")
    w = torch.ones_like(gt) if valid is None else valid.to(gt.dtype)
    w = w * (gt > 0).to(gt.dtype)
    safe_gt = torch.where(w > 0, gt, torch.ones_like(gt))
    safe_pred = torch.where(w > 0, pred, torch.ones_like(pred)).clamp_min(1e-12)
    g = (safe_pred.log() - safe_gt.log()) * w
    n = w.sum(-1)
    has = n > 0
    n1 = n.clamp_min(1.0)
    d = (g ** 2).sum(-1) / n1 - lam * (g.sum(-1) / n1) ** 2
    per_sample = d.clamp_min(1e-12).sqrt() * has.to(d.dtype)
    return per_sample.sum() / has.sum().clamp_min(1).to(d.dtype)


def chamfer_loss(centres: torch.Tensor, points: torch.Tensor, valid=None, scale: float = 1.0) -> torch.Tensor:
    """Equation 8: bi-directional Chamfer (squared distances, mean per direction) between the bin centres
    (B, N) and the ground-truth depths (B, M) (invalid ones left out), divided by `scale`; batch mean over
    samples with any valid depth."""
    if centres.dim() != 2 or points.dim() != 2 or centres.shape[0] != points.shape[0]:
        raise ValueError(f"chamfer_loss: (B, N) centres and (B, M) points, got {tuple(centres.shape)}, "
                         f"{tuple(points.shape)}")
    w = torch.ones_like(points) if valid is None else valid.to(points.dtype)
    d2 = ((centres.unsqueeze(2) - points.unsqueeze(1)) / scale) ** 2            # (B, N, M)
    masked = torch.where(w.unsqueeze(1) > 0, d2, torch.full_like(d2, 1e12))        # invalid points: never nearest
    c_to_x = masked.amin(dim=2).mean(dim=1)                                      # each centre to its nearest point
    x_to_c = (d2.amin(dim=1) * w).sum(1) / w.sum(1).clamp_min(1.0)               # each valid point to a centre
    has = w.sum(1) > 0
    per_sample = torch.where(has, c_to_x + x_to_c, torch.zeros_like(c_to_x))
    return per_sample.sum() / has.sum().clamp_min(1).to(per_sample.dtype)


# ---------------------------------------------------------------- modules

class ConvBlock(nn.Module):
    """3x3 conv-BN-ReLU, 3x3 conv-BN, plus a global-context term and the identity, ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.context = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        g = self.context(x.mean(dim=(2, 3), keepdim=True))
        return F.relu(x + y + g)


class Regressor(nn.Module):
    """Regressor Block: 1-D convolutions (kernel 1) over the query tokens, mean over them -> y (B, N)."""

    def __init__(self, channels: int, bins: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.LeakyReLU(inplace=True),
                                 nn.Conv1d(hidden, hidden, 1), nn.LeakyReLU(inplace=True),
                                 nn.Conv1d(hidden, bins, 1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:          # (B, n, C)
        return self.net(tokens.transpose(1, 2)).mean(dim=2)


class BinHead(nn.Module):
    """A pointwise conv + LeakyReLU on the attention output, adaptive average pooling, a linear map to
    (joints x bins) logits."""

    def __init__(self, channels: int, hidden: int, joints: int, bins: int):
        super().__init__()
        self.joints, self.bins = joints, bins
        self.pointwise = nn.Conv1d(channels, hidden, 1)
        self.out = nn.Linear(hidden, joints * bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:               # (B, C, L)
        h = F.leaky_relu(self.pointwise(x)).mean(dim=2)
        return self.out(h).view(-1, self.joints, self.bins)


class DepthBinNet(nn.Module):
    """Fig. 5: adaptive depth bins with global & local attention (see the module docstring)."""

    def __init__(self, high_channels: int, pose_channels: int = NUM_JOINTS, high_size: int = 64, embed: int = 128,
                 patch_size: int = 8, queries: int = 32, bins: int = 64, depth_range=DEFAULT_RANGE,
                 gl_attention: bool = True, regressor_hidden: int = 256, joints: int = NUM_JOINTS,
                 eps: float = BIN_EPS):
        super().__init__()
        lo, hi = (float(v) for v in depth_range)
        if not 0 < lo < hi:
            raise ValueError(f"depth_range must be (lo, hi) with 0 < lo < hi (normalised depth, metres at a "
                             f"focal length of S px), got {tuple(depth_range)}")
        if high_size % patch_size:
            raise ValueError(f"patch_size {patch_size} must divide the high-resolution map's size {high_size}")
        tokens = (high_size // patch_size) ** 2
        if not 1 <= queries <= tokens:
            raise ValueError(f"queries must be in 1..{tokens} (the patch tokens of a {high_size}^2 map with "
                             f"patch {patch_size}), got {queries}")
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        self.range = (lo, hi)
        self.eps, self.queries, self.bins, self.joints = float(eps), int(queries), int(bins), int(joints)
        self.gl_attention = bool(gl_attention)
        self.decode_high = nn.Conv2d(high_channels, embed, 1)
        self.embed = nn.Conv2d(embed, embed, patch_size, stride=patch_size)
        self.conv_block = ConvBlock(embed)
        self.regressor = Regressor(embed, bins, regressor_hidden)
        if self.gl_attention:
            self.decode_pose = nn.Conv2d(pose_channels, embed, 1)
            self.key = nn.Conv2d(embed, embed, 1)
            self.value = nn.Conv2d(embed, embed, 1)
            self.head = BinHead(embed, embed, joints, bins)
        else:
            self.global_key = nn.Conv2d(embed, embed, 3, padding=1)
            self.head = BinHead(self.queries, embed, joints, bins)
        self.scale = 1.0 / math.sqrt(embed)

    def forward(self, high: torch.Tensor, pose: torch.Tensor) -> dict:
        t_d = self.decode_high(high)                                        # (B, E, h_t, w_t)
        tok = self.conv_block(self.embed(t_d)).flatten(2).transpose(1, 2)   # (B, L, E)
        query = tok[:, :self.queries]                                       # C_query (B, Nq, E)
        lo, hi = self.range
        if self.gl_attention:
            y = self.regressor(query)
            p_d = self.decode_pose(pose)                                    # T^p_d (B, E, h_e, w_e)
            key = self.key(p_d).flatten(2)                                  # (B, E, h_e w_e)
            value = self.value(p_d).flatten(2).transpose(1, 2)              # (B, h_e w_e, E)
            attn = torch.softmax(torch.matmul(query, key) * self.scale, dim=-1)
            a = query + torch.matmul(attn, value)                           # residual learning
            logits = self.head(a.transpose(1, 2))
        else:
            y = self.regressor(query[:, :1])                                # the head token
            key = self.global_key(t_d).flatten(2)                           # (B, E, h_t w_t)
            ranges = torch.matmul(query, key) * self.scale                  # range-attention maps (B, Nq, h_t w_t)
            logits = self.head(ranges)
        widths = bin_widths(y, self.eps)
        centres = bin_centres(widths, lo, hi)
        probs = torch.softmax(logits, dim=-1)
        return {"bin_widths": widths, "bin_centres": centres, "bin_probs": probs,
                "depth_norm": expected_depth(probs, centres)}
