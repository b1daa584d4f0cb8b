"""The random draw of one training augmentation, shared by pretraining and fine-tuning.

Defaults are the authors' released MobRecon code (github SeanChenxy/HandMesh), where the paper is
silent; each line below names the release's place:

| draw | release | here (AugmentConfig field) |
| --- | --- | --- |
| crop side | hand box x (1.3 + 0.2 r) (configs/defaults.py BASE_SCALE, SCALE) | zoom = 1 / (1 + 0.2 / 1.3 r) about the loader's crop (hand box x `margin` 1.3): `scale` |
| rotation | r x 90 deg with probability 0.6 (utils/preprocessing.py get_aug_config; ROT 90) | `rotation`, `rotation_prob` |
| shift | r x the box's slack inside the crop, per axis (gen_trans_from_patch_cv, shift_wh) | `translation` None |
| r | a normal of std 3 truncated to [-1, 1] by rejection (get_m1to1_gaussian_rand, DATA.STD 3) | `spread` |
| brightness | + U(-32, 32) / 255, p 0.5 (utils/augmentation.py RandomBrightness) | `brightness` |
| contrast | x U(0.5, 1.5), p 0.5, before or after the HSV steps (p 0.5 each; RandomContrast) | `contrast` |
| saturation | HSV S x U(0.5, 1.5), p 0.5 (RandomSaturation) | `saturation` |
| hue | HSV H + U(-18, 18) deg, p 0.5 (RandomHue) | `hue`, `colour_prob` |

The release leaves colour values outside [0, 1] (it normalises without clipping); so does
`photometric`. SAR's release (data/processing.py) draws differently: every sample rotated
U(-180, 180), box x U(0.9, 1.1), shift U(-10, 10) px, each channel x U(0.8, 1.2) clipped
(`channel_gain`); hands/recipes.py sets those for SAR. A rotation is drawn before its probability is tested, as in the release, so the
other draws do not depend on whether the image rotates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from .image_ops import camera_settings

# MobRecon's release: crop = hand box x BASE_SCALE (1.3), augmented by +- SCALE (0.2) of the box
RELEASE_BASE_SCALE, RELEASE_SCALE = 1.3, 0.2


@dataclass(frozen=True)
class AugmentConfig:
    scale: tuple = (RELEASE_BASE_SCALE / (RELEASE_BASE_SCALE + RELEASE_SCALE),
                    RELEASE_BASE_SCALE / (RELEASE_BASE_SCALE - RELEASE_SCALE))  # zoom range (>1 enlarges the hand)
    rotation: float = 90.0        # degrees: theta = r x rotation
    rotation_prob: float = 0.6    # share of draws that rotate
    translation: float | None = None  # None: r x the hand box's slack in the crop; t: U(-t, t) x crop size
    margin: float = RELEASE_BASE_SCALE  # the loaders' crop = hand box x margin (sizes the slack)
    spread: float = 3.0           # std of the normal truncated to [-1, 1] that draws r (0: uniform)
    brightness: float = 32.0 / 255.0  # added: U(-b, b)
    contrast: tuple = (0.5, 1.5)  # multiplied
    saturation: tuple = (0.5, 1.5)  # HSV saturation multiplied
    hue: float = 18.0             # HSV hue shifted by U(-h, h) degrees
    colour_prob: float = 0.5      # each colour step's probability
    channel_gain: float = 0.0     # SAR's release: each channel x U(1 - g, 1 + g), then clipped to [0, 1]
    camera: dict | None = None    # camera and sensor effects per draw (pretrain.image_ops.camera_settings)

    def __post_init__(self):
        for name in ("scale", "contrast", "saturation"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise ValueError(f"augment.{name} must be a pair (low, high), got {value!r}")
            object.__setattr__(self, name, tuple(float(v) for v in value))
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"augment.{name} must be (low, high) with 0 < low <= high, got {value!r}")
        for name in ("rotation_prob", "colour_prob"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1], got {getattr(self, name)!r}")
        if float(self.margin) < 1.0:
            raise ValueError(f"augment.margin must be >= 1 (the crop holds the hand box), got {self.margin!r}")
        camera_settings(self.camera)  # a bad setting fails here, before any data is read

    @classmethod
    def none(cls) -> "AugmentConfig":
        return cls(scale=(1.0, 1.0), rotation=0.0, translation=0.0, brightness=0.0, contrast=(1.0, 1.0),
                   saturation=(1.0, 1.0), hue=0.0, channel_gain=0.0)

    @classmethod
    def from_value(cls, value) -> "AugmentConfig | None":
        """True/None -> the defaults, False -> None (no augmentation), a dict -> those fields."""
        if value is False:
            return None
        if value is True or value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            known = {f.name for f in fields(cls)}
            bad = sorted(set(value) - known)
            if bad:
                raise ValueError(f"augment: unknown field(s) {bad}; fields: {sorted(known)}")
            return cls(**value)
        raise ValueError(f"augment must be true, false or a dict of {sorted(f.name for f in fields(cls))}, "
                         f"got {value!r}")


@dataclass(frozen=True)
class ColourParams:
    brightness: float = 0.0       # added
    contrast: float = 1.0         # multiplied
    contrast_first: bool = True   # contrast before (True) or after the HSV steps
    saturation: float = 1.0       # HSV S multiplied
    hue: float = 0.0              # degrees added to HSV H
    gains: tuple = (1.0, 1.0, 1.0)  # per channel, then clipped (SAR's release)

    @property
    def identity(self) -> bool:
        return self.brightness == 0.0 and self.contrast == 1.0 and self.saturation == 1.0 and self.hue == 0.0 \
            and tuple(self.gains) == (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class AugmentParams:
    scale: float = 1.0                           # zoom
    angle: float = 0.0                           # degrees
    shift: tuple = (0.0, 0.0)                    # crop pixels
    colour: ColourParams = field(default_factory=ColourParams)


def unit_draw(rng: np.random.Generator, spread: float) -> float:
    """r in [-1, 1]: a normal of std `spread` truncated by rejection (release get_m1to1_gaussian_rand); 0: uniform."""
    if not spread:
        return float(rng.uniform(-1.0, 1.0))
    while True:
        r = float(rng.normal(scale=spread))
        if -1.0 <= r <= 1.0:
            return r


def _range_draw(rng, lo_hi, chance: bool) -> float:
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    value = float(rng.uniform(lo, hi)) if lo != hi else lo
    return value if chance else 1.0


def draw_params(config: AugmentConfig, rng: np.random.Generator, size: int) -> AugmentParams:
    """One draw of `config` for a crop of `size` pixels."""
    lo, hi = config.scale
    if lo == hi:
        zoom = float(lo)
    else:  # the crop side 1 / zoom is drawn as the release draws its box scale: centre + half-range x r
        inv_lo, inv_hi = 1.0 / hi, 1.0 / lo
        zoom = 1.0 / ((inv_lo + inv_hi) / 2 + (inv_hi - inv_lo) / 2 * unit_draw(rng, config.spread))
    angle = unit_draw(rng, config.spread) * float(config.rotation) if config.rotation else 0.0
    if rng.random() >= config.rotation_prob:
        angle = 0.0
    if config.translation is None:
        # release: the crop side is k = margin / zoom hand boxes; the centre moves by r x (k - 1) / 2 boxes
        k = float(config.margin) / zoom
        slack = max(k - 1.0, 0.0) / (2.0 * k) * size
        shift = (unit_draw(rng, config.spread) * slack, unit_draw(rng, config.spread) * slack)
    else:
        t = float(config.translation) * size
        shift = (float(rng.uniform(-t, t)), float(rng.uniform(-t, t))) if t else (0.0, 0.0)
    p = float(config.colour_prob)
    brightness = float(rng.uniform(-config.brightness, config.brightness)) if config.brightness else 0.0
    colour = ColourParams(brightness=brightness if rng.random() < p else 0.0,
                          contrast_first=bool(rng.random() < 0.5),
                          contrast=_range_draw(rng, config.contrast, rng.random() < p),
                          saturation=_range_draw(rng, config.saturation, rng.random() < p),
                          hue=float(rng.uniform(-config.hue, config.hue)) * (rng.random() < p) if config.hue else 0.0,
                          gains=tuple(float(g) for g in rng.uniform(1 - config.channel_gain, 1 + config.channel_gain, 3))
                          if config.channel_gain else (1.0, 1.0, 1.0))
    return AugmentParams(scale=zoom, angle=angle, shift=shift, colour=colour)


def crop_warp(params: AugmentParams, size: int) -> np.ndarray:
    """The 3x3 crop-pixel map of `params`: zoom and rotation about the crop centre, then the shift."""
    th = math.radians(params.angle)
    R2 = params.scale * np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    ctr = np.full(2, (size - 1) / 2.0)
    A = np.eye(3)
    A[:2, :2] = R2
    A[:2, 2] = ctr + np.asarray(params.shift, dtype=np.float64) - R2 @ ctr
    return A


def rgb_to_hsv(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB -> H in degrees [0, 360), S = (max - min) / max, V = max (OpenCV's float convention)."""
    r, g, b = image
    v, arg = image.max(0)
    d = v - image.amin(0)
    s = d / torch.where(v != 0, v, torch.ones_like(v))
    safe = torch.where(d != 0, d, torch.ones_like(d))
    # the hue of the largest channel's sector: red 0, green 120, blue 240 deg
    num = torch.stack([g - b, b - r, r - g]).gather(0, arg[None])[0]
    h = (arg * 120.0 + 60.0 * num / safe) * (d != 0)
    return torch.stack([h % 360.0, s, v])


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """The inverse of rgb_to_hsv: channel n (R, G, B = 5, 3, 1) is v - v s clamp(min(k, 4 - k), 0, 1),
    k = (n + h / 60) mod 6."""
    h, s, v = hsv
    n = torch.tensor([5.0, 3.0, 1.0], dtype=hsv.dtype).view(3, 1, 1)
    k = (n + h / 60.0) % 6.0
    return v - v * s * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)


def photometric(image: torch.Tensor, colour: ColourParams) -> torch.Tensor:
    """The release's PhotometricDistort with the drawn `colour` on a (3, H, W) image in [0, 1] (not clipped)."""
    if colour.identity:
        return image
    img = image + colour.brightness
    if colour.contrast_first:
        img = img * colour.contrast
    if colour.saturation != 1.0 or colour.hue:
        hsv = rgb_to_hsv(img)
        hsv[1] = hsv[1] * colour.saturation
        hsv[0] = (hsv[0] + colour.hue) % 360.0
        img = hsv_to_rgb(hsv)
    if not colour.contrast_first:
        img = img * colour.contrast
    if tuple(colour.gains) != (1.0, 1.0, 1.0):  # SAR's release (processing.py): channel gains, clipped
        img = (img * torch.tensor(colour.gains, dtype=img.dtype).view(3, 1, 1)).clamp(0.0, 1.0)
    return img
