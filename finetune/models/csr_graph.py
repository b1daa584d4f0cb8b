"""The Inception Graph Network of the camera-space model (seed 002, section 3.2, Figs. 3-4).

    latent T^a (B, D_a)
      -> FC -> features of the coarsest mesh used (level `coarse_level` of the hierarchy;
         default 2: 195 vertices) x channels[0]
      -> block at that level, then per finer level: graph up-sampling (the hierarchy's barycentric
         matrix) -> block                                  (two up-samplings: 195 -> 389 -> 778)
      -> a standalone Chebyshev convolution to xyz at 778 vertices

A block is an Inception Graph Block (`inception=True`, Fig. 4) or, for Table 2's "fixed k-order"
rows, a plain Chebyshev block:

    InceptionGraphLayer(x) = fuse([ChebConv_h(x) for h in hops])     parallel K-hop orders, concatenated,
                                                                      a 1x1 (per-vertex linear) fusion
    InceptionGraphBlock(x) = relu(shortcut(x) + SE(layer2(relu(layer1(x)))))
    ChebBlock(x)           = relu(shortcut(x) + cheb2(relu(cheb1(x))))   (one fixed order, no SE)

ChebConv (finetune.mesh.ops) with K terms T_0..T_{K-1} of the scaled Laplacian reaches K - 1 hops,
so the branch of hop order h is ChebConv(K = h + 1). The SE graph attention (Hu et al. [35]) squeezes
by the mean over the vertices, excites through FC (C -> C/r) - ReLU - FC (C/r -> C) - sigmoid and
scales the channels; being a mean over all vertices, it is the one global operation of a block.

Reading of the unclear details:

- "three stacked Graph Convolutional Networks with different K-hop convolutions are employed
  twice": three parallel Chebyshev convolutions of hop orders (1, 2, 3) form a layer; a block is
  two such layers; the SE attention follows, and the block is residual ("Res-Inception"): the
  Inception-ResNet pattern of concatenation, a linear 1x1 fusion, then the residual sum.
- Hierarchy. The paper coarsens with Graclus [34] into "three resolutions" and uses "two
  upsampling layers"; here the project's quadric hierarchy (finetune/mesh/hierarchy.py) gives the
  resolutions 778 / 389 / 195 (`coarse_level=2`), the same factor-2 steps.
- Widths (none given): channels (64, 64, 32) at 195 / 389 / 778 vertices; SE reduction r = 4
  (SENet's 16 would leave 2-4 hidden units at these widths); the output convolution and the plain
  blocks use hop order 2 (K = 3, Ge et al.'s [4] Chebyshev order); the Laplacian is the normalised
  one of each level's mesh with its exact largest eigenvalue (Defferrard et al. [16]).
- No normalisation layers in the graph part (Ge et al. and COMA have none).
"""
from __future__ import annotations

import torch
from torch import nn

DEFAULT_HOPS = (1, 2, 3)
DEFAULT_CHANNELS = (64, 64, 32)


def level_laplacian(hierarchy, level: int) -> tuple:
    """(normalised Laplacian, its largest eigenvalue) of one level of a MeshHierarchy."""
    from finetune.mesh.ops import largest_eigenvalue, mesh_laplacian

    lap = mesh_laplacian(hierarchy.faces[level], hierarchy.sizes[level])
    return lap, largest_eigenvalue(lap)


class SEGraphAttention(nn.Module):
    """Squeeze-and-excitation over the channels of (B, N, C) vertex features (squeeze = mean over N)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(int(channels) // int(reduction), 1)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=1)))))
        return x * gate.unsqueeze(1)


class InceptionGraphLayer(nn.Module):
    """Parallel Chebyshev convolutions of hop orders `hops` (K = h + 1 terms each), concatenated, fused."""

    def __init__(self, c_in: int, c_out: int, laplacian, lambda_max: float, hops=DEFAULT_HOPS):
        super().__init__()
        from finetune.mesh.ops import ChebConv

        hops = tuple(int(h) for h in hops)
        if not hops or min(hops) < 1:
            raise ValueError(f"hop orders must be >= 1, got {hops}")
        self.hops = hops
        self.branches = nn.ModuleList(ChebConv(c_in, c_out, h + 1, laplacian, lambda_max=lambda_max) for h in hops)
        self.fuse = nn.Linear(len(hops) * c_out, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the branches share their Chebyshev terms T_0 .. T_{K-1}: computed once, to the highest order
        # (each branch's output equals its ChebConv.forward(x); tests/test_csr.py checks it)
        deepest = max(self.branches, key=lambda b: b.K)
        terms = chebyshev_terms(x, deepest)
        return self.fuse(torch.cat([b.layer(torch.cat(terms[:b.K], dim=-1)) for b in self.branches], dim=-1))


def chebyshev_terms(x: torch.Tensor, conv) -> list:
    """[T_0 x, ..., T_{K-1} x] of a ChebConv's scaled Laplacian (the recursion of ChebConv.forward)."""
    terms = [x]
    if conv.K > 1:
        terms.append(conv._lap(x))
    for _ in range(2, conv.K):
        terms.append(2 * conv._lap(terms[-1]) - terms[-2])
    return terms


