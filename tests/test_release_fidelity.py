"""Where the papers are silent, the authors' released code's behaviour (SeanChenxy/HandMesh): crops,
augmentation draws, photometric steps, loss units and weights, when the consistency losses start, the
cosine schedule. Each expected value is computed by hand from the release's formulas."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from fixtures_benchmarks import write_freihand
from finetune.datasets.base import apply_affine, project
from finetune.datasets.freihand import FreiHANDDataset
from pretrain.augmentation import AugmentConfig, ColourParams, draw_params, photometric

S = 128


@pytest.fixture(scope="module")
def fh(tmp_path_factory):
    from synth.hand_model import HandModel

    root = tmp_path_factory.mktemp("freihand")
    return root, write_freihand(root, HandModel(dtype=torch.float64), n=2, n_eval=2)


# ---------------------------------------------------------------- crops

def test_freihand_evaluation_crop_is_the_release_centre_box(fh):
    """get_eval_sample: bbox [224 // 2 - 50, 224 // 2 - 50, 100, 100] x 1.3 -> 128, centre on pixel 64."""
    root, truth = fh
    ds = FreiHANDDataset(root, split="evaluation", crop_size=S)
    s = 128 / 130.0
    A = np.array([[s, 0.0, 64.0 - s * 112.0], [0.0, s, 64.0 - s * 112.0], [0.0, 0.0, 1.0]])
    # crop pixel 0 looks at image pixel 112 - 65 = 47, crop pixel 64 at the image centre 112
    np.testing.assert_allclose(apply_affine(np.array([[47.0, 47.0], [112.0, 112.0]]), A), [[0, 0], [64, 64]],
                               atol=1e-12)
    for i in range(2):
        sample = ds[i]
        t = truth["evaluation"]
        np.testing.assert_allclose(sample["K"].double().numpy(), A @ t["K"][i], rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(sample["keypoints_2d"].double().numpy(),
                                   apply_affine(project(t["xyz"][i], t["K"][i]), A), atol=1e-3)
        image = np.asarray(Image.open(root / "evaluation" / "rgb" / f"{i:08d}.jpg").convert("RGB"), dtype=np.float64)
        np.testing.assert_allclose(sample["image"][:, 64, 64].double().numpy() * 255.0, image[112, 112], atol=1.0)


def test_freihand_training_crop_is_the_mask_box_times_1_3(fh):
    """get_training_sample: the mask's bounding rectangle (x, y, w, h), squared by max(w, h) about
    (x + w / 2, y + h / 2), x 1.3 -> 128 with that centre on pixel 64."""
    root, truth = fh
    ds = FreiHANDDataset(root, crop_size=S, versions=("gs",))
    for i in range(2):
        m = np.asarray(Image.open(root / "training" / "mask" / f"{i:08d}.jpg").convert("L")) > 127
        ys, xs = np.nonzero(m)
        x, y, w, h = xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
        side = 1.3 * max(w, h)
        s = S / side
        A = np.array([[s, 0.0, 64.0 - s * (x + w / 2)], [0.0, s, 64.0 - s * (y + h / 2)], [0.0, 0.0, 1.0]])
        t = truth["training"]
        np.testing.assert_allclose(ds[i]["K"].double().numpy(), A @ t["K"][i], rtol=1e-6, atol=1e-4)
    # the other crops stay reachable by name
    assert FreiHANDDataset(root, crop="full").crop == "full"
    with pytest.raises(ValueError, match="crop must be one of"):
        FreiHANDDataset(root, crop="centre")


# ---------------------------------------------------------------- augmentation draws

def _draws(config, n=4000, seed=0):
    rng = np.random.default_rng(seed)
    return [draw_params(config, rng, S) for _ in range(n)]


def test_augmentation_draws_fall_in_the_release_bounds_and_reach_them():
    draws = _draws(AugmentConfig())
    side = np.array([1.3 / d.scale for d in draws])          # crop side in hand boxes: 1.3 + 0.2 r
    assert side.min() >= 1.1 - 1e-9 and side.max() <= 1.5 + 1e-9
    assert side.min() < 1.11 and side.max() > 1.49
    angle = np.array([d.angle for d in draws])
    assert np.abs(angle).max() <= 90.0 and np.abs(angle).max() > 88.0
    assert (angle == 0).mean() == pytest.approx(0.4, abs=0.03)  # rotation with probability 0.6
    # the shift stays within the hand box's slack: (side - 1) / 2 boxes of the crop's side boxes
    shift = np.abs(np.array([d.shift for d in draws])).max(axis=1)
    slack = (side - 1.0) / (2.0 * side) * S
    assert np.all(shift <= slack + 1e-9) and (shift / slack).max() > 0.98
    c = [d.colour for d in draws]
    b = np.array([x.brightness for x in c])
    assert np.abs(b).max() <= 32 / 255 and np.abs(b).max() > 31 / 255 and (b != 0).mean() == pytest.approx(0.5, abs=0.03)
    for name, lo, hi in (("contrast", 0.5, 1.5), ("saturation", 0.5, 1.5)):
        v = np.array([getattr(x, name) for x in c])
        assert v.min() >= lo and v.max() <= hi and v.min() < lo + 0.01 and v.max() > hi - 0.01
        assert (v != 1.0).mean() == pytest.approx(0.5, abs=0.03)
    hue = np.array([x.hue for x in c])
    assert np.abs(hue).max() <= 18.0 and np.abs(hue).max() > 17.8 and (hue != 0).mean() == pytest.approx(0.5, abs=0.03)
    assert np.mean([x.contrast_first for x in c]) == pytest.approx(0.5, abs=0.03)


def test_the_release_unit_draw_is_a_wide_truncated_normal():
    """get_m1to1_gaussian_rand(3): a normal of std 3 kept in [-1, 1], so nearly flat: the density at
    the ends is exp(-1 / 18) = 0.946 of the centre's."""
    side = np.array([1.3 / d.scale for d in _draws(AugmentConfig(), n=20000, seed=1)])
    r = (side - 1.3) / 0.2
    hist, _ = np.histogram(r, bins=4, range=(-1, 1))
    assert hist.min() / hist.max() > 0.9
    assert abs(r.mean()) < 0.02


def test_photometric_steps_on_a_hand_computed_pixel():
    """RGB (0.5, 0.25, 0.25) is HSV (0 deg, 0.5, 0.5): saturation x 1.5 gives (0.5, 0.125, 0.125); hue + 120
    deg gives (0.25, 0.5, 0.25); brightness adds; contrast multiplies before or after."""
    px = torch.tensor([0.5, 0.25, 0.25]).view(3, 1, 1)
    got = lambda **kw: photometric(px, ColourParams(**kw)).view(3).numpy()  # noqa: E731
    np.testing.assert_allclose(got(saturation=1.5), [0.5, 0.125, 0.125], atol=1e-6)
    np.testing.assert_allclose(got(hue=120.0), [0.25, 0.5, 0.25], atol=1e-6)
    np.testing.assert_allclose(got(brightness=32 / 255), [0.5 + 32 / 255, 0.25 + 32 / 255, 0.25 + 32 / 255], atol=1e-6)
    np.testing.assert_allclose(got(contrast=1.4), [0.7, 0.35, 0.35], atol=1e-6)
    # the release does not clip: a bright pixel made brighter leaves [0, 1]
    assert got(brightness=0.2, contrast=1.5).max() == pytest.approx(1.05, abs=1e-6)
    np.testing.assert_allclose(got(), px.view(3).numpy())


# ---------------------------------------------------------------- loss units, weights and schedule

class _Fixed(nn.Module):
    """A stand-in model: fixed loss terms, MobRecon's release weights."""

    from finetune.models.mobrecon import RELEASE_WEIGHTS as release_weights
    input_size = S

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, images):
        n = images.shape[0]
        return {"vertices": torch.zeros(n, 778, 3) + self.w, "keypoints_2d": torch.zeros(n, 21, 2) + self.w}

    def loss_terms(self, pred, batch):
        return {"mesh": torch.tensor(1.0), "pose2d": torch.tensor(1.0), "normal": torch.tensor(1.0),
                "edge": torch.tensor(1.0)}


def _task(tmp_path, **options):
    from finetune.task_mesh import MeshTask
    from pretrain.trainer import TrainConfig

    return MeshTask(TrainConfig(task="mesh", out=str(tmp_path), task_options={"datasets": ["complement:/nowhere"],
                                                                              **options}))


def _paired_batch(B=2):
    view = {"image": torch.zeros(B, 3, 4, 4), "K": torch.eye(3).repeat(B, 1, 1)}
    return {"view1": view, "view2": dict(view), "T_12": torch.eye(3).repeat(B, 1, 1),
            "R_12": torch.eye(3).repeat(B, 1, 1)}


def test_loss_weights_release_and_paper(tmp_path):
    model = _Fixed()
    loss, terms = _task(tmp_path).loss(model, _paired_batch())
    assert set(terms) == {"mesh", "pose2d", "normal", "edge"}          # epoch 0: no consistency yet
    assert loss.item() == pytest.approx(1 + 1 + 0.1 + 1.0)              # release: normal 0.1, edge 1.0
    loss, _ = _task(tmp_path, loss_weights="paper").loss(model, _paired_batch())
    assert loss.item() == pytest.approx(4.0)                            # equation 11: the plain sum
    loss, _ = _task(tmp_path, weights={"edge": 0.5}).loss(model, _paired_batch())
    assert loss.item() == pytest.approx(1 + 1 + 0.1 + 0.5)


def test_consistency_starts_at_epoch_5(tmp_path):
    task = _task(tmp_path)
    for epoch, on in ((0, False), (4, False), (5, True), (30, True)):
        task.epoch = epoch
        _, terms = task.loss(_Fixed(), _paired_batch())
        assert ("con2d" in terms and "con3d" in terms) == on, epoch
    task = _task(tmp_path, consistency_from_epoch=0)
    assert "con3d" in task.loss(_Fixed(), _paired_batch())[1]


def test_pose2d_is_measured_in_unit_crop_coordinates():
    """A 2-pixel error on every keypoint is 2 / S in the release's [0, 1] units (it was 4 / S in [-1, 1])."""
    from finetune.models import build_model
    from finetune.models.mobrecon import mesh_and_pose_terms
    from pretrain.task2d import px_to_norm

    model = build_model("mobrecon_densestack", input_size=S)
    g = torch.Generator().manual_seed(0)
    verts = torch.randn(1, 778, 3, generator=g) * 0.03
    kp2 = torch.rand(1, 21, 2, generator=g) * (S - 1)
    batch = {"vertices_rel": verts, "keypoints_2d": kp2, "mesh_valid": torch.ones(1, dtype=torch.bool),
             "keypoints_2d_valid": torch.ones(1, 21, dtype=torch.bool)}
    pred = {"vertices": verts, "positions": px_to_norm(kp2 + 2.0, S)}
    terms = mesh_and_pose_terms(model, pred, batch)
    assert terms["pose2d"].item() == pytest.approx(2.0 / S, rel=1e-5)
    assert terms["mesh"].item() == pytest.approx(0.0, abs=1e-7)


def test_cosine_schedule_by_hand(tmp_path):
    """SAR's release (base.py, train.py): CosineAnnealingLR(T_max = epochs) stepped once per epoch:
    lr_e = lr / 2 (1 + cos(pi e / E)), constant within an epoch."""
    from pretrain.trainer import Trainer
    from test_trainer import ToyTask, _config

    cfg = _config(tmp_path, epochs=4, schedule="cosine", optimizer="adamw")
    t = Trainer(cfg, task=ToyTask(cfg))
    spe = t.steps_per_epoch
    expected = [1e-2 * 0.5 * (1 + np.cos(np.pi * e / 4)) for e in range(4)]     # 1e-2, 8.54e-3, 5e-3, 1.46e-3
    for e, lr in enumerate(expected):
        assert t.lr_at(e * spe) == pytest.approx(lr) and t.lr_at(e * spe + spe - 1) == pytest.approx(lr)
    assert expected[1] == pytest.approx(8.5355e-3, rel=1e-4) and t.lr_at(4 * spe) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="schedule must be step or cosine"):
        _config(tmp_path, schedule="linear").check(require_task=False)


