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


@pytest.fixture(scope="session")
def rendered_set(tmp_path_factory):
    """A handful of Blender renders in the shard format (3 poses x 6 views at 128 px, OpenHand), shared by
    the tests that overfit the reconstruction models; takes about 20 s once per session."""
    from synth.distribute import render_dataset
    from synth.render_config import RenderConfig

    root = tmp_path_factory.mktemp("rendered_set")
    cfg = RenderConfig(resolution=128, samples=8, hdri_skies=1, rgb_format="png")
    summary = render_dataset(cfg, root, [0, 31, 700], [0, 20, 45, 110, 150, 200], workers=0, progress=False,
                             report=lambda *a, **k: None)
    assert summary.failed == {}
    return root
