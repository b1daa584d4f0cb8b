import pytest
import torch


@pytest.fixture(scope="session")
def hand_model():
    from synth.hand_model import HandModel

    return HandModel()


@pytest.fixture(scope="session")
def complement(hand_model):
    """All 1520 complement poses with their OpenHand vertices and keypoints (float64)."""
    from synth.poses import complement_poses

    poses = complement_poses(model=hand_model)
    with torch.no_grad():
        verts, kps = hand_model(torch.as_tensor(poses, dtype=torch.float32))
    return poses, verts.double().numpy(), kps.double().numpy()
