"""SAR-Head (Sun et al., "SMR: Spatial-Guided Model-Based Regression for 3D Hand Pose and Mesh
Reconstruction", TCSVT 2023; seed 000): SAIGB -> GBBMR (adaptive GCN) -> 2.5D belief maps -> uvd.

    features (B, C, h, w)                                   (CNN features, e.g. ResNet layer4)
      -> SAIGB: 1x1 conv C -> N * M, LeakyReLU(0.1); keypoint n gets channels [n M, (n + 1) M), each
         flattened (h w values), joined with its template coordinates: initial graph (B, N, M h w + 3)
      -> GBBMR: two adaptive-GCN branches, each AGC(in -> H), LeakyReLU(0.1), Dropout, AGC(H -> S^2):
         uv branch -> heatmap logits (B, N, S, S); depth branch -> depth maps (B, N, S, S)
      -> decoding: p = softmax(beta_n * logits) over the S x S pixels; (u, v) = E_p[pixel centre]
         (soft-argmax), d = E_p[depth map] (expectation of the depth map under the same p)
      -> uvd (B, N, 3): u, v in normalised crop coordinates, d in the depth unit of the target

`SARHead(N, S, ...)` is that whole head; SAR uses it with N = 799 (by default 778 graph nodes and
21 mapped ones, see Graphs), S = 32, SMR with N = 21, S = 8 and N = 21, S = 32. Graphs:
`skeleton_adjacency()` (the 21 keypoints), `hand_mesh_adjacency(...)` (799 keypoints),
`vertex_adjacency(...)` (778 vertices), `kinematic_adjacency(parents)` (MANO's 16 joints, used by
SMR's SAPR-Head).

Reading of the unclear details (and where it follows the authors' SAR release, github.com/zxz267/SAR):

- SAIGB. "Every keypoint gets its own set of feature maps from the CNN features": one 1x1 conv
  from the C backbone channels to N x M maps (M = `maps_per_node`, 8 as in the release) and a
  LeakyReLU(0.1), as the release does; keypoint n owns M maps of the h x w grid, flattened to
  M h w numbers (spatial layout kept, nothing pooled: the "spatial-aware" part), then joined with
  its template coordinates (3 numbers). This keeps memory sane for N = 799: the projection is one
  conv to N M = 6392 small maps (at 128 px input the layer4 grid is 4 x 4: 102K values per image),
  never N copies of the C-channel backbone stack.
- Template coordinates: the hand model's rest-pose (template) positions of the nodes, root
  relative (minus the wrist keypoint) and in VERTEX_SCALE (0.2 m) units; keypoints are the joint
  regressor applied to the template. Nodes without a position (SMR's shape / camera nodes) get 0.
  (The release feeds MANO's raw v_template, metres in MANO's own frame; root-relative units keep
  the input the same for any hand model's frame.)
- Adaptive GCN (`AdaptiveGraphConv`): out = FC(A_hat X) with a dense learnable N x N matrix.
  Two normalisations (`init`, `adjacency_init` of the models):
    'release' (SAR's default): the authors' release (model.py, GraphConv): a raw learnable matrix
        `adj` started at the identity, normalised by its row sums, A_hat = A / (sum_j A_ij + 1e-5)
        (no abs, no relu: an entry may turn negative, the rows still sum to 1 up to the 1e-5);
        the graph is not used (only its size), every entry is learnable. Adam moves each of the
        N^2 entries by about the learning rate per step, a dense perturbation of every row: on
        SAR's 40-step overfitting check (tests/test_sar_smr.py) it trained far slower than 'graph';
  or a softmax over each row of learnable `logits`, so every row is positive and sums to exactly 1
  whatever the parameters become, and every entry (on or off the graph) is learnable. The logits
  are initialised from the graph:
    'graph' (default): the lazy random walk (I + D^-1 A) / 2: the node keeps half of its own
        features, its deg neighbours share the other half (logits log(deg) on the diagonal, 0 on
        the edges);
    'mean': D^-1 (A + I), the plain neighbourhood mean (logits 0 on edges and self loops);
    'identity': the identity, the release's start (0 on the diagonal only);
  and `off_graph` (-10) everywhere else, about 0.3 % of a row's mass for N = 799 (1e-4 % for
  N = 21). Why 'graph' is the lazy walk: with the plain mean a keypoint node of the 799-node graph
  (linked to ~24 regressor vertices) keeps 1/25 of itself per layer, and SMR's SAPR-Head, whose
  per-joint outputs need per-joint features, trained markedly slower on the overfitting checks
  (one run each, SMR-ResNet18 on 6 rendered samples: PA-MPJPE after 50 steps 15.8 mm with
  'mean' vs 12.8 mm with 'graph', from 20.9 mm). 'graph' is the default of this class and of SMR;
  the softmax keeps the rows well defined when entries change sign, which the release's row sums
  do not (a row summing to ~0 blows up).
- GBBMR hidden width H: S^2 (1024 at S = 32) as in the release (`hidden` is a setting: the
  1024 x 1024 FC of each branch is most of SAR's Mult-Adds). Dropout 0.5 between the two GCN
  layers as in the release (`dropout` is a setting).
- Soft-argmax temperature: one learnable beta per keypoint (the release's grouped 1 x 1 conv),
  parameterised as exp(log_beta) so it stays positive, initialised to 1 (the release's conv
  weights start at PyTorch's default, uniform in (-1, 1), and may be negative, which turns a
  heatmap's peak into its trough).
- uv convention: belief-map pixel j of S covers the crop pixels around (j + 0.5) * input / S - 0.5,
  which in the project's normalised crop coordinates n = (2 u + 1) / input - 1 is (2 j + 1) / S - 1
  whatever the input size; the release's (j / (S / 2) - 1) is half a map pixel off that. The maps
  span the whole crop, so a keypoint outside the crop cannot be decoded beyond the outermost pixel
  centres (a property of soft-argmax).

Graphs (node order, documented because the N = 799 graph mixes two kinds of nodes):

- N = 21: the hand skeleton, keypoint i linked to `PARENTS[i]` (FreiHAND order, pretrain.data2d).
- N = 799 (SAR's nodes='paper'): nodes 0..20 are the 21 keypoints (FreiHAND order), nodes
  21..798 the 778 vertices. Edges: the 20 skeleton bones, the mesh edges of the faces, and one
  link between keypoint j and every vertex with a non-zero weight in row j of the 21 x 778 joint
  regressor (the vertices that define it: 20-24 per skinned joint of OpenHand, the tip vertex for
  a fingertip).
- N = 778 (SAR's nodes='release', `vertex_adjacency`): the mesh edges only. The release's graph
  has the 778 vertices as its nodes; the 21 keypoints' heatmap logits and depth maps are a learned
  linear map (778 -> 21, with bias) of the vertices' (`mapped_nodes` of GBBMR / SARHead). The
  decoded uvd always lists the keypoints first (the release puts the vertices first).
- MANO's 16 joints: the kinematic tree `parents` of the hand model.
The builders here return symmetric graphs without self loops (`AdaptiveGraphConv` adds those; row i of
an adjacency lists the nodes node i reads, so a one-way link is possible: SMR's SAPR graph has some).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

OFF_GRAPH_LOGIT = -10.0
ADJACENCY_INITS = ("graph", "mean", "identity", "release")
ROW_SUM_EPS = 1e-5    # release: model.py, GraphConv.laplacian (D_hat = sum(A, 1) + 1e-5)


# ---------------------------------------------------------------------------------------------- graphs

def _symmetric(n: int, edges) -> np.ndarray:
    a = np.zeros((n, n), dtype=bool)
    for i, j in edges:
        if i != j:
            a[i, j] = a[j, i] = True
    return a


def skeleton_adjacency() -> np.ndarray:
    """(21, 21) bool: the hand skeleton (bones of pretrain.data2d.PARENTS, FreiHAND order)."""
    from pretrain.data2d import PARENTS

    return _symmetric(len(PARENTS), [(i, p) for i, p in enumerate(PARENTS) if p >= 0])


def kinematic_adjacency(parents) -> np.ndarray:
    """(J, J) bool: a kinematic tree (parents[i] < 0 for the root), e.g. MANO's 16 joints."""
    parents = [int(p) for p in parents]
    return _symmetric(len(parents), [(i, p) for i, p in enumerate(parents) if p >= 0])


