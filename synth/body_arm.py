"""The body's real arm on the rendered hand (OpenHand 2; the arm is built by synth/openhand2/arm.py).

The arm is the MakeHuman body's right arm from the wrist loop to about 12 cm past the elbow, in the hand's
model frame and joined to the sculpted mesh's wrist loop (its first len(wrist_loop) vertices are that
loop, the layout synth/forearm.py's tube uses too, so the scene, skin and mask treat both alike).

Per sample, anatomical wrist angles are drawn (`draw_arm`): flexion (+, palm towards the forearm's front)
or extension (-) about the wrist's lateral axis, radial (-) or ulnar (+) deviation about the palm normal,
and a twist of the forearm about its own axis (pronation / supination, which swings the elbow and upper
arm around). The hand stays where the pose puts it and the arm turns about the wrist joint by the inverse
of these angles; each vertex follows the hand by its `hand_share` (1 on the wrist loop, 0 from 5 cm up the
forearm), so the skin bends over the wrist. A draw is kept only if
- the arm's cut end is outside the image (a photograph never shows it), and so is all of the upper arm (past
  the elbow joint): in a photograph the arm leaves the frame, it does not bend back into it;
- every arm vertex is at least CAMERA_CLEARANCE_M from the camera (a camera inside an arm shows its inside),
- the arm hides no more keypoints than the straight arm (all angles 0) does from this camera, or at most
  MAX_HIDDEN_KEYPOINTS: seen from its own side a forearm hides the wrist and the palm's base (as a real one
  does), but the bent elbow must not swing the upper arm across the hand;
the first half of the ARM_DRAWS draws from the configured ranges, the second half from the wrist's full
active range (ANATOMICAL_RANGES; a view from behind the forearm is how a photograph of a hand bent far back
or forward looks); then the best draw by (conditions met, hidden keypoints, end margin).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

ARM_DRAWS = 16
CAMERA_CLEARANCE_M = 0.12
MAX_HIDDEN_KEYPOINTS = 3
HIDE_DEPTH_M = 0.02          # a keypoint is hidden when the arm's surface lies this much nearer at its pixel
COVER_RASTER = 64            # pixels of the coarse raster the hiding is measured on
# the wrist's active range of motion in adults (flexion 0-80, extension 0-70, ulnar 0-35, radial 0-20 deg)
ANATOMICAL_RANGES = {"flexion": (-70.0, 80.0), "deviation": (-20.0, 35.0)}
WRIST_AXES = {"flexion": 2, "deviation": 1}   # model axes: z (lateral, thumb side), y (palm normal)


@dataclass(frozen=True)
class BodyArm:
    rest: np.ndarray          # (Na, 3) model frame, rest pose; rows 0..n-1 the wrist loop
    faces: np.ndarray         # (Fa, 3)
    wrist_loop: np.ndarray    # (n,) render-mesh vertex ids of the loop, rows 0..n-1 of `rest`
    hand_share: np.ndarray    # (Na,)
    nearest_loop: np.ndarray  # (Na,) the nearest wrist-loop row of each vertex (rest)
    far_loop: np.ndarray      # (m,) rows of the cut end's boundary
    forearm_axis: np.ndarray  # (3,) unit, elbow to wrist
    upper: np.ndarray         # (Na,) bool: the vertices past the elbow joint (the upper arm)

    @classmethod
    def from_model(cls, model) -> "BodyArm | None":
        d = getattr(model, "arm_data", None)
        if d is None:
            return None
        rest, axis = np.asarray(d["vertices"], float), np.asarray(d["forearm_axis"], float)
        return cls(rest, np.asarray(d["faces"], np.int64), np.asarray(d["wrist_loop"], np.int64),
                   np.asarray(d["hand_share"], float), np.asarray(d["nearest_loop"], np.int64),
                   np.asarray(d["far_loop"], np.int64), axis, (rest - np.asarray(d["elbow"])) @ axis < 0)


def wrist_rotation(angles: dict, forearm_axis: np.ndarray) -> np.ndarray:
    """The hand's rotation relative to the forearm (model frame, rest pose) for the drawn angles."""
    ez, ey = np.eye(3)[WRIST_AXES["flexion"]], np.eye(3)[WRIST_AXES["deviation"]]
    r = (Rotation.from_rotvec(np.radians(angles["flexion_deg"]) * ez)
         * Rotation.from_rotvec(np.radians(angles["deviation_deg"]) * ey)
         * Rotation.from_rotvec(-np.radians(angles["twist_deg"]) * forearm_axis))
    return r.as_matrix()


