"""The complement dataset's pose space (MobRecon, section 6).

Base poses: each of the five fingers is either extended (every flexion angle 0)
or totally bent (the angles of FLEXION_DEG), so a base pose is a 5-bit mask:
bit 0 thumb, bit 1 index, bit 2 middle, bit 3 ring, bit 4 little. Base pose id
= mask (0 = flat hand, 31 = fist).

Intermediate poses: every pair of base poses (i < j, 496 pairs in
lexicographic order) is interpolated at t = 1/4, 1/2, 3/4 by per-joint slerp.

Pose ids (stable): 0..31 the base poses; 32 + 3 * p + k the k-th
interpolation (t = (k + 1) / 4) of the p-th pair. 32 + 3 * 496 = 1520 poses.

Flexion axes are derived from the model's own rest joints, not MANO's local
axes: a joint bends about the axis perpendicular to its bone and to the
direction the finger pad faces (the palm normal for the long fingers; for the
thumb, halfway between the palm normal and the direction to the ring finger's
base, so that a bent thumb closes over the palm). Positive angles bend.

Optional finger splay (the paper's stated future work, off by default): every
base pose also comes spread (index, ring and little abducted away from the
middle finger about the palm normal, thumb abducted from the palm), doubling
the base poses to 64 (bit 5 = spread) and giving 64 + 3 * 2016 poses.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.spatial.transform import Rotation

FINGER_ORDER = ("thumb", "index", "middle", "ring", "little")
# MANO joint indices of each finger's three joints, proximal to distal
FINGER_JOINTS = {"thumb": (13, 14, 15), "index": (1, 2, 3), "middle": (4, 5, 6),
                 "ring": (10, 11, 12), "little": (7, 8, 9)}
# FreiHAND keypoint indices of (joint1, joint2, joint3, tip) per finger
FINGER_KEYPOINTS = {"thumb": (1, 2, 3, 4), "index": (5, 6, 7, 8), "middle": (9, 10, 11, 12),
                    "ring": (13, 14, 15, 16), "little": (17, 18, 19, 20)}

# Totally bent: flexion (degrees) of (MCP, PIP, DIP) for the long fingers and
# (CMC, MCP, IP) for the thumb. Within the active ranges of motion of adult
# hands (MCP 0-90, PIP 0-110, DIP 0-80, thumb MCP 0-55, IP 0-80), and chosen
# so that no base pose or blend presses the default hand (OpenHand 2) through
# itself (tests/test_poses.py measures it): its sculpted fingers are thicker
# than OpenHand 1's tubes, whose (75, 95, 55) pushed OpenHand 2's tips into
# the palm (20 % of the vertices inside the fist).
FLEXION_DEG = {
    "thumb": (20.0, 45.0, 60.0),
    "index": (70.0, 85.0, 45.0),
    "middle": (70.0, 85.0, 45.0),
    "ring": (70.0, 85.0, 45.0),
    "little": (70.0, 85.0, 45.0),
}
# The thumb's pad faces partly the palm, partly this keypoint (FreiHAND index)
THUMB_TARGET = 9  # middle finger MCP
THUMB_TARGET_MIX = 0.3
# Spread (optional splay extension): abduction (degrees) at the first joint about the palm normal
SPLAY_DEG = {"thumb": 20.0, "index": 10.0, "middle": 0.0, "ring": -8.0, "little": -15.0}

NUM_BASE = 32
NUM_PAIRS = NUM_BASE * (NUM_BASE - 1) // 2
INTERPOLATION_T = (0.25, 0.5, 0.75)
NUM_POSES = NUM_BASE + len(INTERPOLATION_T) * NUM_PAIRS  # 1520


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@dataclass
class JointAxes:
    flexion: np.ndarray  # (16, 3) unit flexion axis per MANO joint (row 0 unused)
    palm_normal: np.ndarray  # (3,) pointing out of the palm


def derive_axes(keypoints: np.ndarray) -> JointAxes:
    """Flexion axes from the rest-pose keypoints (21, 3) in FreiHAND order."""
    k = np.asarray(keypoints, dtype=np.float64)
    wrist, index_mcp, little_mcp = k[0], k[5], k[17]
    # for a right hand, (index - wrist) x (little - wrist) points out of the palm
    palm = _unit(np.cross(index_mcp - wrist, little_mcp - wrist))
    flexion = np.zeros((16, 3))
    for name in FINGER_ORDER:
        chain = FINGER_KEYPOINTS[name]
        for joint, (a, b) in zip(FINGER_JOINTS[name], zip(chain[:-1], chain[1:])):
            bone = _unit(k[b] - k[a])
            pad = palm
            if name == "thumb":
                towards = _unit(k[THUMB_TARGET] - k[a])
                pad = _unit(THUMB_TARGET_MIX * towards + (1 - THUMB_TARGET_MIX) * palm)
            pad = _unit(pad - bone * (pad @ bone))
            flexion[joint] = _unit(np.cross(bone, pad))  # rotating the bone about it moves it to the pad
    return JointAxes(flexion=flexion, palm_normal=palm)


def base_pose(mask: int, axes: JointAxes, spread: bool = False) -> np.ndarray:
    """The 48-vector (3 global + 15 x 3 axis-angle, flat) of a base pose."""
    if not 0 <= mask < NUM_BASE:
        raise ValueError(f"base pose mask must be in 0..31, got {mask}")
    pose = np.zeros(48)
    for bit, name in enumerate(FINGER_ORDER):
        joints = FINGER_JOINTS[name]
        rots = [Rotation.identity()] * 3
        if mask >> bit & 1:
            rots = [Rotation.from_rotvec(axes.flexion[j] * np.radians(a))
                    for j, a in zip(joints, FLEXION_DEG[name])]
        if spread and SPLAY_DEG[name]:
            # abduct first, in the parent's frame, then flex
            rots[0] = Rotation.from_rotvec(axes.palm_normal * np.radians(SPLAY_DEG[name])) * rots[0]
        for j, r in zip(joints, rots):
            pose[3 * j:3 * j + 3] = r.as_rotvec()
    return pose


def slerp_poses(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Per-joint spherical interpolation of two (48,) axis-angle poses."""
    ra = Rotation.from_rotvec(np.asarray(a).reshape(16, 3))
    rb = Rotation.from_rotvec(np.asarray(b).reshape(16, 3))
    step = Rotation.from_rotvec((ra.inv() * rb).as_rotvec() * t)
    return (ra * step).as_rotvec().reshape(48)


