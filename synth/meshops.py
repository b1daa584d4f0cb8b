"""Triangle-mesh utilities in numpy/torch: topology checks, normals, closing, winding numbers."""
from __future__ import annotations

from collections import defaultdict, deque

import numpy as np


def edge_face_map(faces: np.ndarray) -> dict:
    """Undirected edge (a, b) with a < b -> list of (face index, directed edge)."""
    out = defaultdict(list)
    for fi, tri in enumerate(np.asarray(faces)):
        for k in range(3):
            a, b = int(tri[k]), int(tri[(k + 1) % 3])
            out[(min(a, b), max(a, b))].append((fi, (a, b)))
    return out


def boundary_loops(faces: np.ndarray) -> list:
    """Ordered vertex loops of the edges used by exactly one face, in face winding order."""
    nxt = {}
    for edge, uses in edge_face_map(faces).items():
        if len(uses) == 1:
            a, b = uses[0][1]
            nxt[b] = a  # walk opposite to the face's edge, i.e. along the hole
    loops, seen = [], set()
    for start in nxt:
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        loops.append(np.array(loop))
    return loops


def is_edge_manifold(faces: np.ndarray) -> bool:
    return all(len(uses) <= 2 for uses in edge_face_map(faces).values())


def is_consistently_oriented(faces: np.ndarray) -> bool:
    """Every interior edge is traversed once in each direction."""
    for uses in edge_face_map(faces).values():
        if len(uses) == 2 and uses[0][1] == uses[1][1]:
            return False
    return True


def euler_characteristic(faces: np.ndarray) -> int:
    faces = np.asarray(faces)
    n_v = len(np.unique(faces))
    return n_v - len(edge_face_map(faces)) + len(faces)


def make_consistent(faces: np.ndarray) -> np.ndarray:
    """Flip faces so that neighbours agree, by breadth-first flood fill from face 0."""
    faces = np.array(faces, dtype=np.int64, copy=True)
    emap = edge_face_map(faces)
    neighbours = defaultdict(list)
    for uses in emap.values():
        if len(uses) == 2:
            (f0, _), (f1, _) = uses
            neighbours[f0].append(f1)
            neighbours[f1].append(f0)
    done = np.zeros(len(faces), bool)
    for seed in range(len(faces)):
        if done[seed]:
            continue
        done[seed] = True
        queue = deque([seed])
        while queue:
            f = queue.popleft()
            tri = faces[f]
            directed = {(int(tri[k]), int(tri[(k + 1) % 3])) for k in range(3)}
            for g in neighbours[f]:
                if done[g]:
                    continue
                gt = faces[g]
                if any((int(gt[k]), int(gt[(k + 1) % 3])) in directed for k in range(3)):
                    faces[g] = gt[::-1]
                done[g] = True
                queue.append(g)
    return faces


def close_boundary(vertices: np.ndarray, faces: np.ndarray, loop: np.ndarray):
    """Close one boundary loop with a fan around its centroid (an added last vertex).

    The fan is wound to agree with the faces along the loop, whatever the
    loop's own order.
    """
    vertices = np.asarray(vertices)
    loop = np.asarray(loop)
    center = vertices.shape[-2]
    a, b = int(loop[0]), int(loop[1])
    # the mesh uses edge a->b or b->a; the fan must use the opposite direction
    emap = edge_face_map(faces)
    _, (ea, eb) = emap[(min(a, b), max(a, b))][0]
    forward = (ea, eb) == (b, a)
    fan = [(loop[i], loop[(i + 1) % len(loop)], center) for i in range(len(loop))]
    fan = np.asarray(fan, dtype=np.int64)
    if not forward:
        fan = fan[:, [1, 0, 2]]
    if vertices.ndim == 2:
        new_v = np.concatenate([vertices, vertices[loop].mean(axis=0, keepdims=True)])
    else:  # batched (B, V, 3)
        new_v = np.concatenate([vertices, vertices[:, loop].mean(axis=1, keepdims=True)], axis=1)
    return new_v, np.concatenate([np.asarray(faces), fan])


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted (unnormalised) face normals; works batched on (..., V, 3)."""
    v = np.asarray(vertices)
    a, b, c = (v[..., faces[:, k], :] for k in range(3))
    return np.cross(b - a, c - a)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit vertex normals (area-weighted face average); works batched on (..., V, 3)."""
    import torch

    v = np.asarray(vertices, dtype=float)
    fn = torch.as_tensor(face_normals(v, faces))
    out = torch.zeros(v.shape, dtype=fn.dtype)
    for k in range(3):
        out.index_add_(out.dim() - 2, torch.as_tensor(faces[:, k], dtype=torch.long), fn)
    out = out.numpy()
    return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)


