"""finetune.augment: geometry consistent across image, mask, K, 2D/3D points; paired views; determinism."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fixtures_benchmarks import write_freihand, write_ho3d
from finetune.augment import (AugmentConfig, AugmentedDataset, AugmentParams, augment, colour_jitter, geometry,
                              map_points, paired_views)
from finetune.datasets.base import project, warp_image
from finetune.datasets.freihand import FreiHANDDataset
from finetune.datasets.ho3d import HO3DDataset

STRONG = AugmentConfig(scale=(0.8, 1.25), rotation=180.0, rotation_prob=1.0, translation=0.1, brightness=0.3,
                       contrast=(0.7, 1.3), saturation=(0.7, 1.3), hue=18.0)


@pytest.fixture(scope="module")
def hm():
    from synth.hand_model import HandModel

    return HandModel(dtype=torch.float64)


@pytest.fixture(scope="module")
def samples(hm, tmp_path_factory):
    """HO-3D samples (vertices, MANO) and FreiHAND samples (mask, fx != fy)."""
    r1, r2 = tmp_path_factory.mktemp("ho3d"), tmp_path_factory.mktemp("fh")
    write_ho3d(r1, hm, frames=1)
    write_freihand(r2, hm, n=2, n_eval=1)
    ho = HO3DDataset(r1, hand_model=hm)
    fh = FreiHANDDataset(r2, versions=("gs",), crop="keypoints", hand_model=hm)
    return [ho[0], ho[1], fh[0], fh[1]]


def np64(t):
    return t.double().numpy()


def bright_at(s, points, thr=0.6):
    """Share of the points inside the crop that sit on a bright pixel, and how many were inside."""
    img = s["image"].numpy().max(0)
    S = img.shape[0]
    hits = inside = 0
    for u, v in points:
        x, y = int(round(u)), int(round(v))
        if 1 <= x < S - 1 and 1 <= y < S - 1:
            inside += 1
            hits += img[y, x] > thr
    return hits / max(inside, 1), inside


def test_projection_holds_after_augmentation(samples):
    for j, s in enumerate(samples):
        for seed in range(10):
            a, A, R = augment(s, STRONG, np.random.default_rng(seed))
            kp3, K = np64(a["keypoints_3d"]), np64(a["K"])
            np.testing.assert_allclose(np64(a["keypoints_2d"]), project(kp3, K), atol=1e-4)
            # the 2D points moved by the image's affine map
            np.testing.assert_allclose(np64(a["keypoints_2d"]), map_points(np64(s["keypoints_2d"]), A), atol=1e-3)
            # 3D points rotated about the optical axis: depth kept, rel points rotated
            np.testing.assert_allclose(kp3[:, 2], np64(s["keypoints_3d"])[:, 2], atol=1e-6)
            np.testing.assert_allclose(np64(a["keypoints_3d_rel"]), np64(s["keypoints_3d_rel"]) @ R.T, atol=1e-6)
            if s["has_vertices"]:
                np.testing.assert_allclose(np64(a["vertices"]), np64(s["vertices"]) @ R.T, atol=1e-6)
                np.testing.assert_allclose(np64(a["vertices_rel"]), np64(a["vertices"]) - kp3[0], atol=1e-6)
            np.testing.assert_allclose(K[2], [0, 0, 1], atol=1e-9)


def test_mano_global_orientation_follows_the_rotation(samples, hm):
    s = samples[0]
    a, _, _ = augment(s, STRONG, np.random.default_rng(4))
    with torch.no_grad():
        v, _ = hm(a["mano_pose"].double()[None], a["mano_betas"].double()[None])
    d = np64(a["vertices"]) - v[0].numpy()
    np.testing.assert_allclose(d, np.broadcast_to(d.mean(0), d.shape), atol=1e-5)  # a translation only
    np.testing.assert_allclose(np64(a["mano_pose"])[3:], np64(s["mano_pose"])[3:])


def test_image_and_mask_move_with_the_keypoints(samples):
    for s in samples:
        before, n0 = bright_at(s, np64(s["keypoints_2d"]))
        assert before == 1.0 and n0 > 0
        for seed in range(6):
            a, A, R = augment(s, STRONG, np.random.default_rng(seed))
            share, n = bright_at(a, np64(a["keypoints_2d"]))
            assert n == 0 or share >= 0.9, (seed, share)
            # control: the keypoints of another draw do not land on the dots
            other, _, _ = augment(s, STRONG, np.random.default_rng(seed + 100))
            miss, m = bright_at(a, np64(other["keypoints_2d"]))
            assert m == 0 or miss < share
            if s["has_mask"]:
                size = s["image"].shape[-1]
                expected = warp_image(s["mask"].numpy().astype(np.uint8) * 255, A, size, resample=0) > 127
                assert np.array_equal(a["mask"].numpy(), expected)


def test_paired_views_relative_transform(samples):
    for s in samples:
        for seed in range(5):
            p = paired_views(s, STRONG, np.random.default_rng(seed))
            v1, v2, T, R = p["view1"], p["view2"], np64(p["T_12"]), np64(p["R_12"])
            assert T.shape == (3, 3) and R.shape == (3, 3)
            np.testing.assert_allclose(map_points(np64(v1["keypoints_2d"]), T), np64(v2["keypoints_2d"]), atol=1e-3)
            np.testing.assert_allclose(np64(v1["keypoints_3d_rel"]) @ R.T, np64(v2["keypoints_3d_rel"]), atol=1e-6)
            np.testing.assert_allclose(np64(v1["keypoints_3d"]) @ R.T, np64(v2["keypoints_3d"]), atol=1e-6)
            if s["has_vertices"]:
                np.testing.assert_allclose(np64(v1["vertices_rel"]) @ R.T, np64(v2["vertices_rel"]), atol=1e-6)
            # T_12's linear part is R_12's in-plane rotation times the relative scale
            lin = T[:2, :2] / np.sqrt(abs(np.linalg.det(T[:2, :2])))
            np.testing.assert_allclose(lin, R[:2, :2], atol=1e-5)
            assert not torch.equal(v1["image"], v2["image"])


def test_geometry_by_hand():
    A, R = geometry(AugmentParams(scale=2.0, angle=90.0, shift=(3.0, -1.0)), 129)
    c = 64.0
    # the crop centre stays (up to the shift); a point right of it goes below it (y down), twice as far
    np.testing.assert_allclose(map_points([[c, c], [c + 1, c]], A), [[c + 3, c - 1], [c + 3, c + 1]], atol=1e-12)
    np.testing.assert_allclose(R @ [1.0, 0, 0], [0, 1.0, 0], atol=1e-12)


def test_identity_and_colour_only(samples):
    s = samples[2]
    same, A, R = augment(s, AugmentConfig.none(), np.random.default_rng(0))
    np.testing.assert_allclose(A, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(same["image"].numpy(), s["image"].numpy(), atol=1e-5)
    for key in ("K", "keypoints_2d", "keypoints_3d", "vertices", "mano_pose"):
        np.testing.assert_allclose(np64(same[key]), np64(s[key]), rtol=1e-6, atol=1e-6)
    colour = AugmentConfig(scale=(1.0, 1.0), rotation=0.0, translation=0.0, colour_prob=1.0)
    c, A, _ = augment(s, colour, np.random.default_rng(1))
    assert not torch.allclose(c["image"], s["image"])
    np.testing.assert_allclose(A, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np64(c["keypoints_2d"]), np64(s["keypoints_2d"]), atol=1e-4)
    # brightness alone scales the image
    img = torch.rand(3, 8, 8) * 0.5
    torch.testing.assert_close(colour_jitter(img, (1.5, 1.0, 1.0, 0.0)), img * 1.5)
    # a zero hue rotation and unit factors change nothing
    torch.testing.assert_close(colour_jitter(img, (1.0, 1.0, 1.0, 0.0)), img)


def test_deterministic_with_a_seed(samples):
    ds = AugmentedDataset(samples, STRONG, seed=7)
    a, b = ds[1], AugmentedDataset(samples, STRONG, seed=7)[1]
    for key in ("image", "K", "keypoints_2d", "keypoints_3d", "mask"):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["K"], AugmentedDataset(samples, STRONG, seed=8)[1]["K"])
    ds.set_epoch(1)
    assert not torch.equal(a["K"], ds[1]["K"])
    ds.set_epoch(0)
    assert torch.equal(a["K"], ds[1]["K"])
    paired = AugmentedDataset(samples, STRONG, seed=7, paired=True)
    p, q = paired[0], paired[0]
    assert torch.equal(p["T_12"], q["T_12"]) and torch.equal(p["view2"]["image"], q["view2"]["image"])


def test_paired_batches_collate(samples):
    batch = next(iter(DataLoader(AugmentedDataset(samples, STRONG, seed=0, paired=True), batch_size=4)))
    assert batch["T_12"].shape == (4, 3, 3) and batch["R_12"].shape == (4, 3, 3)
    assert batch["view1"]["image"].shape == batch["view2"]["image"].shape == (4, 3, 128, 128)
    for i in range(4):
        np.testing.assert_allclose(map_points(np64(batch["view1"]["keypoints_2d"][i]), np64(batch["T_12"][i])),
                                   np64(batch["view2"]["keypoints_2d"][i]), atol=1e-3)
