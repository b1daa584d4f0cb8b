"""Camera and sensor effects as training-time augmentation: drawn per epoch in the loaders, image only, on
top of the geometry and colour draws (which stay as they were), and measurable in the image."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.image_stats import noise_sigma
from pretrain.data2d import Augment2D, Pose2DSamples
from pretrain.image_ops import camera_augment, camera_settings
from sketch_data import write_sketch_dataset
from synth.reader import ComplementDataset

NOISY = {"noise_poisson_peak": [300.0, 300.0], "noise_gaussian_sigma": [0.01, 0.01], "jpeg_prob": 0.0,
         "motion_blur_prob": 0.0, "exposure_ev": [0.0, 0.0], "white_balance": [1.0, 1.0]}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_sketch_dataset(tmp_path_factory.mktemp("sketch") / "data", poses=range(2), views=range(3), size=96)


def as_uint8(image: torch.Tensor) -> np.ndarray:
    return (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def test_noise_of_the_drawn_strength_is_measured_back_on_a_flat_grey_image():
    flat = torch.full((3, 64, 64), 0.5)
    out = camera_augment(flat, camera_settings(NOISY), np.random.default_rng(0))
    # grey 0.5 (sRGB) is 0.214 linear: shot noise sqrt(0.214 / 300) = 0.0267 and read noise 0.01 add to
    # 0.0285 per channel; the sRGB curve's slope there, 1.055 / 2.4 x 0.214^(1/2.4 - 1) = 1.08, makes it
    # 0.0308, and luma weighs three independent channels: 0.0308 x |(0.2126, 0.7152, 0.0722)| = 0.0231
    assert noise_sigma(as_uint8(out), flat_share=1.0) == pytest.approx(0.0231, rel=0.1)
    assert noise_sigma(as_uint8(flat), flat_share=1.0) == 0.0


def test_camera_settings_refuse_defocus_and_unknown_keys_and_accept_none():
    assert camera_settings(None) is None and camera_settings({}) is None
    with pytest.raises(ValueError, match="defocus_prob must be 0"):
        camera_settings({"defocus_prob": 0.5})
    with pytest.raises(ValueError, match="unknown camera-effect setting"):
        camera_settings({"noise": 1})
    with pytest.raises(ValueError, match="defocus_prob must be 0"):
        Augment2D(camera={"defocus_prob": 1.0})


def test_camera_augmentation_changes_only_the_image_and_is_drawn_per_epoch(shards):
    reader = ComplementDataset(shards)
    plain = Pose2DSamples(reader, 64, augment=Augment2D(), seed=3)
    cam = Pose2DSamples(reader, 64, augment=Augment2D(camera=NOISY), seed=3)
    a, b = plain[1], cam[1]
    # the geometry and colour draws come first, so the keypoints (and the crop under the noise) are unchanged
    assert torch.equal(a["keypoints_2d"], b["keypoints_2d"])
    diff = (a["image"] - b["image"]).abs()
    assert 0.005 < float(diff.mean()) < 0.08
    assert torch.equal(b["image"], cam[1]["image"])          # reproducible
    cam.set_epoch(1)
    assert not torch.equal(b["image"], cam[1]["image"])      # a new draw every epoch


def test_finetune_augment_takes_the_same_camera_settings():
    from finetune.augment import AugmentConfig, augment

    sample = {"image": torch.full((3, 32, 32), 0.5), "has_mask": False, "mask": torch.zeros(32, 32, dtype=torch.bool),
              "K": torch.eye(3), "keypoints_3d": torch.ones(21, 3), "has_vertices": False, "has_mano": False}
    cfg = AugmentConfig(colour_prob=0.0)   # geometry drawn, colour left alone
    noisy = AugmentConfig(**{**cfg.__dict__, "camera": NOISY})
    a, A1, _ = augment(sample, cfg, np.random.default_rng(4))
    b, A2, _ = augment(sample, noisy, np.random.default_rng(4))
    # the geometry is drawn (not the identity) and is the same draw with the camera on
    assert not np.allclose(A1, np.eye(3)) and np.array_equal(A1, A2)
    assert torch.equal(a["keypoints_2d"], b["keypoints_2d"])
    assert not torch.equal(b["image"], a["image"])
    with pytest.raises(ValueError, match="defocus_prob must be 0"):
        AugmentConfig(camera={"defocus_prob": 0.2})


def test_the_cli_flag_takes_a_preset_or_json_and_names_a_bad_one():
    import argparse

    from hands.cli_train import augment_setting, camera_augment_value
    from pretrain.image_ops import CAMERA_AUGMENT_PRESETS

    assert camera_augment_value("strong") == "strong"
    assert camera_augment_value('{"jpeg_prob": 1.0}') == {"jpeg_prob": 1.0}
    with pytest.raises(argparse.ArgumentTypeError, match="not a preset"):
        camera_augment_value("nosuch")
    with pytest.raises(argparse.ArgumentTypeError, match="not valid JSON"):
        camera_augment_value("{jpeg_prob: 1}")
    assert augment_setting(argparse.Namespace(no_augment=False, camera_augment="strong")) == {"camera": "strong"}
    with pytest.raises(ValueError, match="contradict"):
        augment_setting(argparse.Namespace(no_augment=True, camera_augment="strong"))
    # the preset is the renderer's former baked-in strength, blur moved from defocus to motion
    strong = camera_settings("strong")
    assert strong.noise_poisson_peak == (200.0, 2000.0) and strong.jpeg_quality == (40, 95)
    assert strong.defocus_prob == 0.0 and CAMERA_AUGMENT_PRESETS["strong"]["motion_blur_prob"] == 0.4
