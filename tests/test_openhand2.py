"""OpenHand 2, the default model: the committed asset's invariants, its sculpted render mesh and the body's arm.

Truths used: mesh topology (boundary loops, edge manifoldness, orientation, the closed surface's signed
volume), MANO's joint tree, the flat hand's straight fingers, adult hand lengths (wrist to middle fingertip
about 17-21 cm for the 5th-95th percentile), the selection map re-derived from positions, and the
camera's projection of the arm's cut end.
"""
from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest
import torch

from synth.hand_model import HandModel, resolve_model_path
from synth.meshops import (boundary_loops, close_boundary, is_consistently_oriented, is_edge_manifold,
                           signed_volume, winding_numbers)
from synth.openhand2.flatten import rotation_between
from synth.poses import FINGER_KEYPOINTS
from synth.render_mesh import SculptedRenderMesh, render_mesh_for
from synth.simplify import quadric_decimate

MANO_PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]


@pytest.fixture(scope="module")
def asset():
    with open(resolve_model_path("openhand"), "rb") as fh:
        return pickle.load(fh)


@pytest.fixture(scope="module")
def sculpted(hand_model):
    return render_mesh_for(hand_model)


def _closed_outward(vertices, faces):
    loops = boundary_loops(faces)
    v, f = vertices, faces
    for loop in loops:
        v, f = close_boundary(v, f, loop)
    return signed_volume(v, f)


def test_default_model_is_openhand2_in_mano_format(hand_model, asset):
    assert hand_model.name == "OpenHand2" and hand_model.num_vertices == 778
    assert list(hand_model.parents) == MANO_PARENTS
    w = np.asarray(asset["weights"])
    assert w.shape == (778, 16) and (w >= 0).all()
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    assert np.asarray(asset["shapedirs"]).shape == (778, 3, 10)
    assert "MakeHuman" in asset["license"] and "CC0" in asset["license"]


@pytest.mark.parametrize("which", ["model", "sculpted"])
def test_meshes_have_one_wrist_loop_and_are_manifold_and_outward(hand_model, sculpted, which):
    verts, faces = (hand_model.template, hand_model.faces) if which == "model" else (sculpted.template, sculpted.faces)
    loops = boundary_loops(faces)
    assert len(loops) == 1 and len(loops[0]) == 20
    assert is_edge_manifold(faces) and is_consistently_oriented(faces)
    assert _closed_outward(verts, faces) > 0
    assert len(np.unique(faces)) == len(verts)     # no stray vertices


def test_model_vertices_are_a_selection_of_the_sculpted_mesh(hand_model, sculpted):
    assert len(sculpted.template) == 1609 and len(sculpted.faces) == 3196
    np.testing.assert_array_equal(sculpted.template[sculpted.model_vertices], hand_model.template)
    M = sculpted.M.toarray()
    assert (M.sum(axis=1) == 1).all() and set(np.unique(M)) == {0.0, 1.0}


def test_map_to_model_vertices_is_exact_for_every_pose(hand_model, sculpted, complement):
    poses, verts, _ = complement
    dense = sculpted.pose(hand_model, poses)
    assert dense.shape == (1520, 1609, 3)
    assert np.abs(sculpted.to_model(dense) - verts).max() < 1e-6     # float32 rounding of the same LBS
    betas = np.random.default_rng(3).normal(size=(4, 10))
    with torch.no_grad():
        v, _ = hand_model(torch.as_tensor(poses[[0, 31, 700, 1519]], dtype=torch.float32),
                          torch.as_tensor(betas, dtype=torch.float32))
    d = sculpted.pose(hand_model, poses[[0, 31, 700, 1519]], betas=betas)
    assert np.abs(sculpted.to_model(d) - v.double().numpy()).max() < 1e-6


def test_pose_zero_is_a_flat_hand(hand_model):
    k = hand_model.joint_regressor @ hand_model.template
    normal = np.cross(k[5] - k[0], k[17] - k[0])
    normal /= np.linalg.norm(normal)
    for finger, (a, b, c, d) in FINGER_KEYPOINTS.items():
        seg = [k[b] - k[a], k[c] - k[b], k[d] - k[c]]
        seg = [s / np.linalg.norm(s) for s in seg]
        assert np.degrees(np.arccos(seg[0] @ seg[1])) < 3, finger       # joint centres in line
        assert np.degrees(np.arccos(seg[1] @ seg[2])) < 10, finger      # the tip: the end of the finger
        if finger != "thumb":                                            # long fingers in the palm's plane
            assert max(np.degrees(np.arcsin(abs(s @ normal))) for s in seg[:2]) < 3, finger


