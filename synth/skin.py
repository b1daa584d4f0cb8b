"""The skin palette: what a rendered hand's material may look like.

Tones are six base albedos spanning light to dark skin (sRGB values of
Fitzpatrick-type swatches, converted to linear for the shader), jittered per
channel. Per sample (drawn from the sample's own random stream):

| parameter | range |
| --- | --- |
| tone | one of SKIN_TONES_SRGB, x U(0.93, 1.07) per channel |
| roughness | U(0.35, 0.65) |
| subsurface weight | U(0.08, 0.25) |
| subsurface radius (per channel, x scale) | (1.0, 0.35, 0.2) |
| subsurface scale (m) | U(0.003, 0.010) |
"""
from __future__ import annotations

import numpy as np

SKIN_TONES_SRGB = (
    (0.96, 0.80, 0.69),
    (0.91, 0.72, 0.60),
    (0.82, 0.61, 0.48),
    (0.68, 0.48, 0.35),
    (0.50, 0.33, 0.23),
    (0.33, 0.21, 0.14),
)
SUBSURFACE_RADIUS = (1.0, 0.35, 0.2)


def srgb_to_linear(c):
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c):
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def sample_skin(rng: np.random.Generator) -> dict:
    tone = int(rng.integers(len(SKIN_TONES_SRGB)))
    srgb = np.clip(np.asarray(SKIN_TONES_SRGB[tone]) * rng.uniform(0.93, 1.07, size=3), 0.0, 1.0)
    return {
        "tone": tone,
        "base_color_srgb": [round(float(c), 6) for c in srgb],
        "roughness": round(float(rng.uniform(0.35, 0.65)), 6),
        "subsurface_weight": round(float(rng.uniform(0.08, 0.25)), 6),
        "subsurface_radius": list(SUBSURFACE_RADIUS),
        "subsurface_scale": round(float(rng.uniform(0.003, 0.010)), 6),
    }
