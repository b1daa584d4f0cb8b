"""OpenHand's surface: a palm tube with four finger tubes and a thumb tube, 778 vertices.

Topology (fixed for every proportion, so shapes share one vertex order):
- the palm is a grid of PALM_ROWS rings x PALM_COLS columns, from the open wrist
  loop (row 0) to the knuckle line (last row);
- the knuckle ring is split into four 10-vertex finger rings, and adjacent
  fingers are joined by one web quad each;
- a 2 x 3 block of palm quads on the radial-palmar side is removed; its
  10-vertex border is the base ring of the thumb tube;
- each finger tube is a stack of 10-vertex rings closed by a 5-vertex cap ring
  and one tip vertex (the fingertip keypoint).
Winding is made consistent and outward after construction (see orient_outward).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .proportions import FINGERS, KNUCKLES, THUMB_DIRECTION, THUMB_PAD, Proportions

PALM_ROWS = 7
PALM_COLS = 40
RING = 10  # vertices per finger ring
# columns of the knuckle ring owned by each long finger, in ring order
FINGER_COLUMNS = {
    "index": [36, 37, 38, 39, 0, 1, 2, 3, 4, 5],
    "middle": [6, 7, 8, 9, 10, 31, 32, 33, 34, 35],
    "ring": [11, 12, 13, 14, 15, 26, 27, 28, 29, 30],
    "little": [16, 17, 18, 19, 20, 21, 22, 23, 24, 25],
}
# ring angle (degrees) of the first vertex of each finger ring; the ring then
# advances by 36 degrees (angle 90 = dorsal, 0 = radial side, 270 = palmar)
FINGER_FIRST_ANGLE = {"index": 198.0, "middle": 18.0, "ring": 18.0, "little": 18.0}
WEBS = [(5, 6, 35, 36), (10, 11, 30, 31), (15, 16, 25, 26)]
# thumb hole: palm rows 2..4 and columns 38..41 (mod 40)
HOLE_ROWS = (2, 4)
HOLE_COLS = (38, 41)
# full 10-vertex rings per tube (the knuckle/hole ring not counted) and how
# many of them fall in each segment; the last segment's rings stop before the tip
TUBE_RINGS = {
    "thumb": (4, 4, 3),
    "index": (4, 3, 2),
    "middle": (4, 3, 3),
    "ring": (4, 3, 2),
    "little": (3, 3, 2),
}
NUM_VERTICES = 778
# the thumb's first rings blend (share, height above the palm in m) with the hole's border
EXTRUDE = ((0.6, 0.005), (0.25, 0.009))

# MANO joint order: wrist, index1-3, middle1-3, little1-3, ring1-3, thumb1-3
MANO_FINGER_JOINTS = {"index": (1, 2, 3), "middle": (4, 5, 6), "little": (7, 8, 9),
                      "ring": (10, 11, 12), "thumb": (13, 14, 15)}
MANO_PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14])


@dataclass
class HandMesh:
    vertices: np.ndarray   # (778, 3)
    faces: np.ndarray      # (F, 3), outward winding
    joints: np.ndarray     # (16, 3) MANO order
    tips: dict             # finger -> fingertip vertex id
    finger: np.ndarray     # (778,) finger index into FINGERS owning the vertex (palm: column's finger)
    on_palm: np.ndarray    # (778,) bool
    chain_s: np.ndarray    # (778,) distance along the owning finger's axis from its first joint
    frames: dict           # finger -> (direction, lateral, dorsal) unit vectors
    hole_loop: np.ndarray  # palm vertex ids bordering the thumb
    wrist_loop: np.ndarray  # boundary loop vertex ids (row 0)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def _finger_frame(splay_deg: float):
    a = np.radians(splay_deg)
    direction = np.array([-np.cos(a), 0.0, np.sin(a)])
    lateral = np.array([np.sin(a), 0.0, np.cos(a)])  # towards the thumb side
    return direction, lateral, np.array([0.0, 1.0, 0.0])


def _thumb_frame():
    d = _unit(THUMB_DIRECTION)
    pad = np.asarray(THUMB_PAD, float)
    pad = _unit(pad - d * (pad @ d))
    dorsal = -pad
    lateral = np.cross(dorsal, d)  # right-handed (lateral, dorsal, -direction) as for fingers
    return d, _unit(lateral), dorsal


def _ring(center, lateral, dorsal, r_lat, r_dors, angles_deg, palmar_fullness=1.08):
    phi = np.radians(angles_deg)
    s = np.sin(phi)
    r_d = np.where(s < 0, r_dors * palmar_fullness, r_dors)
    return center + np.outer(r_lat * np.cos(phi), lateral) + np.outer(r_d * s, dorsal)


def _ring_positions(segments, counts, first=0.0, tip_stop=0.65):
    """Distances along a straight chain for the full rings of each segment.

    Rings end exactly on the joints between segments (so joints have a ring
    around them); the first segment's rings start after `first` (the thumb's
    base lies inside the palm) and the last segment's stop at tip_stop of it.
    """
    s, start = [], 0.0
    for i, (length, n) in enumerate(zip(segments, counts)):
        lo = first if i == 0 else 0.0
        hi = length * (tip_stop if i == len(segments) - 1 else 1.0)
        s += [start + lo + (hi - lo) * (k + 1) / n for k in range(n)]
        start += length
    return np.array(s)


def _tube_faces(a: np.ndarray, b: np.ndarray) -> list:
    n = len(a)
    out = []
    for k in range(n):
        k1 = (k + 1) % n
        out += [(a[k], a[k1], b[k1]), (a[k], b[k1], b[k])]
    return out


def _cap_faces(ring: np.ndarray, cap: np.ndarray, tip: int) -> list:
    out = []
    m = len(cap)
    for i in range(m):
        o0, o1, o2 = ring[2 * i], ring[2 * i + 1], ring[(2 * i + 2) % len(ring)]
        c0, c1 = cap[i], cap[(i + 1) % m]
        out += [(o0, o1, c0), (o1, c1, c0), (o1, o2, c1), (c0, c1, tip)]
    return out


def build_mesh(p: Proportions | None = None) -> HandMesh:
    p = p or Proportions()
    wrist = np.asarray(p.wrist, float)
    verts: list = []
    faces: list = []
    finger_of: list = []
    palm_flag: list = []
    chain: list = []

    def add(points, finger_idx, on_palm, s):
        start = len(verts)
        verts.extend(np.atleast_2d(points))
        n = len(np.atleast_2d(points))
        finger_of.extend([finger_idx] * n)
        palm_flag.extend([on_palm] * n)
        chain.extend(np.broadcast_to(s, (n,)).tolist())
        return np.arange(start, start + n)

    # --- knuckle ring: one ellipse per long finger around its MCP
    joints = np.zeros((16, 3))
    joints[0] = wrist
    frames, knuckle_pts, col_finger = {}, np.zeros((PALM_COLS, 3)), np.zeros(PALM_COLS, int)
    for name, (frac, z, y, splay) in KNUCKLES.items():
        d, lat, dors = _finger_frame(splay)
        frames[name] = (d, lat, dors)
        mcp = wrist + np.array([-frac * p.palm_length, y, z * p.mcp_spread])
        seg = p.segment_lengths(name)
        j1, j2, j3 = MANO_FINGER_JOINTS[name]
        joints[j1], joints[j2], joints[j3] = mcp, mcp + d * seg[0], mcp + d * (seg[0] + seg[1])
        angles = FINGER_FIRST_ANGLE[name] + 36.0 * np.arange(RING)
        r_lat = 0.88 * p.radius(name)[0]  # narrower than the finger: room for the webs
        center = mcp + np.array([0.0, -0.1 * p.palm_thickness, 0.0])
        knuckle_pts[FINGER_COLUMNS[name]] = _ring(center, lat, dors, r_lat, p.palm_thickness / 2, angles, 1.0)
        col_finger[FINGER_COLUMNS[name]] = FINGERS.index(name)

    # --- palm grid: wrist ellipse -> knuckle ring, same angular parameter per column
    dc = knuckle_pts.mean(axis=0)
    half = (knuckle_pts - dc).max(axis=0)
    rel = knuckle_pts - dc
    # angular parameter of each column: arc length along the (normalised) knuckle
    # loop, so that it increases monotonically even across the dips of the webs
    norm = np.stack([rel[:, 1] / half[1], rel[:, 2] / half[2]], axis=1)
    step = np.linalg.norm(np.roll(norm, -1, axis=0) - norm, axis=1)
    arc = np.concatenate([[0.0], np.cumsum(step)[:-1]]) / step.sum()
    psi = np.arctan2(norm[0, 0], norm[0, 1]) + 2 * np.pi * arc
    wc = wrist + np.array([0.012, 0.0, -0.003])
    wrist_pts = wc + np.stack([np.zeros(PALM_COLS), p.wrist_thickness / 2 * np.sin(psi),
                               p.wrist_width / 2 * np.cos(psi)], axis=1)
    # the knuckle ring's per-finger waviness fades towards the wrist: proximal
    # rows follow a rounded rectangle (superellipse) with the knuckles' extent
    off_w, off_k = wrist_pts - wc, knuckle_pts - dc
    smooth_k = off_k.copy()
    smooth_k[:, 1] = half[1] * np.sign(np.sin(psi)) * np.abs(np.sin(psi)) ** (2 / 3)
    smooth_k[:, 2] = half[2] * np.sign(np.cos(psi)) * np.abs(np.cos(psi)) ** (2 / 3)
    grid = np.zeros((PALM_ROWS, PALM_COLS, 3))
    for r in range(PALM_ROWS):
        u = r / (PALM_ROWS - 1)
        g = 1.0 - (1.0 - u) ** 2  # the palm widens quickly after the wrist
        target = smooth_k + (off_k - smooth_k) * u ** 4
        off = np.empty_like(off_w)
        off[:, 0] = off_w[:, 0] + (off_k[:, 0] - off_w[:, 0]) * u
        off[:, 1] = off_w[:, 1] + (target[:, 1] - off_w[:, 1]) * u
        off[:, 2] = off_w[:, 2] + (target[:, 2] - off_w[:, 2]) * g
        grid[r] = wc + (dc - wc) * u + off
    # thenar (radial-palmar, around the thumb) and hypothenar (ulnar-palmar) bulges
    rows = np.arange(PALM_ROWS)[:, None]
    cols = np.arange(PALM_COLS)[None, :]
    outward = grid - grid.mean(axis=1, keepdims=True)
    outward[..., 0] = 0.0
    outward /= np.linalg.norm(outward, axis=-1, keepdims=True)
    col_dist = np.minimum(np.abs(cols - 39.5), PALM_COLS - np.abs(cols - 39.5))
    thenar = p.thenar * np.exp(-((rows - 2.8) / 1.6) ** 2 - (col_dist / 3.0) ** 2)
    hypothenar = 0.45 * p.thenar * np.exp(-((rows - 2.8) / 1.6) ** 2 - ((cols - 23.0) / 2.5) ** 2)
    grid += outward * (thenar + hypothenar)[..., None]
    grid[-1] = knuckle_pts  # the knuckle ring belongs to the fingers' geometry

    (r0, r1), (c0, c1) = HOLE_ROWS, HOLE_COLS
    interior = {(r, c % PALM_COLS) for r in range(r0 + 1, r1) for c in range(c0 + 1, c1)}
    vid = -np.ones((PALM_ROWS, PALM_COLS), int)
    for r in range(PALM_ROWS):
        for c in range(PALM_COLS):
            if (r, c) in interior:
                continue
            s_along = (grid[r, c] - joints[MANO_FINGER_JOINTS[FINGERS[col_finger[c]]][0]]) @ \
                frames[FINGERS[col_finger[c]]][0]
            vid[r, c] = add(grid[r, c], col_finger[c], True, s_along)[0]
    hole_quads = {(r, c % PALM_COLS) for r in range(r0, r1) for c in range(c0, c1)}
    for r in range(PALM_ROWS - 1):
        for c in range(PALM_COLS):
            if (r, c) in hole_quads:
                continue
            c1_ = (c + 1) % PALM_COLS
            faces += [(vid[r, c], vid[r, c1_], vid[r + 1, c1_]), (vid[r, c], vid[r + 1, c1_], vid[r + 1, c])]
    top = vid[-1]
    for a, b, c, d in WEBS:
        faces += [(top[a], top[b], top[c]), (top[a], top[c], top[d])]

    tips = {}
    # --- long fingers
    for name in ("index", "middle", "ring", "little"):
        fi = FINGERS.index(name)
        d, lat, dors = frames[name]
        mcp = joints[MANO_FINGER_JOINTS[name][0]]
        seg = p.segment_lengths(name)
        r_base, r_tip = p.radius(name)
        angles = FINGER_FIRST_ANGLE[name] + 36.0 * np.arange(RING)
        s_rings = _ring_positions(seg, TUBE_RINGS[name])
        prev = top[FINGER_COLUMNS[name]]
        joint_s = np.array([seg[0], seg[0] + seg[1]])
        for s in s_rings:
            t = s / s_rings[-1]
            r_lat = r_base + (r_tip - r_base) * t
            bulge = 1.0 + 0.06 * np.exp(-((s - joint_s[:, None]) / 0.004) ** 2).sum()
            knuckle = (p.palm_thickness / 2 - 0.86 * r_lat) * np.exp(-(s / 0.010) ** 2)
            center = mcp + d * s + np.array([0.0, -0.1 * p.palm_thickness, 0.0]) * np.exp(-(s / 0.010) ** 2)
            ring = add(_ring(center, lat, dors, r_lat * bulge, (0.86 * r_lat + knuckle) * bulge, angles), fi, False, s)
            faces += _tube_faces(prev, ring)
            prev = ring
        total = seg.sum()
        cap_s = seg[0] + seg[1] + 0.88 * seg[2]
        cap = add(_ring(mcp + d * cap_s - dors * 0.1 * r_tip, lat, dors, 0.62 * r_tip, 0.55 * r_tip,
                        angles[::2]), fi, False, cap_s)
        tip = add(mcp + d * total - dors * 0.15 * r_tip, fi, False, total)[0]
        faces += _cap_faces(prev, cap, tip)
        tips[name] = tip

    # --- thumb: from the hole's border outwards along its own axis
    fi = FINGERS.index("thumb")
    d, lat, dors = _thumb_frame()
    frames["thumb"] = (d, lat, dors)
    loop = [(r0, c % PALM_COLS) for c in range(c0, c1)] + [(r, c1 % PALM_COLS) for r in range(r0, r1)] + \
           [(r1, c % PALM_COLS) for c in range(c1, c0, -1)] + [(r, c0 % PALM_COLS) for r in range(r1, r0, -1)]
    hole = np.array([vid[r, c] for r, c in loop])
    verts_arr = np.asarray(verts)
    hole_center = verts_arr[hole].mean(axis=0)
    depth = 0.018
    cmc = hole_center - d * depth
    seg = p.segment_lengths("thumb")
    joints[13], joints[14], joints[15] = cmc, cmc + d * seg[0], cmc + d * (seg[0] + seg[1])
    rel = verts_arr[hole] - hole_center
    hole_normal = np.mean([outward[r, c] for r, c in loop], axis=0)
    hole_normal /= np.linalg.norm(hole_normal)
    theta = np.unwrap(np.arctan2(rel @ dors, rel @ lat))
    direction = np.sign(theta[-1] - theta[0])
    uniform = theta[0] + direction * 2 * np.pi * np.arange(RING) / RING
    r_base, r_tip = p.radius("thumb")
    s_rings = _ring_positions(seg, TUBE_RINGS["thumb"], first=depth + 0.006)
    prev = hole
    joint_s = np.array([seg[0], seg[0] + seg[1]])
    for i, s in enumerate(s_rings):
        t = s / s_rings[-1]
        blend = min(1.0, (i + 1) / 3.0)
        ang = np.degrees(theta + (uniform - theta) * blend)
        r_lat = r_base + (r_tip - r_base) * t
        bulge = 1.0 + 0.05 * np.exp(-((s - joint_s[:, None]) / 0.004) ** 2).sum()
        pts = _ring(cmc + d * s, lat, dors, r_lat * bulge, 0.88 * r_lat * bulge, ang)
        if i < len(EXTRUDE):  # rise out of the palm first, then turn along the thumb's axis
            share, height = EXTRUDE[i]
            pts = share * (verts_arr[hole] + hole_normal * height) + (1 - share) * pts
        ring = add(pts, fi, False, s)
        faces += _tube_faces(prev, ring)
        prev = ring
    cap_s = seg[0] + seg[1] + 0.88 * seg[2]
    cap = add(_ring(cmc + d * cap_s - dors * 0.1 * r_tip, lat, dors, 0.62 * r_tip, 0.55 * r_tip,
                    np.degrees(uniform[::2])), fi, False, cap_s)
    tips["thumb"] = add(cmc + d * seg.sum() - dors * 0.15 * r_tip, fi, False, seg.sum())[0]
    faces += _cap_faces(prev, cap, tips["thumb"])

    vertices = np.asarray(verts, dtype=float)
    if len(vertices) != NUM_VERTICES:
        raise AssertionError(f"OpenHand generator produced {len(vertices)} vertices, expected {NUM_VERTICES}")
    faces = orient_outward(vertices, np.asarray(faces, dtype=np.int64), vid[0])
    return HandMesh(vertices=vertices, faces=faces, joints=joints, tips=tips,
                    finger=np.asarray(finger_of), on_palm=np.asarray(palm_flag),
                    chain_s=np.asarray(chain), frames=frames, hole_loop=hole, wrist_loop=vid[0].copy())


def orient_outward(vertices: np.ndarray, faces: np.ndarray, wrist_loop: np.ndarray) -> np.ndarray:
    """Make the winding consistent (flood fill over shared edges), then outward."""
    from synth.meshops import close_boundary, make_consistent, signed_volume

    faces = make_consistent(faces)
    v_closed, f_closed = close_boundary(vertices, faces, wrist_loop)
    if signed_volume(v_closed, f_closed) < 0:
        faces = faces[:, ::-1].copy()
    return faces
