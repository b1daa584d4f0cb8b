"""Torch modules of the mesh decoders; features are (B, N, C), vertex-major.

Two constraints shape the code:
- The project's Mult-Adds counter (`pretrain.complexity`) counts nn.Linear,
  nn.Conv*d and every matrix product. The papers count the convolutions but not
  the sampling matrices, so fixed sparse products (Resample, the Laplacian of
  ChebConv) are written as gathers and weighted sums, which the counter does
  not see, and the learned parts are nn.Linear / nn.Conv1d modules, which it
  does.
- The modules are exported with torch.onnx.export, so only index_select,
  multiply, sum and reshape are used (no torch.sparse). A sparse matrix is
  stored as a padded table: per output row, its K column indices and weights
  (K = the row's largest number of nonzeros; padding has weight 0). The
  obvious index_select + index_add_ form is NOT used: the TorchScript ONNX
  exporter turns index_add into a ScatterND without reduction, which keeps one
  of the duplicate rows instead of summing them (measured: outputs off by ~2
  on random input), and on CUDA index_add_ sums in a nondeterministic order.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


def padded_rows(matrix) -> tuple:
    """(indices, weights), both (N_out, K): the nonzeros of each row of a sparse matrix, padded
    with index 0 and weight 0 up to K = the largest row's count (at least 1)."""
    m = sp.csr_matrix(matrix, dtype=np.float64)
    m.sum_duplicates()
    m.eliminate_zeros()
    counts = np.diff(m.indptr)
    k = max(int(counts.max()) if len(counts) else 1, 1)
    rows = np.repeat(np.arange(m.shape[0]), counts)
    pos = np.arange(m.nnz) - np.repeat(m.indptr[:-1], counts)
    idx = np.zeros((m.shape[0], k), np.int64)
    w = np.zeros((m.shape[0], k), np.float64)
    idx[rows, pos] = m.indices
    w[rows, pos] = m.data
    return idx, w


def _checking() -> bool:
    # shape checks would turn into constants (and warnings) while tracing for ONNX
    return not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


def _as_batched(x: torch.Tensor, n: int, what: str) -> tuple:
    if x.dim() == 2:
        x = x.unsqueeze(0)
        squeeze = True
    elif x.dim() == 3:
        squeeze = False
    else:
        raise ValueError(f"{what}: features must be (B, N, C) or (N, C), got {tuple(x.shape)}")
    if _checking() and x.shape[1] != n:
        raise ValueError(f"{what}: expected {n} vertices, got features of shape {tuple(x.shape)}")
    return x, squeeze