def test_recipes_follow_each_release():
    from hands.recipes import recipe_for

    mob, sar, cmr = recipe_for("mobrecon_ghoststack"), recipe_for("sar_resnet34"), recipe_for("cmr_baseline")
    assert mob["train"] == {"epochs": 38, "batch_size": 32, "lr": 1e-3, "milestones": [30], "optimizer": "adam",
                            "schedule": "step"}
    assert mob["task"]["consistency_from_epoch"] == 5 and mob["task"]["input_size"] == 128
    assert (sar["train"]["optimizer"], sar["train"]["lr"], sar["train"]["schedule"], sar["train"]["epochs"],
            sar["train"]["batch_size"], sar["train"]["weight_decay"], sar["task"]["input_size"]) == \
        ("adamw", 3e-4, "cosine", 50, 64, 0.01, 256)
    assert (cmr["train"]["lr"], cmr["task"]["input_size"]) == (1e-4, 224)
    assert recipe_for("smr_resnet34") == mob                             # no release of its own


def test_dsconv_release_init_is_xavier_uniform():
    """conv/dsconv.py reset_parameters (called by every SpiralDeblock, not the head): xavier_uniform_ on the
    depth-wise kernel too: bound sqrt(6 / (fan_in + fan_out)) = sqrt(6 / (9 + 9 C)), 0.051 for C = 256.
    A setting (`dsconv_init: release`), not the default: see finetune/models/mobrecon.py."""
    from finetune.models import build_model

    torch.manual_seed(0)
    model = build_model("mobrecon_densestack", dsconv_init="release")
    first = model.decoder.convs[0]                                   # 256 -> 256 at the 98-vertex level
    w = first.depthwise.weight
    bound = np.sqrt(6.0 / (9 + 9 * 256))
    assert w.abs().max().item() <= bound and w.abs().max().item() > 0.95 * bound
    assert w.std().item() == pytest.approx(bound / np.sqrt(3), rel=0.05)
    head = model.decoder.head.depthwise.weight                       # the head keeps PyTorch's: 1 / sqrt(9)
    assert head.abs().max().item() > np.sqrt(6.0 / (9 + 9 * 32))
    default = build_model("mobrecon_densestack").decoder.convs[0].depthwise.weight
    assert default.abs().max().item() > 2 * bound