def mesh_edges(faces) -> np.ndarray:
    """(E, 2) unique undirected edges of a triangle mesh."""
    f = np.asarray(faces, dtype=np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)


def vertex_adjacency(faces, num_vertices: int) -> np.ndarray:
    """(V, V) bool: the mesh edges of the faces (the graph of SAR's nodes='release')."""
    a = np.zeros((int(num_vertices), int(num_vertices)), dtype=bool)
    e = mesh_edges(faces)
    a[e[:, 0], e[:, 1]] = a[e[:, 1], e[:, 0]] = True
    np.fill_diagonal(a, False)
    return a


def hand_mesh_adjacency(faces, joint_regressor) -> np.ndarray:
    """(21 + V, 21 + V) bool: skeleton + mesh edges + keypoint-vertex links (see the module doc)."""
    reg = np.asarray(joint_regressor)
    J, V = reg.shape
    a = np.zeros((J + V, J + V), dtype=bool)
    a[:J, :J] = skeleton_adjacency()
    e = mesh_edges(faces) + J
    a[e[:, 0], e[:, 1]] = a[e[:, 1], e[:, 0]] = True
    jj, vv = np.nonzero(reg != 0)
    a[jj, vv + J] = a[vv + J, jj] = True
    np.fill_diagonal(a, False)
    return a