def pair_list(num_base: int = NUM_BASE) -> list:
    return list(combinations(range(num_base), 2))


def num_poses(splay: bool = False) -> int:
    """How many poses the pose space has: NUM_POSES (1520), or 64 + 3 * 2016 with splay."""
    num_base = NUM_BASE * (2 if splay else 1)
    return num_base + len(INTERPOLATION_T) * num_base * (num_base - 1) // 2


def describe_pose(pose_id: int, splay: bool = False) -> dict:
    """What a pose id stands for: a base pose, or (pair, t)."""
    num_base = NUM_BASE * (2 if splay else 1)
    total = num_poses(splay)
    if not 0 <= pose_id < total:
        raise ValueError(f"pose id {pose_id} out of range 0..{total - 1}")
    if pose_id < num_base:
        return {"kind": "base", "mask": pose_id}
    p, k = divmod(pose_id - num_base, len(INTERPOLATION_T))
    i, j = pair_list(num_base)[p]
    return {"kind": "blend", "a": i, "b": j, "t": INTERPOLATION_T[k]}


def pose_name(pose_id: int, splay: bool = False) -> str:
    """A short human-readable name: which fingers are bent, or which blend."""
    d = describe_pose(pose_id, splay)
    if d["kind"] == "blend":
        return f"{d['a']}->{d['b']} t={d['t']}"
    bent = [f for bit, f in enumerate(FINGER_ORDER) if d["mask"] >> bit & 1]
    spread = " spread" if d["mask"] >= NUM_BASE else ""
    return ("flat" if not bent else "fist" if len(bent) == 5 else "bent " + "+".join(bent)) + spread


def complement_poses(axes: JointAxes | None = None, splay: bool = False, model=None) -> np.ndarray:
    """All poses of the complement dataset as flat MANO parameters, (1520, 48) by default.

    Axes come from `model` (a HandModel; OpenHand when neither is given).
    """
    if axes is None:
        if model is None:
            from .hand_model import HandModel

            model = HandModel()
        axes = derive_axes(model.joint_regressor @ model.template)
    bases = [base_pose(m, axes) for m in range(NUM_BASE)]
    if splay:
        bases += [base_pose(m, axes, spread=True) for m in range(NUM_BASE)]
    poses = list(bases)
    for i, j in pair_list(len(bases)):
        poses += [slerp_poses(bases[i], bases[j], t) for t in INTERPOLATION_T]
    return np.asarray(poses)