def winding_numbers(points, vertices, faces, chunk: int = 128, dtype=None):
    """Generalised winding number of points (..., P, 3) w.r.t. a closed mesh (..., V, 3).

    Sum of the triangles' signed solid angles / 4 pi (Van Oosterom & Strackee:
    tan(omega / 2) = det[a b c] / (|a||b||c| + (a.b)|c| + (a.c)|b| + (b.c)|a|)
    with a, b, c the corners relative to the point); about 1 inside, 0 outside.
    Every term is expanded in the point p (a = va - p, ...), so that what depends
    on p alone is a matrix product with per-face constants:
    det = [va vb vc] - p . (vb x vc + vc x va + va x vb),
    a.b = va.vb - p . (va + vb) + |p|^2, |a|^2 = |va|^2 - 2 p.va + |p|^2.
    Points are taken in chunks whose (chunk, F) tables stay in cache; both point
    set and mesh are moved to the mesh's centroid first to keep the expansions'
    cancellation small.
    """
    import torch

    dtype = dtype or torch.float64
    pts = torch.as_tensor(np.ascontiguousarray(points), dtype=dtype)
    v = torch.as_tensor(np.ascontiguousarray(vertices), dtype=dtype)
    f = torch.as_tensor(np.ascontiguousarray(faces), dtype=torch.long)
    centre = v.mean(dim=-2, keepdim=True)
    v, pts = v - centre, pts - centre
    va, vb, vc = (v[..., f[:, k], :] for k in range(3))                # (..., F, 3)
    triple = (va * torch.cross(vb, vc, dim=-1)).sum(-1)                  # (..., F)
    normal_t = (torch.cross(vb, vc, dim=-1) + torch.cross(vc, va, dim=-1)
                + torch.cross(va, vb, dim=-1)).transpose(-1, -2)         # (..., 3, F)
    corner_dots = torch.stack([(va * vb).sum(-1), (va * vc).sum(-1), (vb * vc).sum(-1)], dim=-2)  # (..., 3, F)
    pair_sums_t = torch.stack([va + vb, va + vc, vb + vc], dim=-3).transpose(-1, -2)            # (..., 3, 3, F)
    v_sq, v_t = (v * v).sum(-1).unsqueeze(-2), v.transpose(-1, -2)
    out = []
    for s in range(0, pts.shape[-2], chunk):
        p = pts[..., s:s + chunk, :]                                     # (..., c, 3)
        p_sq = (p * p).sum(-1, keepdim=True)
        length = (v_sq - 2 * (p @ v_t) + p_sq).clamp_min(0).sqrt()       # (..., c, V)
        la, lb, lc = (length[..., f[:, k]] for k in range(3))
        det = triple.unsqueeze(-2) - p @ normal_t                        # (..., c, F)
        dots = corner_dots.unsqueeze(-2) - p.unsqueeze(-3) @ pair_sums_t + p_sq.unsqueeze(-3)  # (..., 3, c, F)
        ab, ac, bc = dots.unbind(-3)
        den = la * lb * lc + ab * lc + ac * lb + bc * la
        out.append(torch.atan2(det, den).sum(-1) / (2 * np.pi))
    return torch.cat(out, dim=-1).numpy()


def smooth_vertex_values(values: np.ndarray, faces: np.ndarray, rounds: int) -> np.ndarray:
    """(V, ...) per-vertex values after `rounds` steps of v <- (v + mean of the edge neighbours' v) / 2 (how
    both OpenHands spread their skinning weights across joints)."""
    import scipy.sparse as sp

    values = np.asarray(values, dtype=np.float64)
    faces = np.asarray(faces)
    n = len(values)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adj = sp.csr_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n))
    adj.data[:] = 1.0
    mean = sp.diags(1.0 / np.asarray(adj.sum(axis=1)).ravel()) @ adj
    for _ in range(rounds):
        values = 0.5 * values + 0.5 * (mean @ values)
    return values
