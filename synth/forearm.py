"""A procedural forearm that continues the hand's open wrist, so no view shows a hollow tube.

The hand models (OpenHand and MANO) end in one open boundary loop at the wrist.
Real images always show the forearm continuing from there, and the dense render
mesh seen from the forearm side otherwise shows the hand's black inside. The
forearm is a closed tube built on the dense mesh's wrist loop:

- its first ring *is* the posed wrist loop (the same points), so hand and arm
  meet without a gap whatever the pose;
- its axis is the normal of the loop's best-fit plane, pointing away from the
  hand; ring k sits at distance s_k along it, the loop's cross-section scaled by
  1 + (taper - 1) * smoothstep(s / length), so the arm widens towards the elbow
  (`taper` is the far ring's girth relative to the wrist's);
- the far end is closed by a rounded cap (two inner rings and a pole);
- it is posed by the root joint alone (LBS with all weight on joint 0: a
  rotation about the rest wrist joint by the pose's global rotation), the way
  the wrist loop itself moves.

Per sample the length (default U(0.10, 0.20) m) and the taper (U(1.10, 1.35))
are drawn and recorded in the annotation (`forearm`). The arm is rendered with
the hand's skin and has its own label in the mask (synth/shards.py MASK_VALUES);
annotations stay on the hand's vertices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .meshops import boundary_loops

RINGS = 10          # rings along the tube (besides the wrist loop itself)
CAP_RINGS = (0.75, 0.4)  # radii (share of the far ring) of the cap's inner rings
CAP_DEPTH = 0.35    # the cap's pole lies this share of the far ring's mean radius beyond it


@dataclass(frozen=True)
class WristLoop:
    """The dense mesh's wrist boundary in order, with its rest-pose frame."""
    indices: np.ndarray   # (n,) dense vertex ids, in boundary order
    rest: np.ndarray      # (n, 3) their rest positions
    centre: np.ndarray    # (3,) rest centroid
    axis: np.ndarray      # (3,) unit, away from the hand


def wrist_loop_indices(dense_faces: np.ndarray) -> np.ndarray:
    loops = boundary_loops(np.asarray(dense_faces))
    if len(loops) != 1:
        raise ValueError(f"a forearm needs one open boundary (the wrist); the render mesh has {len(loops)}")
    return np.asarray(loops[0])


def wrist_loop(dense_faces: np.ndarray, dense_rest: np.ndarray) -> WristLoop:
    idx = wrist_loop_indices(dense_faces)
    pts = dense_rest[idx]
    centre = pts.mean(axis=0)
    axis = np.linalg.svd(pts - centre)[2][2]
    if axis @ (centre - dense_rest.mean(axis=0)) < 0:
        axis = -axis
    return WristLoop(idx, pts, centre, axis / np.linalg.norm(axis))


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def forearm_faces(n: int) -> np.ndarray:
    """Faces of the tube (RINGS + len(CAP_RINGS) rings after the wrist ring, then the pole), vertex
    layout ring-major: ring r occupies r*n .. r*n + n - 1, the pole is the last vertex. With ring 0 the
    wrist loop in boundary_loops' order, hand and arm together are closed and consistently oriented
    outwards (tests/test_forearm.py)."""
    rings = 1 + RINGS + len(CAP_RINGS)
    faces = []
    for r in range(rings - 1):
        for i in range(n):
            a, b = r * n + i, r * n + (i + 1) % n
            c, d = a + n, b + n
            faces += [(a, b, c), (b, d, c)]
    pole = rings * n
    last = (rings - 1) * n
    faces += [(last + i, last + (i + 1) % n, pole) for i in range(n)]
    return np.asarray(faces, dtype=np.int64)


def forearm_rest(loop: WristLoop, length: float, taper: float) -> np.ndarray:
    """Rest-pose vertices (layout of forearm_faces) of a forearm of `length` m and far girth `taper`."""
    loop_rest = loop.rest
    radial = loop_rest - loop.centre
    radial = radial - np.outer(radial @ loop.axis, loop.axis)   # cross-section in the axis' plane
    along = (loop_rest - loop.centre) @ loop.axis               # the loop's own departure from that plane
    s = length * (np.arange(1, RINGS + 1) / RINGS) ** 1.15      # denser rings near the seam
    rings = [loop_rest]
    for sk in s:
        fade = 1.0 - _smoothstep(sk / (0.3 * length))           # the loop's wobble flattens out
        scale = 1.0 + (taper - 1.0) * _smoothstep(sk / length)
        rings.append(loop.centre + np.outer(sk + fade * along, loop.axis) + scale * radial)
    far = rings[-1]
    far_centre = loop.centre + length * loop.axis
    mean_radius = np.linalg.norm(far - far_centre, axis=1).mean()
    for share in CAP_RINGS:
        depth = CAP_DEPTH * mean_radius * np.sqrt(1.0 - share ** 2)
        rings.append(far_centre + loop.axis * depth + share * (far - far_centre))
    pole = far_centre + loop.axis * CAP_DEPTH * mean_radius
    return np.vstack(rings + [pole[None]])


def root_rotation(global_orient) -> np.ndarray:
    """The rotation of the pose's first three parameters (the root joint's axis-angle)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.asarray(global_orient, dtype=np.float64)).as_matrix()


def pose_forearm(rest: np.ndarray, loop: WristLoop, dense_posed: np.ndarray, global_orient,
                 root_joint: np.ndarray) -> np.ndarray:
    """The forearm moved by the root joint; its first ring replaced by the posed wrist loop itself."""
    R = root_rotation(global_orient)
    posed = (rest - root_joint) @ R.T + root_joint
    posed[:len(loop.indices)] = dense_posed[loop.indices]
    return posed


def draw_forearm(rng: np.random.Generator, length_range=(0.10, 0.20), taper_range=(1.10, 1.35)) -> dict:
    return {"length_m": round(float(rng.uniform(*length_range)), 6),
            "taper": round(float(rng.uniform(*taper_range)), 6)}