def test_tips_are_the_ends_of_the_fingers(hand_model, sculpted):
    from synth.poses import FINGER_JOINTS

    k = hand_model.joint_regressor @ hand_model.template
    for finger, (_, _, dip, tip) in FINGER_KEYPOINTS.items():
        distal = sculpted.weights[:, FINGER_JOINTS[finger][2]] >= 0.5      # the finger's distal segment
        axis = (k[tip] - k[dip]) / np.linalg.norm(k[tip] - k[dip])
        beyond = (sculpted.template[distal] - k[dip]) @ axis
        assert beyond.max() - (k[tip] - k[dip]) @ axis < 1e-3, finger    # no sculpted point farther out
        assert 0.02 < np.linalg.norm(k[tip] - k[dip]) < 0.035, finger


def test_joints_lie_inside_the_hand_and_arm(hand_model, sculpted, complement):
    """The 16 joint keypoints inside the closed surface of hand + arm (the wrist joint sits at the hand's
    cut, 3 mm past its loop's centre: inside the arm), and the tips on the hand's own surface."""
    from synth.body_arm import BodyArm, pose_arm

    poses, _, kps = complement
    arm = BodyArm.from_model(hand_model)
    n = len(arm.wrist_loop)
    joints = [0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19]   # the 16 non-tip keypoints
    for pose in (0, 31, 700):
        dense = sculpted.pose(hand_model, poses[[pose]])[0]
        straight = {"flexion_deg": 0.0, "deviation_deg": 0.0, "twist_deg": 0.0}
        posed_arm = pose_arm(arm, straight, dense, poses[pose][:3], hand_model.rest_joints()[0])
        remap = np.concatenate([arm.wrist_loop, len(dense) + np.arange(len(posed_arm) - n)])
        v, f = np.vstack([dense, posed_arm[n:]]), np.vstack([sculpted.faces, remap[arm.faces]])
        v, f = close_boundary(v, f, boundary_loops(f)[0])
        w = winding_numbers(kps[pose][joints], v, f)
        assert (w > 0.5).all(), (pose, np.round(w, 2))
        tips = kps[pose][[4, 8, 12, 16, 20]]
        assert np.linalg.norm(dense[:, None] - tips[None], axis=2).min(axis=0).max() < 1e-6


def test_shape_space_spans_adult_hands_and_reaches_children(hand_model):
    rng = np.random.default_rng(0)
    betas = torch.as_tensor(rng.normal(size=(4000, 10)), dtype=torch.float32)
    with torch.no_grad():
        _, k = hand_model(torch.zeros(4000, 48), betas)
    length = (k[:, 12] - k[:, 0]).norm(dim=1).numpy()
    p5, p95 = np.percentile(length, [5, 95])
    assert 0.165 < p5 < 0.175 and 0.205 < p95 < 0.215, (p5, p95)
    size = torch.zeros(2, 10)
    size[:, 0] = torch.tensor([-4.0, 4.0])             # beta 1 is overall size
    with torch.no_grad():
        _, k = hand_model(torch.zeros(2, 48), size)
    small, large = (k[:, 12] - k[:, 0]).norm(dim=1)
    assert small < 0.14 and large > 0.23                # a child's 13-14 cm hand, a large adult's


def test_nails_come_from_makehumans_nail_texture(hand_model, sculpted):
    from synth.skin_regions import region_weights

    mask = np.asarray(sculpted.nail_mask)
    assert mask.shape == (1609,) and (mask > 0.5).sum() >= 5 * 8          # a handful of vertices per nail
    nail = region_weights(hand_model, sculpted)["nail"]
    assert ((nail > 0.5) <= (mask > 0.5)).all() and (nail > 0.5).sum() >= 0.8 * (mask > 0.5).sum()


def test_openhand1_stays_one_setting_away():
    old = HandModel("openhand1")
    assert old.name == "OpenHand" and old.num_vertices == 778 and getattr(old, "render_data", None) is None
    assert not isinstance(render_mesh_for(old), SculptedRenderMesh)


def test_rotation_between_takes_a_to_b():
    rng = np.random.default_rng(1)
    for _ in range(20):
        a, b = rng.normal(size=(2, 3))
        R = rotation_between(a, b)
        np.testing.assert_allclose(R @ (a / np.linalg.norm(a)), b / np.linalg.norm(b), atol=1e-12)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        axis = np.cross(a, b)                                  # the smallest rotation fixes a x b
        np.testing.assert_allclose(R @ axis, axis, atol=1e-12)