# ---------------------------------------------------------------------------------------------- adaptive GCN

class AdaptiveGraphConv(nn.Module):
    """out = FC(A_hat @ x) with a learnable N x N matrix (see the module doc): init 'release' keeps a raw
    matrix `adj` (identity start) normalised by its row sums, the others softmax `logits` started from
    `adjacency`. x: (B, N, in_features) -> (B, N, out_features)."""

    def __init__(self, adjacency, in_features: int, out_features: int, init: str = "graph",
                 off_graph: float = OFF_GRAPH_LOGIT, bias: bool = True):
        super().__init__()
        adj = torch.as_tensor(np.asarray(adjacency), dtype=torch.bool)
        if adj.dim() != 2 or adj.shape[0] != adj.shape[1]:
            raise ValueError(f"adjacency must be a square (N, N) matrix, got {tuple(adj.shape)}")
        n = adj.shape[0]
        eye = torch.eye(n, dtype=torch.bool)
        if init not in ADJACENCY_INITS:
            raise ValueError(f"adjacency init must be one of {', '.join(ADJACENCY_INITS)}, got {init!r}")
        self.num_nodes, self.init = n, init
        if init == "release":     # release: model.py, GraphConv.__init__ (adj = eye(num_joint), learnable)
            self.adj = nn.Parameter(torch.eye(n))
        else:
            support = eye if init == "identity" else adj | eye
            logits = torch.where(support, torch.zeros(()), torch.full((), float(off_graph)))
            if init == "graph":   # lazy random walk: the node itself 1/2, each of its deg neighbours 1/(2 deg)
                deg = adj.sum(1).float()
                logits = logits + torch.diag(torch.where(deg > 0, deg.clamp_min(1).log(), torch.zeros(())))
            self.logits = nn.Parameter(logits)
        self.fc = nn.Linear(in_features, out_features, bias=bias)

    @property
    def matrix(self) -> nn.Parameter:
        """The learnable N x N parameter (`adj` or `logits`)."""
        return self.adj if self.init == "release" else self.logits

    def normalised_adjacency(self) -> torch.Tensor:
        if self.init == "release":  # release: model.py, GraphConv.laplacian: A / (row sums of A + 1e-5)
            return self.adj / (self.adj.sum(1, keepdim=True) + ROW_SUM_EPS)
        return torch.softmax(self.logits, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.matmul(self.normalised_adjacency().to(x.dtype), x))


# ---------------------------------------------------------------------------------------------- belief maps

