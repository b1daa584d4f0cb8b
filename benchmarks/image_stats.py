"""Image statistics that camera and sensor effects change, for comparing renders with real photographs.

Each function takes a uint8 RGB image (H, W, 3) and, where the hand matters, its 21 keypoints in pixels.
Luma is Rec. 709 of the sRGB values in [0, 1] (what a viewer sees, not linear light).

- `hand_luma`: the median luma along the 20 bones (the skin the keypoints run over): how bright the
  hand is exposed;
- `crop_luma` / `crop_contrast`: mean and standard deviation of luma over the whole image (call it on
  the model's crop);
- `noise_sigma`: Immerkaer's estimate of additive noise (J. Immerkaer, "Fast noise variance
  estimation", CVIU 1996: sigma = sqrt(pi / 2) mean|I * N| / 6 with the 3x3 kernel N below), taken
  over the flattest half of the pixels so edges do not count as noise;
- `sharpness`: the standard deviation of the Laplacian over the standard deviation of luma: high-
  frequency content relative to contrast (blur lowers it, noise raises it);
- `blockiness`: mean |step| across the 8-pixel JPEG block boundaries over the mean |step| between
  other neighbours (1.0: no block structure; JPEG at low quality raises it). Use it on an image whose
  8 x 8 grid has not been resampled.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve, sobel

from synth.hand_model import FREIHAND_PARENTS

BONES = [(p, k) for k, p in enumerate(FREIHAND_PARENTS) if p >= 0]
IMMERKAER = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def luma(rgb: np.ndarray) -> np.ndarray:
    x = np.asarray(rgb, dtype=np.float64) / 255.0
    return x[..., 0] * 0.2126 + x[..., 1] * 0.7152 + x[..., 2] * 0.0722


def hand_luma(rgb: np.ndarray, keypoints: np.ndarray, labelled=None, per_bone: int = 8) -> float:
    """Median luma at `per_bone` points along each bone whose two ends are labelled (end points excluded),
    nearest pixel."""
    y = luma(rgb)
    kp = np.asarray(keypoints, dtype=np.float64)
    lab = np.ones(len(kp), bool) if labelled is None else np.asarray(labelled, bool)
    t = (np.arange(per_bone) + 1.0) / (per_bone + 1.0)
    bones = [(a, b) for a, b in BONES if lab[a] and lab[b]]
    if not bones:
        return float("nan")
    pts = np.concatenate([kp[a] + (kp[b] - kp[a]) * t[:, None] for a, b in bones])
    px = np.rint(pts).astype(int)
    inside = (px >= 0).all(axis=1) & (px[:, 0] < y.shape[1]) & (px[:, 1] < y.shape[0])
    if not inside.any():
        return float("nan")
    return float(np.median(y[px[inside, 1], px[inside, 0]]))


def crop_luma(rgb: np.ndarray) -> float:
    return float(luma(rgb).mean())


def crop_contrast(rgb: np.ndarray) -> float:
    return float(luma(rgb).std())


def noise_sigma(rgb: np.ndarray, flat_share: float = 0.5) -> float:
    """Additive noise std (luma, [0, 1] units) over the flattest `flat_share` of the interior pixels."""
    y = luma(rgb)
    response = np.abs(convolve(y, IMMERKAER, mode="nearest"))[1:-1, 1:-1]
    grad = np.hypot(sobel(y, 0), sobel(y, 1))[1:-1, 1:-1]
    flat = grad <= np.quantile(grad, flat_share)
    return float(np.sqrt(np.pi / 2.0) * response[flat].mean() / 6.0)


def sharpness(rgb: np.ndarray) -> float:
    y = luma(rgb)
    lap = convolve(y, LAPLACIAN, mode="nearest")[1:-1, 1:-1]
    return float(lap.std() / max(y.std(), 1e-6))


def blockiness(rgb: np.ndarray, block: int = 8) -> float:
    y = luma(rgb)
    steps = np.abs(np.diff(y, axis=1))          # step between columns c and c + 1
    cols = np.arange(steps.shape[1])
    at_edge = (cols % block) == block - 1        # columns 7|8, 15|16, ...
    if not at_edge.any() or at_edge.all():
        return float("nan")
    return float(steps[:, at_edge].mean() / max(steps[:, ~at_edge].mean(), 1e-9))
