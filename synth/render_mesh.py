"""The mesh that is rendered, and the matrix that maps it back to model topology.

`render_mesh_for(model)` picks one of two:
- OpenHand 2 (a model that carries its sculpted mesh): SculptedRenderMesh, the 1609-vertex MakeHuman
  surface posed by its own skinning with the model's joints; the 778 model vertices are a selection of its
  vertices (synth/openhand2/collapse.py), so M is a 0/1 selection and exact for every pose and shape.
- any other MANO-format model (MANO, OpenHand 1): RenderMesh below.

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

    def pose(self, model, poses: np.ndarray, model_vertices: np.ndarray) -> np.ndarray:
        """(P, N_dense, 3) render vertices of posed model vertices (P, V, 3)."""
        return self.densify(model_vertices)

    def rest_vertices(self, model) -> np.ndarray:
        return self.densify(np.asarray(model.template, dtype=np.float64))

    def vertex_weights(self, model) -> np.ndarray:
        """(N_dense, 16) skinning weights carried from the model's (S's rows are convex)."""
        return np.asarray(self.S @ model.layer.lbs_weights.detach().double().numpy())


class SculptedRenderMesh:
    """OpenHand 2's sculpted surface, posed like the model (same joints, weights and shapes on more vertices).

    S (N x V) carries model-vertex attributes onto it: identity on the model's own vertices, inverse-distance
    weights of the three nearest model vertices (rest pose) elsewhere; unlike the subdivision's S it is no
    posing rule, only a way to spread per-vertex values (dataset tables store it as their `S`)."""

    def __init__(self, model, data: dict):
        import contextlib
        import io

        import smplx
        import torch
        from scipy.spatial import cKDTree
        from smplx.utils import Struct

        self.faces = np.asarray(data["faces"], dtype=np.int64)
        self.template = np.asarray(data["v_template"], dtype=np.float64)
        self.weights = np.asarray(data["weights"], dtype=np.float64)
        self.model_vertices = np.asarray(data["model_vertices"], dtype=np.int64)
        self.nail_mask = data.get("nail_mask")      # (N,) MakeHuman's fingernails, for the skin's regions
        n, v = len(self.template), len(self.model_vertices)
        self.M = sp.csr_matrix((np.ones(v), (np.arange(v), self.model_vertices)), shape=(v, n))
        dist, idx = cKDTree(self.template[self.model_vertices]).query(self.template, k=3)
        w = 1.0 / np.maximum(dist, 1e-9) ** 2
        w[self.model_vertices] = [1.0, 0.0, 0.0]
        idx[self.model_vertices, 0] = np.arange(v)
        w /= w.sum(axis=1, keepdims=True)
        self.S = sp.csr_matrix((w.ravel(), (np.repeat(np.arange(n), 3), idx.ravel())), shape=(n, v))
        regressor = np.zeros((16, n))
        j16 = model.layer.J_regressor.detach().double().numpy()
        regressor[:, self.model_vertices] = j16
        struct = Struct(v_template=self.template, f=self.faces, weights=self.weights,
                        shapedirs=np.asarray(data["shapedirs"]), posedirs=np.zeros((n, 3, 135), dtype=np.float32),
                        J_regressor=regressor, kintree_table=model.layer.parents.numpy()[None].repeat(2, 0),
                        hands_components=np.eye(45), hands_mean=np.zeros(45))
        struct.kintree_table[0, 0] = 4294967295
        struct.kintree_table[1] = np.arange(16)
        with contextlib.redirect_stdout(io.StringIO()):
            self.layer = smplx.MANO(model_path=str(model.path), data_struct=struct, is_rhand=True, use_pca=False,
                                    flat_hand_mean=True, batch_size=1, dtype=torch.float32,
                                    create_global_orient=False, create_hand_pose=False, create_betas=False,
                                    create_transl=False)

    @property
    def num_vertices(self) -> int:
        return len(self.template)

    def to_model(self, dense: np.ndarray) -> np.ndarray:
        return np.asarray(dense)[..., self.model_vertices, :]

    def pose(self, model, poses: np.ndarray, model_vertices: np.ndarray | None = None,
             betas: np.ndarray | None = None) -> np.ndarray:
        """(P, N, 3) the sculpted surface of poses (P, 48) (and betas (P, 10), default 0)."""
        import torch

        p = torch.as_tensor(np.asarray(poses), dtype=torch.float32)
        b = torch.zeros(len(p), 10) if betas is None else torch.as_tensor(np.asarray(betas), dtype=torch.float32)
        with torch.no_grad():
            out = self.layer(global_orient=p[:, :3], hand_pose=p[:, 3:], betas=b)
        return out.vertices.double().numpy()

    def rest_vertices(self, model) -> np.ndarray:
        return self.template

    def vertex_weights(self, model) -> np.ndarray:
        return self.weights


def render_mesh_for(model):
    """The render mesh of a HandModel: its sculpted mesh when it carries one, else one Loop step."""
    if getattr(model, "render_data", None) is not None:
        return SculptedRenderMesh(model, model.render_data)
    return build_render_mesh(model.faces, model.num_vertices)


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


def rendered_surface(model, poses: np.ndarray, model_vertices: np.ndarray) -> tuple:
    """(vertices (P, N, 3), faces) of the surface the renderer shows for these poses and posed vertices."""
    rm = render_mesh_for(model)
    return rm.pose(model, poses, model_vertices), rm.faces
