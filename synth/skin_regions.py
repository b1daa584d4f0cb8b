"""Per-vertex skin regions of the render mesh, from the hand model's rest pose (numpy only).

`region_weights(model, render_mesh)` gives, for every dense render-mesh vertex,
weights in [0, 1] that the procedural skin shader (synth/skin_shader.py) reads
as mesh attributes. They are computed once per scene from the rest pose and
ride with the vertices, so they are pose-independent: a nail stays on its
finger's back whatever the pose.

Inputs (any MANO-format model: OpenHand or MANO): the template, its faces, the
LBS weights, the 21 rest keypoints (16 joints + 5 fingertip vertices) and the
subdivision matrix S of the render mesh. Positions and LBS weights are carried
to the dense mesh with S (dense = S @ verts; S's rows are convex, so carried
weights stay in [0, 1]) and the regions are evaluated on the dense vertices,
which resolves a fingernail's oval about three times finer than the 778
model vertices would.

Frames. The palm normal is the normal of the plane fitted through the wrist
and the four MCP joints, oriented out of the palm: the side the fingertips move
to when the fingers flex (synth.poses bends the fingers about axes built from
the same palm side; tests/test_skin_detail.py checks the tips' motion). Each
bone has a pad direction, the direction its finger flexes to (the pose space's
flexion axis x the bone): the palm normal for the long fingers, turned towards
the palm for the thumb. A vertex's pad direction is the LBS blend of its bones'
(the palm normal for joint 0); "palmar" means the rest-pose vertex normal faces
it, "dorsal" that it faces away.

Regions (lengths scale with the hand: palm length / 0.086 m):
- nail: the mesh's own nails where it has them (OpenHand 2: MakeHuman's nail texture sampled at the
  sculpted mesh's UVs); else the back of each distal segment near the tip, a soft-edged oval in the
  distal bone's (along s, around phi) coordinates: s = 0..1 from the DIP joint
  to the fingertip, centre s = 0.66, half-length 0.34 (weight >= 0.5, where
  the shader's sharpened edge lies, over s = 0.39..0.93: about 55-60 % of
  the segment),
  half-width 66 degrees about the dorsal direction; the weight falls linearly
  with the oval's radius, so the shader's threshold draws a rounded cuticle
  between the coarse mesh's rings;
- nail_edge: the free edge, smoothstep(0.72, 0.84, s) on the nail (where its
  weight is at least 0.3..0.6);
- knuckle: dorsal skin around the MCP and PIP joints (thumb: MCP and IP), an
  oval across the joint facing the back of the hand;
- tip: the fingertip pads (palmar side of the distal segment) and the tip's end;
- palm: the palmar side of the palm and the fingers;
- crease: palmar bands across the finger joints (flexion creases at the finger's
  base, the PIP and the DIP; the thumb's MCP and IP) and three palm lines (distal
  and proximal transverse creases, thenar crease): Gaussian bands (sigma 3.6 mm
  on the fingers, 5.5 mm on the palm, whose rows are that far apart) within
  which the shader draws the thin lines; where two bands meet the weight is
  the stronger minus the other, so it fades there;
- crease_coord: not a weight but the signed distance u (metres) of the vertex
  from the centre line of its crease, gently wobbled, as 0.5 + u / (2 *
  CREASE_COORD_RANGE_M) clipped to [0, 1]. It is linear across a face, so the
  shader draws sub-face thin lines from it (cos(2 pi u / period)).
"""
from __future__ import annotations

import numpy as np

from .poses import FINGER_JOINTS, FINGER_KEYPOINTS, FINGER_ORDER, derive_axes

REGIONS = ("nail", "nail_edge", "knuckle", "tip", "palm", "crease")
CREASE_COORD = "crease_coord"
CREASE_COORD_RANGE_M = 0.01   # crease_coord 0 / 1 = 10 mm on either side of the crease's centre line
ATTRIBUTES = REGIONS + (CREASE_COORD,)
REFERENCE_PALM_LENGTH_M = 0.086

