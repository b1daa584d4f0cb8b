"""Image operations shared by every training data path (pretraining and fine-tuning).

They live in `pretrain` because the dependency order is hdri <- synth <-
pretrain <- finetune: `finetune.augment` and the benchmark loaders import them
from here.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from synth.camera_effects import FORMER_DEFAULTS

LUMA = (0.299, 0.587, 0.114)
RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def warp_image(image, A: np.ndarray, out_size: int, resample=Image.BILINEAR) -> np.ndarray:
    """Resample an image (HxW[xC] uint8 array or PIL image) under the affine map A
    (image px -> output px), both in the pixel-centre convention, to out_size x out_size.

    PIL's AFFINE maps output to input in corner coordinates (a pixel's centre
    is at +0.5); ours are centre coordinates: in = inv @ out becomes
    in + 0.5 = inv @ (out_corner - 0.5) + 0.5.
    """
    inv = np.linalg.inv(A)
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    coeffs = (inv[0, 0], inv[0, 1], inv[0, 2] - 0.5 * (inv[0, 0] + inv[0, 1]) + 0.5,
              inv[1, 0], inv[1, 1], inv[1, 2] - 0.5 * (inv[1, 0] + inv[1, 1]) + 0.5)
    return np.asarray(img.transform((out_size, out_size), Image.AFFINE, coeffs, resample=resample))


def colour_jitter(image: torch.Tensor, colour: tuple) -> torch.Tensor:
    """Brightness, contrast, saturation (factors) and hue (YIQ chroma rotation by hue x pi) of a (3, H, W) image."""
    b, c, s, h = colour
    weights = torch.tensor(LUMA, dtype=image.dtype).view(3, 1, 1)
    img = image * b
    if c != 1.0:
        grey_mean = (img * weights).sum(0).mean()
        img = (img - grey_mean) * c + grey_mean
    if s != 1.0:
        grey = (img * weights).sum(0, keepdim=True)
        img = grey + (img - grey) * s
    if h:
        to_yiq = torch.tensor(RGB_TO_YIQ, dtype=img.dtype)
        th = float(h) * math.pi
        rot = torch.tensor([[1, 0, 0], [0, math.cos(th), -math.sin(th)], [0, math.sin(th), math.cos(th)]],
                           dtype=img.dtype)
        img = torch.einsum("ij,jhw->ihw", torch.linalg.inv(to_yiq) @ rot @ to_yiq, img)
    return img.clamp(0.0, 1.0)


# Named training-time camera augmentations. 'strong': the renderer's former baked-in defaults (200-2000
# photons at white, JPEG from quality 40, +-0.5 EV), with motion blur taking defocus's share of blurred
# samples (a crop has no depth map to defocus by); 'medium': about half of it in stops, photons and quality
CAMERA_AUGMENT_PRESETS = {
    "strong": {**FORMER_DEFAULTS, "defocus_prob": 0.0, "motion_blur_prob": 0.4},
    "medium": {"defocus_prob": 0.0, "motion_blur_prob": 0.2, "motion_blur_px": [0.5, 4.0],
               "noise_poisson_peak": [600.0, 6000.0], "noise_gaussian_sigma": [0.0, 0.01],
               "white_balance": [0.93, 1.07], "exposure_ev": [-0.35, 0.35], "jpeg_prob": 0.5, "jpeg_quality": [60, 95]},
}


def camera_settings(value):
    """A training-time camera-effect distribution: None / {} -> None, a preset name of
    CAMERA_AUGMENT_PRESETS or a dict of synth.camera_effects.CameraEffectsConfig fields -> that config.
    A crop carries no depth, so defocus (which needs it) is refused: motion blur is the blur of this role."""
    if not value:
        return None
    from synth.camera_effects import CameraEffectsConfig

    if isinstance(value, str):
        if value not in CAMERA_AUGMENT_PRESETS:
            raise ValueError(f"camera augmentation {value!r}: not a preset ({', '.join(CAMERA_AUGMENT_PRESETS)}) "
                             "nor a dict of camera-effect settings")
        value = CAMERA_AUGMENT_PRESETS[value]
    if isinstance(value, CameraEffectsConfig):
        cfg = value
    elif isinstance(value, dict):
        cfg = CameraEffectsConfig.from_dict({"defocus_prob": 0.0, **value})
    else:
        raise ValueError(f"camera augmentation must be a preset name or a dict of camera-effect settings, "
                         f"got {value!r}")
    if cfg.defocus_prob:
        raise ValueError("camera augmentation: defocus_prob must be 0 (a crop has no depth map); "
                         "use motion_blur_prob / motion_blur_px for blur")
    return cfg


def camera_augment(image: torch.Tensor, cfg, rng: np.random.Generator) -> torch.Tensor:
    """A (3, H, W) [0, 1] image through one draw of the camera and sensor effects of `cfg` (exposure, white
    balance, motion blur, shot and read noise, JPEG; synth/camera_effects.py), drawn from `rng`: the same
    effects the renderer can bake into a dataset, applied per epoch instead."""
    from synth.camera_effects import apply_effects_linear, draw_effects
    from synth.skin import srgb_to_linear

    params = draw_effects(cfg, rng)
    noise_seed = int(rng.integers(2 ** 63 - 1))
    # the photometric steps may leave [0, 1] (the release does not clip); a sensor's values cannot
    lin = srgb_to_linear(image.clamp(0.0, 1.0).permute(1, 2, 0).numpy()).astype(np.float32)
    out = apply_effects_linear(lin, np.zeros(lin.shape[:2], np.float32), params, 1.0, noise_seed)
    return torch.from_numpy(out.transpose(2, 0, 1).astype(np.float32) / 255.0)
