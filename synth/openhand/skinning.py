"""OpenHand's linear-blend-skinning weights and joint regressor.

Weights follow each vertex's position along its finger's chain: a bone owns the
stretch between its joint and the next, and neighbouring bones blend over a
window around each joint (a smoothstep, so weights are C1 along the finger).
The thenar region of the palm follows the thumb's first joint in part. A few
rounds of neighbour averaging over the mesh then smooth what the chain
coordinate cannot see (the webs, the palm around the thumb). Averaging keeps
weights non-negative and summing to one.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import lsq_linear

from ..meshops import smooth_vertex_values
from .mesh import MANO_FINGER_JOINTS, HandMesh
from .proportions import FINGERS

# half-width (m) of the blend window around (first, second, third) joint of a chain
BLEND = {"thumb": (0.012, 0.009, 0.007), "long": (0.011, 0.007, 0.006)}
THENAR_RADIUS = 0.020  # how far into the palm the thumb's first joint reaches
THENAR_SHARE = 0.5     # its weight at the thumb's base
SMOOTHING_ROUNDS = 3


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def skinning_weights(mesh: HandMesh, segment_lengths: dict) -> np.ndarray:
    n = len(mesh.vertices)
    w = np.zeros((n, 16))
    thumb_base = mesh.vertices[mesh.hole_loop].mean(axis=0)
    cmc_s = float((thumb_base - mesh.joints[13]) @ mesh.frames["thumb"][0])
    for fi, name in enumerate(FINGERS):
        sel = mesh.finger == fi
        s = mesh.chain_s[sel]
        seg = segment_lengths[name]
        j1, j2, j3 = MANO_FINGER_JOINTS[name]
        h = BLEND["thumb" if name == "thumb" else "long"]
        first = cmc_s if name == "thumb" else 0.0  # the thumb bends where it leaves the palm
        c1 = _smoothstep((s - first + h[0]) / (2 * h[0]))
        c2 = _smoothstep((s - seg[0] + h[1]) / (2 * h[1]))
        c3 = _smoothstep((s - seg[0] - seg[1] + h[2]) / (2 * h[2]))
        rows = np.where(sel)[0]
        w[rows, 0] = 1 - c1
        w[rows, j1] = c1 - c2
        w[rows, j2] = c2 - c3
        w[rows, j3] = c3
    # thenar: palm vertices near the thumb's base follow its first joint in part
    palm = np.where(mesh.on_palm)[0]
    dist = np.linalg.norm(mesh.vertices[palm] - thumb_base, axis=1)
    share = THENAR_SHARE * np.exp(-(dist / THENAR_RADIUS) ** 2)
    w[palm] *= (1 - share)[:, None]
    w[palm, 13] += share
    w = smooth_vertex_values(w, mesh.faces, SMOOTHING_ROUNDS)
    w[w < 1e-9] = 0.0
    return w / w.sum(axis=1, keepdims=True)


def joint_regressor(vertices: np.ndarray, joints: np.ndarray, neighbours: int = 24,
                    smoothness: float = 1e-4) -> np.ndarray:
    """A (16, V) non-negative, row-normalised regressor with J_regressor @ vertices ~= joints.

    Each row is a convex combination of the joint's nearest vertices, pulled
    towards equal weights (so a joint stays inside its ring when shapes change)
    while reproducing the joint position.
    """
    reg = np.zeros((len(joints), len(vertices)))
    for j, target in enumerate(joints):
        idx = np.argsort(np.linalg.norm(vertices - target, axis=1))[:neighbours]
        a = vertices[idx].T  # (3, k)
        k = len(idx)
        big = 10.0
        lhs = np.vstack([a, big * np.ones((1, k)), np.sqrt(smoothness) * np.eye(k)])
        rhs = np.concatenate([target, [big], np.sqrt(smoothness) * np.full(k, 1.0 / k)])
        sol = lsq_linear(lhs, rhs, bounds=(0.0, 1.0), method="bvls").x
        reg[j, idx] = sol / sol.sum()
    return reg