NAIL_CENTRE, NAIL_HALF_LENGTH, NAIL_HALF_ANGLE_DEG = 0.66, 0.34, 66.0
NAIL_SHAPE = 2.0        # superellipse exponent: between an ellipse and a rounded rectangle
NAIL_EDGE = (0.72, 0.84)
# palm lines as polylines in palm coordinates (q across the palm: +1 index side, -1 little side at the
# MCPs; p along it: 0 wrist, 1 MCP line)
PALM_LINES = {
    "distal_transverse": [(-1.25, 0.78), (-0.45, 0.80), (0.25, 0.86), (0.55, 0.95)],
    "proximal_transverse": [(1.2, 0.74), (0.35, 0.69), (-0.55, 0.60)],
    "thenar": [(1.15, 0.74), (0.78, 0.62), (0.52, 0.46), (0.40, 0.30), (0.36, 0.14)],
}


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _smoothstep(e0, e1, x):
    t = np.clip((np.asarray(x, dtype=np.float64) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (outward for outward winding)."""
    v, f = np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def lbs_weights(model) -> np.ndarray:
    """(V, 16) LBS weights of the model (smplx's copy of the pickle's `weights`)."""
    return np.asarray(model.layer.lbs_weights.detach().double().numpy())


def palm_frame(keypoints: np.ndarray) -> dict:
    """Palm normal (out of the palm), palm axis (wrist -> middle MCP), the across-palm axis (towards the
    index) and the palm's length and half-width, from the rest keypoints (21, FreiHAND order)."""
    k = np.asarray(keypoints, dtype=np.float64)
    pts = k[[0, 5, 9, 13, 17]]
    normal = np.linalg.svd(pts - pts.mean(axis=0))[2][2]
    # out of the palm = the side the fingers flex to; synth.poses builds its flexion axes from this side
    if normal @ derive_axes(k).palm_normal < 0:
        normal = -normal
    axis = k[9] - k[0]
    length = float(np.linalg.norm(axis))
    axis = _unit(axis - normal * (axis @ normal))
    across = np.cross(normal, axis)
    if across @ (k[5] - k[17]) < 0:
        across = -across
    qi, ql = (k[5] - k[0]) @ across, (k[17] - k[0]) @ across
    return {"normal": normal, "axis": axis, "across": across, "length": length,
            "q0": 0.5 * (qi + ql), "half_width": 0.5 * abs(qi - ql)}


def _bone_pads(keypoints: np.ndarray, palm_normal: np.ndarray) -> np.ndarray:
    """(16, 3) unit pad direction of each MANO joint's bone (joint 0: the palm normal)."""
    k = np.asarray(keypoints, dtype=np.float64)
    axes = derive_axes(k)
    pads = np.zeros((16, 3))
    pads[0] = palm_normal
    for name in FINGER_ORDER:
        chain = FINGER_KEYPOINTS[name]
        for joint, a, b in zip(FINGER_JOINTS[name], chain[:-1], chain[1:]):
            bone = _unit(k[b] - k[a])
            pads[joint] = _unit(np.cross(axes.flexion[joint], bone))  # where the bone moves when it flexes
    return pads


def _polyline_distance(pts2: np.ndarray, line: np.ndarray):
    """Signed distance of 2D points to a polyline (sign: left of its direction) and the overshoot beyond
    its ends (0 inside), both in the points' units; the nearest segment decides."""
    best = np.full(len(pts2), np.inf)
    signed = np.zeros(len(pts2))
    over = np.zeros(len(pts2))
    arc = np.zeros(len(pts2))
    start = 0.0
    for i, (a, b) in enumerate(zip(line[:-1], line[1:])):
        seg = b - a
        length = np.linalg.norm(seg)
        d = seg / length
        rel = pts2 - a
        t = rel @ d
        perp = rel[:, 0] * d[1] - rel[:, 1] * d[0]
        lo = -np.inf if i == 0 else 0.0
        hi = np.inf if i == len(line) - 2 else length
        tc = np.clip(t, lo, hi)
        dist = np.hypot(t - tc, perp)
        take = dist < best
        best[take], signed[take] = dist[take], perp[take]
        beyond = np.zeros_like(t)
        if i == 0:
            beyond = np.maximum(beyond, -t)
        if i == len(line) - 2:
            beyond = np.maximum(beyond, t - length)
        over[take] = beyond[take]
        arc[take] = start + tc[take]
        start += length
    return signed, over, arc


def region_weights_at(points: np.ndarray, normals: np.ndarray, weights: np.ndarray,
                      keypoints: np.ndarray, nail_mask: np.ndarray | None = None) -> dict:
    """The regions at rest-pose surface points (N, 3) with unit normals (N, 3) and LBS weights (N, 16),
    for rest keypoints (21, 3) in FreiHAND order; name -> (N,) float32 in [0, 1]. `nail_mask` (N,): the
    mesh's own fingernails (OpenHand 2's, from MakeHuman's nail texture) in place of the drawn oval."""
    x = np.asarray(points, dtype=np.float64)
    n = np.asarray(normals, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    k = np.asarray(keypoints, dtype=np.float64)
    frame = palm_frame(k)
    scale = frame["length"] / REFERENCE_PALM_LENGTH_M
    pads = _bone_pads(k, frame["normal"])
    pad = _unit(w @ pads + 1e-9 * frame["normal"])
    facing_pad = np.einsum("ij,ij->i", n, pad)
    out = {name: np.zeros(len(x)) for name in REGIONS}
    crease_u = np.zeros(len(x))

    second = np.zeros(len(x))

    def take_crease(band, u):
        # each vertex keeps the crease whose band is strongest, and its coordinate u
        nonlocal crease_u, second
        better = band > out["crease"]
        second = np.where(better, out["crease"], np.maximum(second, band))
        out["crease"] = np.where(better, band, out["crease"])
        crease_u = np.where(better, u, crease_u)

    wobble_amp, wobble_len = 0.0005 * scale, 0.018 * scale
    for fi, name in enumerate(FINGER_ORDER):
        j1, j2, j3 = FINGER_JOINTS[name]
        c1, c2, c3, ct = (k[i] for i in FINGER_KEYPOINTS[name])
        member = w[:, [j1, j2, j3]].sum(axis=1)
        # --- distal segment: nail, its free edge and the pad
        d = ct - c3
        length = np.linalg.norm(d)
        d = d / length
        dors = -pads[j3]
        dors = _unit(dors - d * (dors @ d))
        lat = np.cross(d, dors)
        rel = x - c3
        s = rel @ d / length
        phi = np.degrees(np.arctan2(rel @ lat, rel @ dors))           # 0 = dorsal, +-180 = palmar
        facing_dors = n @ dors
        distal = w[:, j3]
        e = (np.abs((s - NAIL_CENTRE) / NAIL_HALF_LENGTH) ** NAIL_SHAPE
             + np.abs(phi / NAIL_HALF_ANGLE_DEG) ** NAIL_SHAPE) ** (1 / NAIL_SHAPE)
        if nail_mask is None:
            nail = np.clip((1.0 - e) / 0.4, 0.0, 1.0) * distal * _smoothstep(0.0, 0.35, facing_dors)
        else:
            # (the texture's island reaches the vertices around the nail: keep its dorsal side, as for the oval)
            nail = np.asarray(nail_mask, dtype=np.float64) * (member > 0.5) * (s > 0.0) \
                * _smoothstep(0.0, 0.35, facing_dors)
        out["nail"] = np.maximum(out["nail"], nail)
        # the free edge: the nail's width from s = 0.72 on, where the nail's weight is at least about
        # halfway (the shader's edge), without the oval's own fall-off, so that the few dense vertices
        # there carry it
        e_across = np.abs(phi / NAIL_HALF_ANGLE_DEG)
        edge = _smoothstep(*NAIL_EDGE, s) * (1 - _smoothstep(0.7, 1.0, e_across)) * (s < 1.0) * distal \
            * _smoothstep(0.3, 0.6, nail)
        out["nail_edge"] = np.maximum(out["nail_edge"], edge)
        palmar_phi = 180.0 - np.abs(phi)
        e_pad = np.hypot((s - 0.70) / 0.38, palmar_phi / 85.0)
        tip = np.maximum(1 - _smoothstep(0.5, 1.0, e_pad), _smoothstep(0.86, 1.0, s)) * distal * (1 - nail)
        out["tip"] = np.maximum(out["tip"], tip)
        # --- knuckles: MCP and PIP of the long fingers, MCP and IP of the thumb
        knuckles = ((j2, c2, c3, 0.0075), (j3, c3, ct, 0.0060)) if name == "thumb" else \
            ((j1, c1, c2, 0.0095), (j2, c2, c3, 0.0065))
        for joint, centre, nxt, sigma in knuckles:
            bd = _unit(nxt - centre)
            kd = -pads[joint]
            kd = _unit(kd - bd * (kd @ bd))
            kl = np.cross(bd, kd)
            r = x - centre
            a, l_ = r @ bd / (sigma * scale), r @ kl / (0.0075 * scale)
            knuckle = np.exp(-a ** 2 - l_ ** 2) * _smoothstep(0.15, 0.6, n @ kd)
            out["knuckle"] = np.maximum(out["knuckle"], knuckle)
        # --- flexion creases across the palmar side of the joints
        creases = [(c2, c3, 0.0), (c3, ct, 0.0)] if name == "thumb" else \
            [(c1, c2, 0.22), (c2, c3, 0.0), (c3, ct, 0.0)]
        for ci, (a_pt, b_pt, frac) in enumerate(creases):
            bd = _unit(b_pt - a_pt)
            centre = a_pt + frac * (b_pt - a_pt)
            u = (x - centre) @ bd
            lateral = (x - centre) @ np.cross(bd, pads[j1])
            band = np.exp(-(u / (0.0036 * scale)) ** 2) * member * _smoothstep(0.15, 0.55, facing_pad)
            take_crease(band, u + wobble_amp * np.sin(2 * np.pi * lateral / wobble_len + 1.7 * fi + ci))
    # --- palm lines
    rel = x - k[0]
    p_m = rel @ frame["axis"]
    q_m = rel @ frame["across"] - frame["q0"]
    pts2 = np.stack([q_m, p_m], axis=1)
    on_palm = _smoothstep(0.3, 0.7, n @ frame["normal"]) * (w[:, 0] + 0.5 * w[:, 13])
    for li, line in enumerate(PALM_LINES.values()):
        poly = np.asarray(line) * np.array([frame["half_width"], frame["length"]])
        signed, over, arc = _polyline_distance(pts2, poly)
        sigma = 0.0055 * scale  # about the palm rows' spacing: the shader draws the thin line
        band = np.exp(-(signed / sigma) ** 2 - (over / (0.008 * scale)) ** 2) * on_palm
        take_crease(band, signed + wobble_amp * np.sin(2 * np.pi * arc / wobble_len + 2.3 * li))
    # where two creases' bands meet, u jumps from one's coordinate to the other's, and a face across
    # the jump would show a false line: the weight fades out there
    out["crease"] = out["crease"] - second
    # --- the palmar side of palm and fingers
    out["palm"] = _smoothstep(0.0, 0.5, facing_pad)
    out[CREASE_COORD] = 0.5 + crease_u / (2 * CREASE_COORD_RANGE_M)
    return {key: np.clip(v, 0.0, 1.0).astype(np.float32) for key, v in out.items()}


def region_weights(model, render_mesh=None) -> dict:
    """name -> (num_dense,) float32 in [0, 1] for the dense render mesh (REGIONS and CREASE_COORD), from
    the model's rest pose; with render_mesh None, for the model's own vertices. Pose-independent:
    compute it once per scene."""
    template = np.asarray(model.template, dtype=np.float64)
    w = lbs_weights(model)
    keypoints = model.joint_regressor @ template
    if render_mesh is None:
        points, faces = template, model.faces
    else:
        points, faces = render_mesh.rest_vertices(model), render_mesh.faces
        w = render_mesh.vertex_weights(model)
        mask = getattr(render_mesh, "nail_mask", None)
        return region_weights_at(points, vertex_normals(points, faces), w, keypoints, nail_mask=mask)
    return region_weights_at(points, vertex_normals(points, faces), w, keypoints)