def map_centres(size: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """(size,) normalised crop coordinates of the belief-map pixel centres: (2 j + 1) / size - 1."""
    return (2 * torch.arange(size, dtype=dtype, device=device) + 1) / size - 1


def decode_belief_maps(logits: torch.Tensor, depth: torch.Tensor, beta=None) -> tuple:
    """2.5D decoding: (uvd (B, N, 3), p (B, N, S, S)).

    p = softmax(beta * logits) over each map; (u, v) = sum p * pixel centre (normalised crop
    coordinates, x along the last axis); d = sum p * depth. beta: None (1), a number or (N,)."""
    B, N, H, W = logits.shape
    z = logits if beta is None else logits * (torch.as_tensor(beta, dtype=logits.dtype,
                                                              device=logits.device).reshape(1, -1, 1, 1))
    p = torch.softmax(z.reshape(B, N, H * W), dim=-1).reshape(B, N, H, W)
    xs = map_centres(W, p.dtype, p.device)
    ys = map_centres(H, p.dtype, p.device)
    u = (p.sum(2) * xs).sum(-1)
    v = (p.sum(3) * ys).sum(-1)
    d = (p * depth).sum(dim=(2, 3))
    return torch.stack([u, v, d], dim=-1), p


def area_resample(x: torch.Tensor, size: int, source: int | None = None) -> torch.Tensor:
    """Square maps (B, C, source, source) area-resampled to (size, size): average pooling when source is a
    multiple of size, nearest replication when size is a multiple of source (both what adaptive average
    pooling gives, and exportable to ONNX with constant kernels), adaptive average pooling otherwise.
    Pass `source` as a Python int when exporting (traced shapes are not constants)."""
    source = int(x.shape[-1] if source is None else source)
    size = int(size)
    if source == size:
        return x
    if source % size == 0:
        return F.avg_pool2d(x, source // size)
    if size % source == 0:
        return F.interpolate(x, scale_factor=size // source, mode="nearest")
    return F.adaptive_avg_pool2d(x, size)


def pool_belief_maps(p: torch.Tensor, depth: torch.Tensor, size: int, source: int | None = None) -> torch.Tensor:
    """(B, 2N, size, size): the belief maps resampled to a feature grid for pose-guided fusion: the
    probability as a density of mean 1 (p area-resampled, renormalised to sum size^2) and the
    depth-weighted density (p * depth, same resampling and normalisation)."""
    pp = area_resample(p, size, source)
    pd = area_resample(p * depth, size, source)
    norm = (int(size) ** 2) / pp.sum(dim=(2, 3), keepdim=True).clamp_min(1e-12)
    return torch.cat([pp * norm, pd * norm], dim=1)


@dataclass
class BeliefMaps:
    uvd: torch.Tensor      # (B, N, 3): u, v normalised crop coordinates, d in the target's depth unit
    prob: torch.Tensor     # (B, N, S, S): softmax of the heatmap logits (sums to 1 per keypoint)
    depth: torch.Tensor    # (B, N, S, S): the depth maps
    logits: torch.Tensor   # (B, N, S, S): the heatmap logits (before beta)


# ---------------------------------------------------------------------------------------------- modules

class SAIGB(nn.Module):
    """Spatial-aware initial graph building: (B, C, h, w) -> (B, N, M h w + 3) (see the module doc)."""

    def __init__(self, in_channels: int, template, maps_per_node: int = 8, feature_hw: int = 16):
        super().__init__()
        template = torch.as_tensor(np.asarray(template), dtype=torch.float32)
        if template.dim() != 2 or template.shape[1] != 3:
            raise ValueError(f"template must be (N, 3), got {tuple(template.shape)}")
        self.num_nodes, self.maps_per_node, self.feature_hw = template.shape[0], int(maps_per_node), int(feature_hw)
        self.group = nn.Conv2d(in_channels, self.num_nodes * self.maps_per_node, 1)
        self.register_buffer("template", template, persistent=False)
        self.out_features = self.maps_per_node * self.feature_hw + 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, h, w = x.shape
        if h * w != self.feature_hw:
            raise ValueError(f"SAIGB was built for {self.feature_hw} feature pixels, got a {h} x {w} map")
        f = F.leaky_relu(self.group(x), 0.1).reshape(B, self.num_nodes, self.maps_per_node * h * w)
        return torch.cat([f, self.template.to(f.dtype).expand(B, -1, -1)], dim=2)


class GCNBranch(nn.Module):
    """AGC(in -> hidden), LeakyReLU(0.1), Dropout, AGC(hidden -> out)."""

    def __init__(self, adjacency, in_features: int, hidden: int, out_features: int, dropout: float = 0.5,
                 init: str = "graph"):
        super().__init__()
        self.gc1 = AdaptiveGraphConv(adjacency, in_features, hidden, init)
        self.drop = nn.Dropout(float(dropout))
        self.gc2 = AdaptiveGraphConv(adjacency, hidden, out_features, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gc2(self.drop(F.leaky_relu(self.gc1(x), 0.1)))


class GBBMR(nn.Module):
    """GCN-based belief maps regression: initial graph (B, N, F) -> BeliefMaps at S x S.

    mapped_nodes J > 0 (SAR's nodes='release'): J more nodes whose heatmap logits and depth maps are
    learned linear maps (N -> J, with bias) of the N graph nodes' ones, listed first in the output."""

    def __init__(self, adjacency, in_features: int, size: int = 32, hidden: int | None = None,
                 dropout: float = 0.5, init: str = "graph", mapped_nodes: int = 0):
        super().__init__()
        n = int(np.asarray(adjacency).shape[0])
        self.graph_nodes, self.mapped_nodes, self.size = n, int(mapped_nodes), int(size)
        self.num_nodes = n + self.mapped_nodes
        hidden = int(hidden or self.size ** 2)
        self.uv = GCNBranch(adjacency, in_features, hidden, self.size ** 2, dropout, init)
        self.depth = GCNBranch(adjacency, in_features, hidden, self.size ** 2, dropout, init)
        if self.mapped_nodes:     # release: model.py, GBBMR.__init__ (mesh2pose_hm, mesh2pose_dm)
            self.map_logits = nn.Linear(n, self.mapped_nodes)
            self.map_depth = nn.Linear(n, self.mapped_nodes)
        self.log_beta = nn.Parameter(torch.zeros(self.num_nodes))

    @staticmethod
    def _map(linear: nn.Linear, maps: torch.Tensor) -> torch.Tensor:
        """(B, N, S, S) -> (B, J, S, S): the linear map over the node axis, pixel by pixel."""
        B, N, S, _ = maps.shape
        return linear(maps.reshape(B, N, S * S).transpose(1, 2)).transpose(1, 2).reshape(B, -1, S, S)

    def forward(self, graph: torch.Tensor) -> BeliefMaps:
        B, S = graph.shape[0], self.size
        logits = self.uv(graph).reshape(B, self.graph_nodes, S, S)
        depth = self.depth(graph).reshape(B, self.graph_nodes, S, S)
        if self.mapped_nodes:     # release: model.py, GBBMR.forward (joint maps from the mesh maps, then concat)
            logits = torch.cat([self._map(self.map_logits, logits), logits], dim=1)
            depth = torch.cat([self._map(self.map_depth, depth), depth], dim=1)
        uvd, p = decode_belief_maps(logits, depth, self.log_beta.exp())
        return BeliefMaps(uvd=uvd, prob=p, depth=depth, logits=logits)


class SARHead(nn.Module):
    """SAR-Head(N, S): SAIGB + GBBMR. forward(features (B, C, h, w)) -> BeliefMaps of N keypoints at S x S
    (N = the template's nodes + mapped_nodes; see GBBMR)."""

    def __init__(self, in_channels: int, feature_hw: int, template, adjacency, size: int = 32,
                 maps_per_node: int = 8, hidden: int | None = None, dropout: float = 0.5, init: str = "graph",
                 mapped_nodes: int = 0):
        super().__init__()
        self.saigb = SAIGB(in_channels, template, maps_per_node, feature_hw)
        if np.asarray(adjacency).shape[0] != self.saigb.num_nodes:
            raise ValueError(f"adjacency has {np.asarray(adjacency).shape[0]} nodes, template {self.saigb.num_nodes}")
        self.gbbmr = GBBMR(adjacency, self.saigb.out_features, size, hidden, dropout, init, mapped_nodes)
        self.num_nodes, self.size = self.gbbmr.num_nodes, int(size)

    def forward(self, features: torch.Tensor) -> BeliefMaps:
        return self.gbbmr(self.saigb(features))