def test_decimation_keeps_the_vertices_it_is_told_to():
    """synth.simplify with `keep` (how the 778-vertex model keeps the fingertips): the named vertices
    survive, and a vertex that would go first without `keep` stays with it."""
    rings, seg = 12, 16
    th = np.linspace(0.15, np.pi * 0.8, rings)
    ph = np.linspace(0, 2 * np.pi, seg, endpoint=False)
    verts = np.array([[np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)] for t in th for p in ph])
    verts = np.vstack([[0, 0, 1], verts])                         # a cut sphere: one boundary loop
    faces = [(0, 1 + j, 1 + (j + 1) % seg) for j in range(seg)]
    for i in range(rings - 1):
        for j in range(seg):
            a, b = 1 + i * seg + j, 1 + i * seg + (j + 1) % seg
            faces += [(a, a + seg, b), (b, a + seg, b + seg)]
    faces = np.array(faces)
    free, _ = quadric_decimate(verts, faces, 100)
    gone = sorted(set(range(len(verts))) - set(free.tolist()))[:5]
    kept, f = quadric_decimate(verts, faces, 100, keep=gone)
    assert len(kept) == 100 and set(gone) <= set(kept.tolist())
    assert len(boundary_loops(f)) == 1 and is_edge_manifold(f) and is_consistently_oriented(f)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("anny") is None,
                    reason="anny (build time only: make openhand2) is not installed")
def test_build_regenerates_the_committed_asset(asset):
    from synth.openhand2.build import build_model

    rebuilt, _ = build_model()
    for key in ("v_template", "f", "weights", "shapedirs", "tip_vertex_ids"):
        np.testing.assert_allclose(np.asarray(rebuilt[key], float), np.asarray(asset[key], float), atol=1e-9)
    np.testing.assert_allclose(rebuilt["J_regressor"].toarray(), asset["J_regressor"].toarray(), atol=1e-9)
    np.testing.assert_allclose(rebuilt["arm"]["vertices"], asset["arm"]["vertices"], atol=1e-9)


# ---- the body's arm ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def arm_plan():
    from synth.render_config import RenderConfig
    from synth.render_shard import prepare

    return prepare(RenderConfig(resolution=256, hdri_skies=1, hdri_bundled=False, hdri_folders=()))


def test_arm_joins_the_wrist_loop_into_one_surface(hand_model, sculpted):
    from synth.body_arm import BodyArm

    arm = BodyArm.from_model(hand_model)
    n = len(arm.wrist_loop)
    np.testing.assert_array_equal(arm.wrist_loop, boundary_loops(sculpted.faces)[0])
    np.testing.assert_array_equal(arm.rest[:n], sculpted.template[arm.wrist_loop])
    remap = np.concatenate([arm.wrist_loop, len(sculpted.template) + np.arange(len(arm.rest) - n)])
    verts = np.vstack([sculpted.template, arm.rest[n:]])
    faces = np.vstack([sculpted.faces, remap[arm.faces]])
    loops = boundary_loops(faces)
    assert len(loops) == 1 and set(remap[arm.far_loop]) == set(loops[0])     # only the cut end is open
    assert is_edge_manifold(faces) and is_consistently_oriented(faces)
    assert _closed_outward(verts, faces) > 0
    elbow_to_wrist = np.linalg.norm(arm.rest[arm.far_loop].mean(axis=0) - hand_model.rest_joints()[0])
    assert elbow_to_wrist > 0.3                                               # to beyond the elbow


@pytest.mark.parametrize("pose", [0, 31, 1000])
def test_arm_end_never_in_the_frame_and_arm_joins_the_posed_wrist(arm_plan, pose):
    from synth.body_arm import end_margin
    from synth.scene import sample_arm

    dense = arm_plan.dense(pose)
    hidden = []
    for view in arm_plan.views:
        kp_cam = arm_plan.keypoints[pose] @ view.R.T + view.t
        record, posed = sample_arm(arm_plan, pose, view, dense, kp_cam)
        np.testing.assert_array_equal(posed[:len(arm_plan.arm.wrist_loop)], dense[arm_plan.arm.wrist_loop])
        cam = posed @ view.R.T + view.t
        assert end_margin(cam, arm_plan.arm, view.K, arm_plan.cfg.resolution) > 0, (pose, view.view_id, record)
        assert np.linalg.norm(cam, axis=1).min() > 0.1, (pose, view.view_id)
        hidden.append(record["hidden_keypoints"] <= record["hidden_allowed"])
    assert np.mean(hidden) > 0.95          # the arm hides no more of the hand than a straight arm would
