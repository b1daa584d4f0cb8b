"""How far a posed hand presses through itself.

Measure (the foundation issue's): close the wrist with a fan, push every vertex
1 mm outwards along its normal, and count the share of those points that lie
inside the closed mesh (generalised winding number > 0.5). A hand that does
not touch itself scores 0; where two parts interpenetrate, the outward points
of each lie inside the other.
"""
from __future__ import annotations

import numpy as np

from .meshops import boundary_loops, close_boundary, vertex_normals, winding_numbers

OFFSET_M = 0.001


def penetration_share(vertices: np.ndarray, faces: np.ndarray, offset: float = OFFSET_M,
                      return_points: bool = False):
    """Share (B,) of vertices whose 1 mm outward point is inside the closed posed mesh (B, V, 3)."""
    import torch

    verts = np.asarray(vertices, dtype=np.float64)
    single = verts.ndim == 2
    if single:
        verts = verts[None]
    loops = boundary_loops(faces)
    if len(loops) != 1:
        raise ValueError(f"expected one open boundary (the wrist), found {len(loops)}")
    shares, inside_all = [], []
    for v in verts:
        closed_v, closed_f = close_boundary(v, faces, loops[0])
        normals = vertex_normals(v, faces)
        w = winding_numbers(v + offset * normals, closed_v, closed_f, dtype=torch.float32)
        inside = w > 0.5
        shares.append(inside.mean())
        inside_all.append(inside)
    shares = np.asarray(shares)
    if return_points:
        return (shares[0], inside_all[0]) if single else (shares, np.asarray(inside_all))
    return shares[0] if single else shares
