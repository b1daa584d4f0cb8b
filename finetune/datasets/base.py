"""What every dataset loader returns, and the crop geometry they share.

A loader is a torch Dataset whose items are dicts with these keys (tensors
float32 unless said otherwise; all in the project's conventions: right hands,
metres, OpenCV camera frame, pixel centre of the top-left pixel at (0, 0),
FreiHAND keypoint order):

| key | shape | meaning |
| --- | --- | --- |
| image | (3, S, S) | crop around the hand, RGB in [0, 1] |
| mask | (S, S) bool | hand mask in the crop (all False when the dataset has none; see has_mask) |
| K | (3, 3) | intrinsics of the crop (the original K moved by the crop's affine map) |
| keypoints_2d | (21, 2) | pixels in the crop |
| keypoints_3d | (21, 3) | camera frame |
| keypoints_3d_rel | (21, 3) | minus the wrist (keypoint 0) |
| vertices | (778, 3) | camera frame, zeros when has_vertices is False |
| vertices_rel | (778, 3) | minus the wrist keypoint |
| mano_pose | (48,) | flat axis-angle (zeros when has_mano is False) |
| mano_betas | (10,) | |
| visibility | (21,) bool | |
| has_mask, has_vertices, has_mano | bool | |
| mirrored | bool | the sample was a left hand, mirrored to a right one |
| dataset, sample_id | str | |
| topology | str | 'mano' for MANO-topology vertices, else the hand model's template hash |

Left hands are mirrored on load (image flipped left-right, x negated in the
camera frame, K's principal point mirrored), as the benchmarks' own tools do.
"""
from __future__ import annotations

import numpy as np

from pretrain.image_ops import warp_image  # noqa: F401 - part of the loaders' crop toolkit

CROP_SIZE = 128
CROP_SCALE = 1.5  # crop side = CROP_SCALE x the larger side of the keypoints' 2D box
MIRROR_3D = np.diag([-1.0, 1.0, 1.0])


class DatasetFormatError(ValueError):
    """A dataset file is missing, truncated or not in the expected format (the message names it)."""


def crop_transform(center, side: float, out_size: int) -> np.ndarray:
    """3x3 affine map from image pixels to crop pixels (pixel-centre convention).

    The square of `side` pixels centred at `center` maps onto the out_size crop:
    the crop's pixel centres 0..out_size-1 cover the square's interior.
    """
    s = out_size / float(side)
    cx, cy = center
    # image point (cx, cy) -> crop centre (out_size - 1) / 2
    return np.array([[s, 0.0, (out_size - 1) / 2.0 - s * cx],
                     [0.0, s, (out_size - 1) / 2.0 - s * cy],
                     [0.0, 0.0, 1.0]])


def box_crop(keypoints_2d: np.ndarray, out_size: int = CROP_SIZE, scale: float = CROP_SCALE) -> np.ndarray:
    """The crop transform of a square box around 2D keypoints."""
    lo, hi = keypoints_2d.min(axis=0), keypoints_2d.max(axis=0)
    side = max(float((hi - lo).max()) * scale, 1.0)
    return crop_transform((lo + hi) / 2.0, side, out_size)


RELEASE_BOX_SCALE = 1.3  # MobRecon's release: the crop is the hand box x BASE_SCALE 1.3 (configs/defaults.py)


def release_patch_transform(center, side: float, out_size: int) -> np.ndarray:
    """The release's crop map without augmentation (utils/preprocessing.py, gen_trans_from_patch_cv): the
    square of `side` pixels centred at `center` onto out_size pixels, `center` landing on out_size / 2
    (OpenCV's warpAffine on integer pixel centres; half a pixel off crop_transform's (out_size - 1) / 2)."""
    s = out_size / float(side)
    cx, cy = center
    return np.array([[s, 0.0, out_size / 2.0 - s * cx],
                     [0.0, s, out_size / 2.0 - s * cy],
                     [0.0, 0.0, 1.0]])


def mask_box(mask: np.ndarray) -> tuple | None:
    """(centre, side) of the release's hand box: the bounding rectangle of the mask's largest 8-connected
    region (the release's largest external contour, cv2.boundingRect), made square by its longer side; its
    centre is x + w / 2 as the release computes it. None for an empty mask."""
    from scipy import ndimage

    labels, n = ndimage.label(np.asarray(mask, dtype=bool), structure=np.ones((3, 3), dtype=int))
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    ys, xs = np.nonzero(labels == 1 + int(np.argmax(sizes)))
    x, y = int(xs.min()), int(ys.min())
    w, h = int(xs.max()) - x + 1, int(ys.max()) - y + 1
    return (x + 0.5 * w, y + 0.5 * h), float(max(w, h))


def release_mask_crop(mask: np.ndarray, out_size: int, scale: float = RELEASE_BOX_SCALE) -> np.ndarray | None:
    """The release's training crop (mobrecon/datasets/freihand.py, comphand.py): the mask's square box x scale."""
    box = mask_box(mask)
    return None if box is None else release_patch_transform(box[0], box[1] * scale, out_size)


def apply_affine(points_2d: np.ndarray, A: np.ndarray) -> np.ndarray:
    return points_2d @ A[:2, :2].T + A[:2, 2]


def mirror_sample(image: np.ndarray, K: np.ndarray, points_3d: list) -> tuple:
    """Mirror a left hand into a right one: flip the image, negate camera x, mirror K."""
    w = image.shape[1]
    K = np.array(K, dtype=np.float64, copy=True)
    K[0, 2] = (w - 1) - K[0, 2]
    K[0, 1] = -K[0, 1]
    return image[:, ::-1].copy(), K, [None if p is None else np.asarray(p) @ MIRROR_3D for p in points_3d]


def project(points_3d: np.ndarray, K: np.ndarray) -> np.ndarray:
    p = np.asarray(points_3d) @ np.asarray(K).T
    return p[:, :2] / p[:, 2:3]
