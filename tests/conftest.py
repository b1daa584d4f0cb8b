import json
import os

import pytest
import torch

# Training tests take their seed from here, so benchmarks/training_margins.py can run them under other
# seeds (and other thread counts and instruction sets) and report how much room each assertion has.
TRAIN_SEED = int(os.environ.get("HANDS_TEST_SEED", "0"))


# The session fixtures that render with Blender (below). A test that uses one, directly or through another
# fixture, is marked `blender` here; a test that needs bpy otherwise carries @pytest.mark.blender itself.
# `pytest -m "not blender"` is then the fast tier (and needs no bpy).
BLENDER_FIXTURES = {"rendered_set", "realistic_set"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if BLENDER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.blender)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """A test that changes torch's thread count must not change the arithmetic of the tests after it."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def train_seed():
    return TRAIN_SEED


class Margins:
    """`check(name, value, bound)` asserts value < bound; with HANDS_MARGIN_LOG set it also appends
    value / bound (the share of the allowed room used) to that file, for benchmarks/training_margins.py."""

    def __init__(self, nodeid):
        self.nodeid, self.log = nodeid, os.environ.get("HANDS_MARGIN_LOG")

    def check(self, name: str, value: float, bound: float, context=None):
        value, bound = float(value), float(bound)
        if self.log:
            with open(self.log, "a") as f:
                f.write(json.dumps({"test": self.nodeid, "check": name, "value": value, "bound": bound,
                                    "used": value / bound if bound else float("inf"), "seed": TRAIN_SEED,
                                    "threads": torch.get_num_threads()}) + "\n")
        assert value < bound, f"{name}: {value:.4g} is not below {bound:.4g} ({context})"


@pytest.fixture
def margin(request):
    return Margins(request.node.nodeid)


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


class RenderedSet:
    """The session's plain Blender renders: 3 poses x 6 views at 128 px, OpenHand, without the realism
    settings (no forearm, skin detail, occluders or camera effects). The models' overfit tests train on them; their
    margins (benchmarks/training_margins.py) were measured on exactly these images."""
    poses = [0, 31, 700]
    views = [0, 20, 45, 110, 150, 200]
    resolution = 128
    settings = {"forearm": False, "skin_detail": False, "occluder_prob": 0.0, "camera_effects": "off"}

    @classmethod
    def config(cls):
        from synth.render_config import RenderConfig

        return RenderConfig(resolution=cls.resolution, samples=8, hdri_skies=1, rgb_format="png", **cls.settings)


class RealisticSet(RenderedSet):
    """The session's renders with every realism setting on (forearm, occluders in every sample, camera
    effects): what the annotation-consistency checks read. 2 poses x 4 views at 96 px."""
    poses = [0, 700]
    views = [0, 57, 110, 160]
    resolution = 96
    settings = {"occluder_prob": 1.0, "camera_effects": "on"}


def _render(tmp_path_factory, spec, name):
    from synth.distribute import render_dataset

    root = tmp_path_factory.mktemp(name)
    summary = render_dataset(spec.config(), root, spec.poses, spec.views, workers=0, progress=False,
                             report=lambda *a, **k: None)
    assert summary.failed == {} and sorted(summary.done) == spec.poses
    return root


@pytest.fixture(scope="session")
def rendered_set_spec():
    return RenderedSet


@pytest.fixture(scope="session")
def rendered_set(tmp_path_factory):
    """RenderedSet in the shard format, shared by every module that trains on renders; about 20 s once."""
    return _render(tmp_path_factory, RenderedSet, "rendered_set")


@pytest.fixture(scope="session")
def realistic_set_spec():
    return RealisticSet


@pytest.fixture(scope="session")
def realistic_set(tmp_path_factory):
    """RealisticSet in the shard format, shared by the rendering and realism tests; about 10 s once."""
    return _render(tmp_path_factory, RealisticSet, "realistic_set")
