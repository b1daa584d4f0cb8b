"""The denser mesh that is rendered, and the matrix that maps it back to model topology.

One Loop subdivision step of the model's template (778 -> 778 + #edges
vertices): dense = S @ verts for any posed vertices, S sparse. Because the
rendered mesh is S applied to the *posed* model mesh, what Blender renders is
exactly what is annotated.

M (778 x N_dense) maps dense annotations back, M @ S = I. It is the exact
local inverse of Loop's rules, so M is sparse too: for an interior vertex of
valence n with Loop weight beta,
    sum of its edge points = 3n/8 v + 5/8 sum(neighbours)
    its moved point       = (1 - n beta) v + beta sum(neighbours)
two equations that give v; on the boundary, v = 2 v' - (e_prev + e_next) / 2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .meshops import boundary_loops


def loop_beta(n: int) -> float:
    return (5.0 / 8.0 - (3.0 / 8.0 + 0.25 * np.cos(2 * np.pi / n)) ** 2) / n


@dataclass
class RenderMesh:
    S: sp.csr_matrix       # (N_dense, V)
    M: sp.csr_matrix       # (V, N_dense)
    faces: np.ndarray      # (F_dense, 3)

    @property
    def num_vertices(self) -> int:
        return self.S.shape[0]

    def densify(self, verts: np.ndarray) -> np.ndarray:
        """(..., V, 3) model-topology vertices -> (..., N_dense, 3)."""
        return _apply(self.S, verts)

    def to_model(self, dense: np.ndarray) -> np.ndarray:
        """(..., N_dense, 3) dense annotations -> (..., V, 3) model topology."""
        return _apply(self.M, dense)


def _apply(matrix: sp.csr_matrix, points: np.ndarray) -> np.ndarray:
    """matrix @ points over the vertex axis of (..., N, 3), one sparse product for the whole batch."""
    p = np.asarray(points)
    lead = p.shape[:-2]
    flat = np.moveaxis(p.reshape((-1,) + p.shape[-2:]), 1, 0).reshape(p.shape[-2], -1)
    out = (matrix @ flat).reshape(matrix.shape[0], -1, p.shape[-1])
    return np.moveaxis(out, 0, 1).reshape(lead + (matrix.shape[0], p.shape[-1]))


def build_render_mesh(faces: np.ndarray, num_vertices: int) -> RenderMesh:
    faces = np.asarray(faces, dtype=np.int64)
    n_v = num_vertices
    # edges and their opposite vertices
    opposite: dict = {}
    for a, b, c in faces:
        for u, w, o in ((a, b, c), (b, c, a), (c, a, b)):
            opposite.setdefault((min(u, w), max(u, w)), []).append(o)
    edges = sorted(opposite)
    edge_id = {e: n_v + i for i, e in enumerate(edges)}
    boundary = {v for loop in boundary_loops(faces) for v in loop}
    neighbours = [set() for _ in range(n_v)]
    for u, w in edges:
        neighbours[u].add(w)
        neighbours[w].add(u)
    rows, cols, vals = [], [], []

    def put(r, c, v):
        rows.append(r), cols.append(c), vals.append(v)

    for v in range(n_v):
        nb = sorted(neighbours[v])
        if v in boundary:
            ends = [u for u in nb if len(opposite[(min(u, v), max(u, v))]) == 1]
            put(v, v, 0.75)
            for u in ends:
                put(v, u, 0.125)
        else:
            beta = loop_beta(len(nb))
            put(v, v, 1 - len(nb) * beta)
            for u in nb:
                put(v, u, beta)
    for (u, w), opp in opposite.items():
        e = edge_id[(u, w)]
        if len(opp) == 1:
            put(e, u, 0.5), put(e, w, 0.5)
        else:
            put(e, u, 0.375), put(e, w, 0.375)
            for o in opp:
                put(e, o, 0.125)
    S = sp.csr_matrix((vals, (rows, cols)), shape=(n_v + len(edges), n_v))

    rows, cols, vals = [], [], []
    for v in range(n_v):
        nb = sorted(neighbours[v])
        incident = [edge_id[(min(u, v), max(u, v))] for u in nb]
        if v in boundary:
            ends = [edge_id[(min(u, v), max(u, v))] for u in nb if len(opposite[(min(u, v), max(u, v))]) == 1]
            put(v, v, 2.0)
            for e in ends:
                put(v, e, -0.5)
        else:
            n, beta = len(nb), loop_beta(len(nb))
            denom = 3 * n / 8 - 5 * (1 - n * beta) / (8 * beta)
            put(v, v, -5 / (8 * beta) / denom)
            for e in incident:
                put(v, e, 1.0 / denom)
    M = sp.csr_matrix((vals, (rows, cols)), shape=(n_v, n_v + len(edges)))

    dense_faces = []
    for a, b, c in faces:
        ab, bc, ca = (edge_id[(min(x, y), max(x, y))] for x, y in ((a, b), (b, c), (c, a)))
        dense_faces += [(a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca)]
    return RenderMesh(S=S, M=M, faces=np.asarray(dense_faces, dtype=np.int64))
