"""HandModel over smplx.MANO: shapes, keypoint order, skinning behaviour."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from synth.hand_model import MANO_TO_FREIHAND, HandModel, resolve_model_path
from synth.openhand.mesh import build_mesh


def test_output_shapes_and_rest_pose(hand_model):
    verts, kps = hand_model(torch.zeros(3, 48), torch.zeros(3, 10))
    assert verts.shape == (3, 778, 3) and kps.shape == (3, 21, 3)
    np.testing.assert_allclose(verts[0].numpy(), hand_model.template, atol=1e-6)
    np.testing.assert_allclose(kps[0].numpy(), hand_model.joint_regressor @ hand_model.template, atol=1e-6)
    assert hand_model.joint_regressor.shape == (21, 778)
    assert hand_model.faces.shape[1] == 3 and hand_model.parents[0] == -1


def test_keypoints_are_in_freihand_order(hand_model):
    _, kps = hand_model(torch.zeros(1, 48))
    kps = kps[0].numpy()
    tips = {"thumb": 4, "index": 8, "middle": 12, "ring": 16, "little": 20}
    for i, k in enumerate(tips.values()):   # the pickle's tip vertices, thumb .. little
        np.testing.assert_allclose(kps[k], hand_model.template[hand_model.tip_vertex_ids[i]], atol=1e-6)
    old = HandModel("openhand1")            # OpenHand 1's tips are its mesh builder's tip vertices
    _, kps1 = old(torch.zeros(1, 48))
    mesh = build_mesh()
    for name, k in tips.items():
        np.testing.assert_allclose(kps1[0, k].numpy(), old.template[mesh.tips[name]], atol=1e-6)
    # FreiHAND: 1-4 thumb, 5-8 index, ...: each finger's keypoints get farther from the wrist
    for f in range(5):
        d = np.linalg.norm(kps[1 + 4 * f:5 + 4 * f] - kps[0], axis=1)
        assert (np.diff(d) > 0).all(), f"finger {f} keypoints out of order"
    # the documented MANO+tips -> FreiHAND map
    assert MANO_TO_FREIHAND == [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]


def test_global_rotation_turns_the_hand_about_the_wrist(hand_model):
    rotvec = np.array([0.3, -1.1, 0.7])
    pose = torch.zeros(1, 48)
    pose[0, :3] = torch.tensor(rotvec)
    verts, kps = hand_model(pose)
    _, rest = hand_model(torch.zeros(1, 48))
    wrist = rest[0, 0].numpy()
    R = Rotation.from_rotvec(rotvec).as_matrix()
    expected = (hand_model.template - wrist) @ R.T + wrist
    np.testing.assert_allclose(verts[0].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(kps[0, 0].numpy(), wrist, atol=1e-6)


def test_bending_one_joint_keeps_bone_lengths_and_moves_only_its_finger(hand_model):
    pose = torch.zeros(1, 48)
    pose[0, 3 * 2:3 * 2 + 3] = torch.tensor([0.0, 0.0, 1.2])  # index PIP (MANO joint 2)
    _, bent = hand_model(pose)
    _, rest = hand_model(torch.zeros(1, 48))
    bent, rest = bent[0].numpy(), rest[0].numpy()
    index = [5, 6, 7, 8]
    for a, b in zip(index[:-1], index[1:]):
        assert np.linalg.norm(bent[b] - bent[a]) == pytest.approx(np.linalg.norm(rest[b] - rest[a]), abs=1e-6)
    moved = np.linalg.norm(bent - rest, axis=1)
    assert moved[[7, 8]].min() > 0.005
    assert moved[[k for k in range(21) if k not in (7, 8)]].max() < 1e-6
    # the rotation is about MANO joint 2 = FreiHAND keypoint 6, by 1.2 rad about z
    R = Rotation.from_rotvec([0.0, 0.0, 1.2]).as_matrix()
    for k in (7, 8):
        np.testing.assert_allclose(bent[k] - bent[6], R @ (rest[k] - rest[6]), atol=1e-6)


def test_regressor_tracks_the_skinned_keypoints(complement, hand_model):
    _, verts, kps = complement
    regressed = np.einsum("jv,pvc->pjc", hand_model.joint_regressor, verts)
    err = np.linalg.norm(regressed - kps, axis=-1)
    assert err.max() < 5e-3 and err.mean() < 1.5e-3


def test_betas_change_shape_not_topology(hand_model):
    betas = torch.zeros(2, 10)
    betas[1, 0] = 2.0
    verts, kps = hand_model(torch.zeros(2, 48), betas)
    length = np.linalg.norm((kps[:, 12] - kps[:, 0]).numpy(), axis=1)
    assert length[1] > 1.05 * length[0]


def test_mean_relative_poses(hand_model):
    pose = np.zeros((2, 48))
    np.testing.assert_array_equal(hand_model.pose_from_mean_relative(pose)[:, 3:], 
                                  np.broadcast_to(hand_model.hands_mean, (2, 45)))


def test_bad_inputs_are_named(hand_model):
    with pytest.raises(ValueError, match=r"\(B, 48\)"):
        hand_model(torch.zeros(2, 45))
    with pytest.raises(ValueError, match="betas"):
        hand_model(torch.zeros(2, 48), torch.zeros(2, 11))


def test_model_selection(monkeypatch, tmp_path):
    assert resolve_model_path(None).name == "openhand2.pkl"
    assert resolve_model_path("openhand1").name == "openhand1.pkl"
    monkeypatch.delenv("MANO_MODEL_PATH", raising=False)
    with pytest.raises(ValueError, match="MANO_MODEL_PATH"):
        resolve_model_path("mano")
    monkeypatch.setenv("MANO_MODEL_PATH", str(tmp_path))
    assert resolve_model_path("mano") == tmp_path / "MANO_RIGHT.pkl"
    with pytest.raises(FileNotFoundError, match="MANO_RIGHT.pkl"):
        HandModel("mano")
