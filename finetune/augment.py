"""Augmentation shared by every loader: it works on base.py's sample dictionary.

Geometry (scale, rotation about the crop centre, translation) is one affine map A of crop
pixels (3x3, pixel-centre convention as everywhere):

    A = T(c + t) . s R2(theta) . T(-c),    c = ((S - 1) / 2, (S - 1) / 2),  t = shift in pixels

applied to the image (bilinear), the mask (nearest) and the 2D keypoints. A rotation in the
image plane is the image of a rotation of the camera-frame points about the camera's optical
axis (the z axis through the camera centre): R = [[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]] with
the same theta. The choice made here (the common one) rotates the 3D points and moves K:

    X' = R X   (keypoints_3d, vertices, and the MANO global orientation: R_g' = R R_g)
    K' = A K R^T

so that project(X', K') = A (project(X, K)) and keypoints_2d == project(keypoints_3d, K) still
holds exactly. Scale and translation leave the 3D points alone and only change K (focal
length, principal point). K' keeps its last row (0, 0, 1); it stays upper triangular when
fx == fy and K has no skew, otherwise it gains small off-diagonal terms (still an exact
projection). Depth z is unchanged by R, and root-relative points rotate by R.

The draw (pretrain/augmentation.py, shared with pretraining) has the released MobRecon code's
ranges: zoom 1.3 / (1.3 +- 0.2), rotation +-90 deg with probability 0.6, a shift within the hand
box's slack, and the release's photometric steps. Colour (brightness, contrast, saturation, hue)
and the optional camera and sensor effects
(`camera`: exposure, white balance, motion blur, noise, JPEG, drawn per epoch; the renderer's own
synth/camera_effects.py) change only the image.

Two views for MobRecon's consistency loss (seed 001, eq. 10): `paired_views` augments one
sample twice, independently, and returns both with

    T_12 = A_2 A_1^-1   (3x3, view-1 crop pixels -> view-2 crop pixels): T_12 L_1 = L_2
    R_12 = R_2 R_1^T    (3x3): R_12 V_1 = V_2 for camera-frame and root-relative points

Randomness: every function takes a numpy Generator; `AugmentedDataset` draws one from
SeedSequence([seed, epoch, index]) so a run is reproducible whatever the worker layout.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from finetune.datasets.base import apply_affine, project, warp_image
from pretrain.augmentation import (AugmentConfig, AugmentParams, ColourParams, crop_warp,  # noqa: F401
                                   draw_params, photometric)
from pretrain.image_ops import camera_augment, camera_settings, colour_jitter  # noqa: F401


def geometry(params: AugmentParams, size: int) -> tuple:
    """(A, R): the crop-pixel affine map (3x3) and the camera-frame rotation (3x3) of `params`."""
    th = np.deg2rad(params.angle)
    c, s = np.cos(th), np.sin(th)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return crop_warp(params, size), R


def _warp_float_image(image: torch.Tensor, A: np.ndarray, size: int) -> torch.Tensor:
    chans = [warp_image(np.ascontiguousarray(ch, dtype=np.float32), A, size) for ch in image.numpy()]
    return torch.from_numpy(np.stack(chans).astype(np.float32))


def _rotate_global_orient(pose: torch.Tensor, R: np.ndarray) -> torch.Tensor:
    from scipy.spatial.transform import Rotation

    pose = pose.clone()
    Rg = Rotation.from_rotvec(pose[:3].double().numpy()).as_matrix()
    pose[:3] = torch.as_tensor(Rotation.from_matrix(R @ Rg).as_rotvec(), dtype=pose.dtype)
    return pose


def apply_geometry(sample: dict, A: np.ndarray, R: np.ndarray) -> dict:
    """A new sample: image/mask warped by A, 3D points and MANO global orientation rotated by R, K' = A K R^T."""
    out = dict(sample)
    size = sample["image"].shape[-1]
    out["image"] = _warp_float_image(sample["image"], A, size)
    if sample["has_mask"]:
        m = sample["mask"].numpy().astype(np.uint8) * 255
        out["mask"] = torch.from_numpy(warp_image(m, A, size, resample=0) > 127)
    K = sample["K"].double().numpy()
    K2 = A @ K @ R.T
    kp3 = sample["keypoints_3d"].double().numpy() @ R.T
    labelled = kp3[:, 2] != 0
    kp2 = np.zeros((len(kp3), 2))
    kp2[labelled] = project(kp3[labelled], K2)
    f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    out["K"] = f32(K2)
    out["keypoints_3d"] = f32(kp3)
    out["keypoints_2d"] = f32(kp2)
    out["keypoints_3d_rel"] = f32(kp3 - kp3[0])
    if sample["has_vertices"]:
        v = sample["vertices"].double().numpy() @ R.T
        out["vertices"] = f32(v)
        out["vertices_rel"] = f32(v - kp3[0])
    if sample["has_mano"]:
        out["mano_pose"] = _rotate_global_orient(sample["mano_pose"], R)
    return out


def augment(sample: dict, config: AugmentConfig, rng: np.random.Generator) -> tuple:
    """(augmented sample, A, R) for one random draw of `config`."""
    size = sample["image"].shape[-1]
    params = draw_params(config, rng, size)
    A, R = geometry(params, size)
    out = apply_geometry(sample, A, R)
    out["image"] = photometric(out["image"], params.colour)
    camera = camera_settings(config.camera)
    if camera is not None:  # drawn after this view's geometry and colour: without it every draw is as before
        out["image"] = camera_augment(out["image"], camera, rng)
    return out, A, R


def paired_views(sample: dict, config: AugmentConfig, rng: np.random.Generator) -> dict:
    """Two independent augmentations of one sample and their relative transforms (see the module doc)."""
    v1, A1, R1 = augment(sample, config, rng)
    v2, A2, R2 = augment(sample, config, rng)
    return {"view1": v1, "view2": v2,
            "T_12": torch.as_tensor(A2 @ np.linalg.inv(A1), dtype=torch.float32),
            "R_12": torch.as_tensor(R2 @ R1.T, dtype=torch.float32)}


def map_points(points_2d, T) -> np.ndarray:
    """Apply a 3x3 (or 2x3) affine map such as T_12 to (N, 2) pixel points."""
    return apply_affine(np.asarray(points_2d, dtype=np.float64), np.asarray(T, dtype=np.float64))


class AugmentedDataset(Dataset):
    """A dataset whose samples are augmented (paired=True: paired_views dicts), reproducibly.

    The generator of item i in epoch e is default_rng(SeedSequence([seed, e, i])); call
    set_epoch(e) before each epoch (DataLoader workers that are re-created every epoch, the
    default, see the new epoch).
    """

    def __init__(self, dataset, config: AugmentConfig | None = None, seed: int = 0, paired: bool = False):
        self.dataset = dataset
        self.config = config or AugmentConfig()
        self.seed = int(seed)
        self.paired = paired
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, int(index)]))
        sample = self.dataset[index]
        if self.paired:
            return paired_views(sample, self.config, rng)
        return augment(sample, self.config, rng)[0]