def sparse_apply(x: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """M @ x per batch item, M given by `padded_rows`; x (B, N_in, C) -> (B, N_out, C)."""
    n_out, k = indices.shape
    g = x.index_select(1, indices.reshape(-1)).reshape(x.shape[0], n_out, k, x.shape[2])
    return (g * weights.to(x.dtype).unsqueeze(-1)).sum(2)


class Resample(nn.Module):
    """Applies a fixed sparse (N_out, N_in) matrix (down/up-sampling) to (B, N_in, C) features."""

    def __init__(self, matrix):
        super().__init__()
        matrix = sp.csr_matrix(matrix)
        self.num_out, self.num_in = matrix.shape
        idx, w = padded_rows(matrix)
        self.register_buffer("indices", torch.as_tensor(idx), persistent=False)
        self.register_buffer("weights", torch.as_tensor(w, dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, squeeze = _as_batched(x, self.num_in, "Resample")
        out = sparse_apply(x, self.indices, self.weights)
        return out.squeeze(0) if squeeze else out

    def extra_repr(self) -> str:
        return f"{self.num_in} -> {self.num_out}, nonzeros per row <= {self.indices.shape[1]}"


def _spiral_buffer(indices) -> torch.Tensor:
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
    if idx.dim() != 2 or idx.shape[1] < 1:
        raise ValueError(f"spiral indices must be (N, S), got {tuple(idx.shape)}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= idx.shape[0]):
        raise ValueError(f"spiral indices must index the mesh's {idx.shape[0]} vertices, "
                         f"got values in {int(idx.min())}..{int(idx.max())}")
    return idx


class _SpiralOp(nn.Module):
    """What both spiral convolutions hold: the (N, S) spiral table and the widths."""

    def __init__(self, in_channels: int, out_channels: int, indices):
        super().__init__()
        idx = _spiral_buffer(indices)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_vertices, self.spiral_length = idx.shape
        self.register_buffer("indices", idx, persistent=False)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, vertices={self.num_vertices}, S={self.spiral_length}"


class SpiralConv(_SpiralOp):
    """SpiralConv++ (MobRecon eq. 6): f_out(v) = W [f(v') for v' in spiral(v)] + b."""

    def __init__(self, in_channels: int, out_channels: int, indices):
        super().__init__(in_channels, out_channels, indices)
        self.layer = nn.Linear(self.spiral_length * in_channels, out_channels)
        nn.init.xavier_uniform_(self.layer.weight)
        nn.init.zeros_(self.layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, squeeze = _as_batched(x, self.num_vertices, "SpiralConv")
        b = x.shape[0]
        # (B, N*S, C) -> (B, N, S*C): spiral position-major, channel-minor, as SpiralNet++
        x = x.index_select(1, self.indices.reshape(-1)).reshape(b, self.num_vertices, -1)
        out = self.layer(x)
        return out.squeeze(0) if squeeze else out


class DSConv(_SpiralOp):
    """Depth-separable spiral convolution (MobRecon eqs. 7-8), without biases as in the paper.

    Depth-wise: channel i of v gets its own S weights over the spiral,
    f_d(v)_i = sum_s Wd[i, s] f(spiral(v)_s)_i (an nn.Conv1d with groups = C_in
    over (B*N, C_in, S)); point-wise: f_out(v) = Wp f_d(v) (an nn.Linear).
    """

    def __init__(self, in_channels: int, out_channels: int, indices):
        super().__init__(in_channels, out_channels, indices)
        self.depthwise = nn.Conv1d(in_channels, in_channels, kernel_size=self.spiral_length,
                                   groups=in_channels, bias=False)
        self.pointwise = nn.Linear(in_channels, out_channels, bias=False)
        nn.init.xavier_uniform_(self.pointwise.weight)

    def release_init(self) -> None:
        """The release's reset_parameters (conv/dsconv.py): the depth-wise kernel Xavier-uniform too (its
        (C, 1, 3, 3) kernel has the fans of this (C, 1, 9) one)."""
        nn.init.xavier_uniform_(self.depthwise.weight)
        nn.init.xavier_uniform_(self.pointwise.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, squeeze = _as_batched(x, self.num_vertices, "DSConv")
        b, n, c = x.shape[0], self.num_vertices, self.in_channels
        x = x.index_select(1, self.indices.reshape(-1)).reshape(b * n, self.spiral_length, c)
        x = self.depthwise(x.transpose(1, 2)).reshape(b, n, c)
        out = self.pointwise(x)
        return out.squeeze(0) if squeeze else out


def mesh_laplacian(faces, num_vertices: int) -> sp.csr_matrix:
    """Normalised graph Laplacian I - D^-1/2 A D^-1/2 of the mesh's edge graph (A binary,
    symmetric); an isolated vertex gets an identity row, as scipy's csgraph.laplacian(normed=True)."""
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) and (faces.min() < 0 or faces.max() >= num_vertices):
        raise ValueError(f"faces index vertices outside 0..{num_vertices - 1}")
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    a = sp.coo_matrix((np.ones(2 * len(i)), (np.concatenate([i, j]), np.concatenate([j, i]))),
                      shape=(num_vertices, num_vertices)).tocsr()
    a.data[:] = 1.0  # an edge shared by two faces was summed twice
    deg = np.asarray(a.sum(1)).ravel()
    inv_sqrt = np.zeros_like(deg)
    inv_sqrt[deg > 0] = deg[deg > 0] ** -0.5
    d = sp.diags(inv_sqrt)
    return (sp.identity(num_vertices, format="csr") - d @ a @ d).tocsr()


def largest_eigenvalue(laplacian) -> float:
    lap = sp.csr_matrix(laplacian, dtype=np.float64)
    n = lap.shape[0]
    if n <= 256:  # dense is exact and cheap at these sizes
        return float(np.linalg.eigvalsh(lap.toarray()).max())
    from scipy.sparse.linalg import eigsh

    v0 = np.linspace(1.0, 2.0, n)  # fixed start vector: the same lambda_max on every run
    return float(eigsh(lap, k=1, which="LA", v0=v0, return_eigenvectors=False)[0])


class ChebConv(nn.Module):
    """Chebyshev spectral graph convolution (Defferrard et al. 2016), as in COMA.

    L~ = 2 L / lambda_max - I; T_0 = x, T_1 = L~ x, T_k = 2 L~ T_{k-1} - T_{k-2};
    out = sum_k T_k W_k + b, computed as one nn.Linear over [T_0, ..., T_{K-1}]
    (so W_k = linear.weight[:, k*C_in:(k+1)*C_in].T; see `weight`).
    `lambda_max=None` computes the largest eigenvalue of `laplacian` (dense
    eigvalsh up to 256 vertices, else eigsh), as Defferrard's code; pass 2.0
    (the bound of a normalised Laplacian, COMA's choice) to skip it.
    """

    def __init__(self, in_channels: int, out_channels: int, K: int, laplacian, lambda_max: float | None = None,
                 bias: bool = True):
        super().__init__()
        if K < 1:
            raise ValueError(f"ChebConv needs K >= 1, got {K}")
        lap = sp.csr_matrix(laplacian, dtype=np.float64)
        if lap.shape[0] != lap.shape[1]:
            raise ValueError(f"the Laplacian must be square, got {lap.shape}")
        self.in_channels, self.out_channels, self.K = in_channels, out_channels, K
        self.num_vertices = lap.shape[0]
        self.lambda_max = float(largest_eigenvalue(lap) if lambda_max is None else lambda_max)
        idx, w = padded_rows(2.0 / self.lambda_max * lap - sp.identity(self.num_vertices))
        self.register_buffer("indices", torch.as_tensor(idx), persistent=False)
        self.register_buffer("weights", torch.as_tensor(w, dtype=torch.float32), persistent=False)
        self.layer = nn.Linear(K * in_channels, out_channels, bias=bias)
        nn.init.xavier_uniform_(self.layer.weight)
        if bias:
            nn.init.zeros_(self.layer.bias)

    @property
    def weight(self) -> torch.Tensor:
        """W as (K, C_in, C_out)."""
        return self.layer.weight.t().reshape(self.K, self.in_channels, self.out_channels)

    def _lap(self, x: torch.Tensor) -> torch.Tensor:
        return sparse_apply(x, self.indices, self.weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, squeeze = _as_batched(x, self.num_vertices, "ChebConv")
        terms = [x]
        if self.K > 1:
            terms.append(self._lap(x))
        for _ in range(2, self.K):
            terms.append(2 * self._lap(terms[-1]) - terms[-2])
        out = self.layer(torch.cat(terms, dim=-1))
        return out.squeeze(0) if squeeze else out

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, K={self.K}, vertices={self.num_vertices}, "
                f"lambda_max={self.lambda_max:.4f}")