def pose_arm(arm: BodyArm, angles: dict, dense_posed: np.ndarray, global_orient, root_joint) -> np.ndarray:
    """(Na, 3) the arm for this sample in the model frame; rows 0..n-1 the posed wrist loop itself."""
    R_hand = Rotation.from_rotvec(np.asarray(global_orient, dtype=np.float64)).as_matrix()
    R_arm = R_hand @ wrist_rotation(angles, arm.forearm_axis).T
    local = arm.rest - root_joint
    hand = local @ R_hand.T + root_joint
    fore = local @ R_arm.T + root_joint
    s = arm.hand_share[:, None]
    posed = s * hand + (1 - s) * fore
    posed[:len(arm.wrist_loop)] = dense_posed[arm.wrist_loop]
    return posed


def end_margin(posed_cam: np.ndarray, arm: BodyArm, K: np.ndarray, size: int, rows=None) -> float:
    """How far (share of the image size) the cut end's nearest point (or that of the arm's `rows`) lies
    outside the image; negative when some of it is inside; +inf when it is all behind the camera."""
    from .raster import project

    pts = posed_cam[arm.far_loop if rows is None else rows]
    front = pts[:, 2] > 1e-6
    if not front.any():
        return np.inf
    uv = project(pts[front], K)
    lo, hi = -0.5, size - 0.5
    outside = np.maximum.reduce([lo - uv[:, 0], lo - uv[:, 1], uv[:, 0] - hi, uv[:, 1] - hi])
    return float(outside.min() / size)


def hidden_keypoints(arm_cam: np.ndarray, faces: np.ndarray, keypoints_cam: np.ndarray, K: np.ndarray,
                     size: int) -> int:
    """How many keypoints the arm hides (its surface at the keypoint's pixel HIDE_DEPTH_M or more nearer),
    on a COVER_RASTER-pixel raster of the image."""
    from .raster import depth_at_pixels, project

    if (arm_cam[:, 2] <= 1e-3).any():
        front = np.all(arm_cam[faces, 2] > 1e-3, axis=1)
        faces = faces[front]
    scale = COVER_RASTER / size
    Ks = np.diag([scale, scale, 1.0]) @ np.asarray(K, dtype=np.float64)
    Ks[:2, 2] += 0.5 * scale - 0.5          # pixel centres stay pixel centres
    px = np.round(project(keypoints_cam, Ks)).astype(int)
    inside = (px >= 0).all(axis=1) & (px < COVER_RASTER).all(axis=1)
    d = depth_at_pixels(arm_cam, faces, Ks, px[inside])
    return int((d < keypoints_cam[inside, 2] - HIDE_DEPTH_M).sum())


def draw_arm(rng: np.random.Generator, arm: BodyArm, ranges: dict, dense_posed, global_orient, root_joint,
             keypoints_cam: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray, size: int) -> tuple:
    """(record: the angles, hidden keypoints and draws used; posed arm (Na, 3)) of a sample, drawn as the
    module docstring says."""
    straight = pose_arm(arm, {"flexion_deg": 0.0, "deviation_deg": 0.0, "twist_deg": 0.0}, dense_posed,
                        global_orient, root_joint) @ R.T + t
    allowed = max(MAX_HIDDEN_KEYPOINTS, hidden_keypoints(straight, arm.faces, keypoints_cam, K, size))
    best = None
    for attempt in range(ARM_DRAWS):
        span = ranges if attempt < ARM_DRAWS // 2 else {**ranges, **ANATOMICAL_RANGES}
        angles = {f"{k}_deg": round(float(rng.uniform(*span[k])), 6) for k in ("flexion", "deviation", "twist")}
        posed = pose_arm(arm, angles, dense_posed, global_orient, root_joint)
        cam = posed @ R.T + t
        margin = min(end_margin(cam, arm, K, size), end_margin(cam, arm, K, size, arm.upper))
        clear = np.linalg.norm(cam, axis=1).min() >= CAMERA_CLEARANCE_M
        hidden = hidden_keypoints(cam, arm.faces, keypoints_cam, K, size)
        ok = margin > 0 and clear and hidden <= allowed
        score = (ok, clear and margin > 0, -hidden, margin)
        if best is None or score > best[0]:
            best = (score, dict(angles, hidden_keypoints=hidden, hidden_allowed=allowed), posed)
        if ok:
            break
    _, record, posed = best
    return dict(record, draws=attempt + 1), posed