def test_pose_pooling_samples_the_latent_as_the_release():
    """Reg2DDecode3D.index: grid_sample(latent, clamp(2 u / S - 1), align_corners=True), no projection."""
    from finetune.models.lifting import PosePooling
    from pretrain.task2d import px_to_norm

    pool = PosePooling(256, "grid", input_size=S)
    assert sum(p.numel() for p in pool.parameters()) == 0
    latent = torch.zeros(1, 256, 4, 4)
    latent[0, 0] = torch.arange(16, dtype=torch.float32).view(4, 4)      # channel 0: the cell's index
    px = torch.tensor([[[0.0, 0.0], [64.0, 64.0], [-20.0, -5.0], [64.0, 0.0]]])
    got = pool(latent, {"positions": px_to_norm(px, S)})[0, :, 0]
    # pixel 0 -> -1 -> cell 0; pixel 64 -> 0 -> the mean of the four middle cells (5, 6, 9, 10);
    # outside the image -> clamped to cell 0; (64, 0) -> between cells 1 and 2 of the top row
    np.testing.assert_allclose(got.numpy(), [0.0, 7.5, 0.0, 1.5], atol=1e-5)
    assert isinstance(PosePooling(2048, "grid", input_size=S).project, nn.Conv2d)   # ResNet-50: 2048 -> 256


