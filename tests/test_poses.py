"""The complement pose space: ids, base poses, slerp blends, limits, no self-penetration."""
from itertools import combinations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from synth import poses as P


def test_counts_and_id_order(complement):
    poses = complement[0]
    assert poses.shape == (1520, 48) and P.NUM_POSES == 1520
    assert P.NUM_PAIRS == 496
    pairs = list(combinations(range(32), 2))
    assert P.pair_list() == pairs
    for pose_id in (32, 33, 34, 35, 700, 1519):
        d = P.describe_pose(pose_id)
        p, k = divmod(pose_id - 32, 3)
        assert (d["a"], d["b"], d["t"]) == (*pairs[p], (k + 1) / 4)
    assert P.describe_pose(5) == {"kind": "base", "mask": 5}
    with pytest.raises(ValueError, match="out of range"):
        P.describe_pose(1520)


def test_poses_are_deterministic_and_distinct(complement, hand_model):
    poses = complement[0]
    np.testing.assert_array_equal(P.complement_poses(model=hand_model), poses)
    # blends of different pairs can coincide (the midpoint of flat->thumb+index is the
    # midpoint of thumb->index): count the distinct poses from per-finger bend fractions
    fractions = set()
    for pose_id in range(1520):
        d = P.describe_pose(pose_id)
        if d["kind"] == "base":
            fractions.add(tuple(float(d["mask"] >> f & 1) for f in range(5)))
        else:
            a, b, t = d["a"], d["b"], d["t"]
            fractions.add(tuple((1 - t) * (a >> f & 1) + t * (b >> f & 1) for f in range(5)))
    assert len(np.unique(poses.round(9), axis=0)) == len(fractions)
    assert not poses[:, :3].any(), "the rig moves, not the hand: no global rotation"


def test_flexion_axes_are_perpendicular_to_bones_and_bend_towards_the_palm(hand_model):
    rest = hand_model.joint_regressor @ hand_model.template
    axes = P.derive_axes(rest)
    for name, joints in P.FINGER_JOINTS.items():
        kp = P.FINGER_KEYPOINTS[name]
        for j, (a, b) in zip(joints, zip(kp[:-1], kp[1:])):
            bone = rest[b] - rest[a]
            assert abs(axes.flexion[j] @ bone) < 1e-9 * np.linalg.norm(bone)
            assert np.linalg.norm(axes.flexion[j]) == pytest.approx(1.0)
    # bending the long fingers moves every fingertip to the palm side
    verts, kps = hand_model(torch.as_tensor(P.base_pose(0b11110, axes)[None], dtype=torch.float32))
    kps = kps[0].numpy()
    for tip, mcp in ((8, 5), (12, 9), (16, 13), (20, 17)):
        assert (kps[tip] - rest[mcp]) @ axes.palm_normal > 0.02
        assert (rest[tip] - rest[mcp]) @ axes.palm_normal < 0.005


def test_base_poses_bend_exactly_the_masked_fingers_by_the_table(complement, hand_model):
    poses = complement[0]
    for mask in range(32):
        rotvecs = poses[mask].reshape(16, 3)
        for bit, name in enumerate(P.FINGER_ORDER):
            angles = np.degrees(np.linalg.norm(rotvecs[list(P.FINGER_JOINTS[name])], axis=1))
            expected = P.FLEXION_DEG[name] if mask >> bit & 1 else (0.0, 0.0, 0.0)
            np.testing.assert_allclose(angles, expected, atol=1e-9)


def test_intermediate_poses_are_per_joint_slerps(complement):
    poses = complement[0]
    for pose_id in (32, 100, 777, 1519):
        d = P.describe_pose(pose_id)
        ra = Rotation.from_rotvec(poses[d["a"]].reshape(16, 3))
        rb = Rotation.from_rotvec(poses[d["b"]].reshape(16, 3))
        rt = Rotation.from_rotvec(poses[pose_id].reshape(16, 3))
        # on the geodesic: angle(a, t) = t * angle(a, b) and angle(t, b) = (1 - t) * angle(a, b)
        total = (ra.inv() * rb).magnitude()
        np.testing.assert_allclose((ra.inv() * rt).magnitude(), d["t"] * total, atol=1e-9)
        np.testing.assert_allclose((rt.inv() * rb).magnitude(), (1 - d["t"]) * total, atol=1e-9)
    a, b = np.zeros(48), np.zeros(48)
    b[3:6] = [0.0, 0.0, 1.0]
    np.testing.assert_allclose(P.slerp_poses(a, b, 0.25)[3:6], [0.0, 0.0, 0.25], atol=1e-12)
    np.testing.assert_allclose(P.slerp_poses(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(P.slerp_poses(a, b, 1.0), b, atol=1e-12)


def test_every_joint_stays_within_its_anatomical_limit(complement):
    angles = np.degrees(np.linalg.norm(complement[0].reshape(-1, 16, 3), axis=-1))
    for name, joints in P.FINGER_JOINTS.items():
        limit = np.asarray(P.FLEXION_DEG[name])
        assert (angles[:, list(joints)] <= limit + 1e-9).all(), name
    assert (np.asarray(list(P.FLEXION_DEG.values())) <= [[90, 110, 80]] * 5).all()


@pytest.mark.slow
def test_no_pose_pushes_the_hand_through_itself(complement, hand_model):
    from synth.selfcontact import penetration_share

    shares = penetration_share(complement[1], hand_model.faces)
    worst = int(shares.argmax())
    print(f"worst pose {worst} ({P.pose_name(worst)}): {100 * shares[worst]:.2f} %")
    assert shares.max() <= 0.02


def test_optional_splay_doubles_the_base_poses(hand_model):
    poses = P.complement_poses(model=hand_model, splay=True)
    assert len(poses) == 64 + 3 * (64 * 63 // 2)
    np.testing.assert_array_equal(poses[:32], P.complement_poses(model=hand_model)[:32])
    assert not np.allclose(poses[32], poses[0])  # spread flat hand
    assert P.pose_name(32, splay=True) == "flat spread"


def test_pose_names():
    assert P.pose_name(0) == "flat" and P.pose_name(31) == "fist"
    assert P.pose_name(0b00011) == "bent thumb+index"
    assert P.pose_name(32) == "0->1 t=0.25"