def _shortcut(c_in: int, c_out: int) -> nn.Module:
    return nn.Identity() if c_in == c_out else nn.Linear(c_in, c_out, bias=False)


class InceptionGraphBlock(nn.Module):
    """Two Inception graph layers, SE graph attention, residual sum (Fig. 4)."""

    def __init__(self, c_in: int, c_out: int, laplacian, lambda_max: float, hops=DEFAULT_HOPS,
                 se_reduction: int = 4):
        super().__init__()
        self.layer1 = InceptionGraphLayer(c_in, c_out, laplacian, lambda_max, hops)
        self.layer2 = InceptionGraphLayer(c_out, c_out, laplacian, lambda_max, hops)
        self.attention = SEGraphAttention(c_out, se_reduction)
        self.shortcut = _shortcut(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer2(torch.relu(self.layer1(x)))
        return torch.relu(self.shortcut(x) + self.attention(y))


class ChebBlock(nn.Module):
    """Table 2's fixed-order alternative: two Chebyshev convolutions of one hop order, residual sum."""

    def __init__(self, c_in: int, c_out: int, laplacian, lambda_max: float, hops: int = 2):
        super().__init__()
        from finetune.mesh.ops import ChebConv

        if int(hops) < 1:
            raise ValueError(f"hop order must be >= 1, got {hops}")
        self.conv1 = ChebConv(c_in, c_out, int(hops) + 1, laplacian, lambda_max=lambda_max)
        self.conv2 = ChebConv(c_out, c_out, int(hops) + 1, laplacian, lambda_max=lambda_max)
        self.shortcut = _shortcut(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.shortcut(x) + self.conv2(torch.relu(self.conv1(x))))


class InceptionGraphNet(nn.Module):
    """Latent vector (B, D_a) -> vertices (B, V, 3) (decoder units); see the module docstring."""

    def __init__(self, hierarchy, latent_channels: int, channels=DEFAULT_CHANNELS, coarse_level: int = 2,
                 inception: bool = True, hops=DEFAULT_HOPS, plain_hops: int = 2, out_hops: int = 2,
                 se_reduction: int = 4):
        super().__init__()
        from finetune.mesh.ops import ChebConv, Resample

        coarse_level = int(coarse_level)
        if not 1 <= coarse_level < hierarchy.num_levels:
            raise ValueError(f"coarse_level must be in 1..{hierarchy.num_levels - 1}, got {coarse_level}")
        channels = tuple(int(c) for c in channels)
        if len(channels) != coarse_level + 1:
            raise ValueError(f"{len(channels)} graph widths for {coarse_level + 1} mesh levels "
                             f"({', '.join(str(hierarchy.sizes[lv]) for lv in range(coarse_level, -1, -1))} vertices)")
        self.inception = bool(inception)
        self.coarse_level, self.channels = coarse_level, channels
        self.num_coarse = int(hierarchy.sizes[coarse_level])
        self.fc = nn.Linear(int(latent_channels), self.num_coarse * channels[0])
        self.upsample = nn.ModuleList()
        self.blocks = nn.ModuleList()
        width = channels[0]
        for i, level in enumerate(range(coarse_level, -1, -1)):
            if i > 0:
                self.upsample.append(Resample(hierarchy.up[level]))
            lap, lam = level_laplacian(hierarchy, level)
            if self.inception:
                block = InceptionGraphBlock(width, channels[i], lap, lam, hops, se_reduction)
            else:
                block = ChebBlock(width, channels[i], lap, lam, plain_hops)
            self.blocks.append(block)
            width = channels[i]
        self.head = ChebConv(width, 3, int(out_hops) + 1, lap, lambda_max=lam)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc(latent)).view(latent.shape[0], self.num_coarse, self.channels[0])
        x = self.blocks[0](x)
        for up, block in zip(self.upsample, self.blocks[1:]):
            x = block(up(x))
        return self.head(x)