def test_root_recovery_drops_outlying_keypoints_as_the_release():
    """registration.py: keypoints whose |sum of the x, y reprojection errors| is not below mean + std are
    dropped while the mean is over 2 px. Two keypoints 40 px off pull a plain fit away; the release's
    rounds find the root that the 19 good keypoints give exactly."""
    from finetune.models.root import recover_root

    rng = np.random.default_rng(4)
    rel = rng.normal(0, 0.04, (1, 21, 3))
    rel -= rel[:, :1]
    t = np.array([[0.03, -0.02, 0.55]])
    K = np.array([[[480.0, 0.0, 63.5], [0.0, 480.0, 63.5], [0.0, 0.0, 1.0]]])
    p = np.einsum("bij,bnj->bni", K, rel + t[:, None])
    uv = p[..., :2] / p[..., 2:3]
    uv[0, 8] += 40.0
    uv[0, 16] += [30.0, 25.0]
    args = [torch.as_tensor(a) for a in (rel, uv, K)]
    plain = recover_root(*args, outlier_rounds=1).numpy()
    release = recover_root(*args).numpy()
    assert np.abs(plain - t).max() > 2e-3
    assert np.abs(release - t).max() < 1e-6
    # what the release's loop computes after the first solve: the two bad keypoints are the ones above mean + std
    q = np.einsum("bij,bnj->bni", K, rel + plain[:, None])
    err = np.abs((q[..., :2] / q[..., 2:3] - uv).sum(-1))[0]
    assert set(np.nonzero(err >= err.mean() + err.std())[0]) >= {8, 16} and err.mean() > 2.0


def test_densestack_se_mapreg_and_input_normalisation_follow_the_release():
    """SenetBlock: FCs without bias, BatchNorm1d, Hardtanh(0, 4); uv_reg: bias-free with Hardtanh(0, 4);
    base_transform: (x - 0.5) / 0.5."""
    from pretrain.encoders import build_encoder
    from pretrain.encoders.layers import ReleaseSqueezeExcite
    from pretrain.task2d import MapRegHead

    enc = build_encoder("densestack")
    se = enc.stack2_down.se1
    assert isinstance(se, ReleaseSqueezeExcite) and se.fc1.bias is None and se.fc2.bias is None
    assert isinstance(se.bn1, nn.BatchNorm1d) and se.fc1.out_features == min(256 // 2, 256)
    head = MapRegHead(24, 16)
    assert head.reduce.bias is None and all(m.bias is None for m in head.mlp if isinstance(m, nn.Linear))
    acts = [m for m in head.mlp if not isinstance(m, nn.Linear)]
    assert len(acts) == 2 and all(isinstance(a, nn.Hardtanh) and (a.min_val, a.max_val) == (0.0, 4.0) for a in acts)
    assert MapRegHead(24, 16, style="plain").reduce.bias is not None
    # the stem sees (x - 0.5) / 0.5: a mid-grey image enters as zeros, white as ones
    seen = []
    enc.stem.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    enc.eval()
    with torch.no_grad():
        enc(torch.cat([torch.full((1, 3, S, S), 0.5), torch.ones(1, 3, S, S)]))
    assert seen[0][0].abs().max() == 0 and torch.all(seen[0][1] == 1)
    # the release SE cannot train on one image (BatchNorm1d); the plain one can
    enc.train()
    with pytest.raises(ValueError, match="se='plain'"):
        enc(torch.rand(1, 3, S, S))
    build_encoder("densestack", se="plain").train()(torch.rand(1, 3, S, S))


def test_camera_effects_take_the_unclipped_photometric_output():
    """The release's photometric steps leave [0, 1]; the camera effects after them clamp (a sensor cannot
    record negative light), so their sRGB curve never sees a negative value (which gave NaN)."""
    from pretrain.image_ops import CAMERA_AUGMENT_PRESETS, camera_augment, camera_settings

    img = photometric(torch.rand(3, 32, 32), ColourParams(brightness=-32 / 255, contrast=1.5))
    assert img.min() < 0 and img.max() > 1
    out = camera_augment(img, camera_settings(CAMERA_AUGMENT_PRESETS["strong"]), np.random.default_rng(0))
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_sar_recipe_draws_its_release_ranges():
    """SAR's processing.py: every sample rotated U(-180, 180), box x U(0.9, 1.1), centre shift U(-10, 10) px of
    the 130 px box (10 / 130 of the crop), channel gains U(0.8, 1.2) clipped, no photometric steps."""
    from hands.recipes import recipe_for

    draws = _draws(AugmentConfig.from_value(recipe_for("sar_resnet34")["task"]["augment"]))
    side = np.array([1 / d.scale for d in draws])
    assert side.min() >= 0.9 - 1e-9 and side.max() <= 1.1 + 1e-9 and side.min() < 0.901 and side.max() > 1.099
    angle = np.array([d.angle for d in draws])
    assert np.all(angle != 0) and np.abs(angle).max() <= 180 and np.abs(angle).max() > 179
    shift = np.abs(np.array([d.shift for d in draws]))
    assert shift.max() <= S * 10 / 130 + 1e-9 and shift.max() > 0.99 * S * 10 / 130
    gains = np.array([d.colour.gains for d in draws])
    assert gains.min() >= 0.8 and gains.max() <= 1.2 and gains.min() < 0.801 and gains.max() > 1.199
    assert all(d.colour.brightness == 0 and d.colour.contrast == 1 and d.colour.hue == 0 for d in draws)
    px = photometric(torch.full((3, 1, 1), 0.9), draws[0].colour.__class__(gains=(1.2, 1.0, 0.5)))
    np.testing.assert_allclose(px.view(3).numpy(), [1.0, 0.9, 0.45], atol=1e-6)     # clipped at 1
