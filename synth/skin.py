"""The skin palette: what a rendered hand's material may look like.

A base tone is one of twelve albedos spanning very light to very dark skin
(sRGB, converted to linear for the shader), shifted by an undertone (warm,
neutral, olive or cool, at a drawn strength) and jittered per channel. On top
of it the procedural skin (synth/skin_bake.py per vertex, synth/skin_shader.py
per shading point) varies the albedo over the hand by region
(synth/skin_regions.py: paler palm, redder knuckles and fingertips, darker
creases, nails) and adds albedo noise and normal detail. Per sample (drawn from the sample's own random stream):

| key | parameter | range |
| --- | --- | --- |
| tone | base tone index into SKIN_TONES_SRGB (0 very light .. 11 very dark) | uniform over 0..11 |
| undertone | hue shift of the base tone (UNDERTONES multipliers of sRGB) | warm, neutral, olive, cool |
| undertone_strength | share of the undertone's shift applied | U(0.4, 1.0) |
| base_color_srgb | tone x undertone shift x per-channel jitter | jitter U(0.95, 1.05) per channel |
| roughness | skin roughness | U(0.35, 0.65) |
| subsurface_weight | skin subsurface weight | U(0.08, 0.25) |
| subsurface_radius | per channel, x subsurface scale | (1.0, 0.35, 0.2) |
| subsurface_scale | subsurface scale (m) | U(0.003, 0.010) |
| palm_lightening | palm: mix towards palm_tone_srgb(base) | U(0.25, 0.65) |
| knuckle_redness | knuckles: mix towards red_tone_srgb(base) | U(0.15, 0.55) |
| tip_redness | fingertip pads: the palm tone mixed towards red_tone_srgb(palm tone) | U(0.20, 0.60) |
| crease_strength | darkening and reddening along the creases' lines (0 = none) | U(0.35, 1.0) |
| bump_strength | normal detail: std of the vertex normals' tilt per tangent axis, in radians (x 3 on the crease bands; 0 = smooth) | U(0.03, 0.10) |
| noise_scale | albedo noise frequency (1/m; features of 1/scale) | U(30, 110) |
| noise_strength | albedo noise amplitude (relative; about its std) | U(0.02, 0.07) |
| noise_offset | offset of the albedo and normal noises (in noise cells), 3 values | U(0, 100) each |
| nail_color_srgb | nail plate, pinkish white: (r, r f_g, r f_g f_b) | r U(0.82, 0.96), f_g U(0.74, 0.88), f_b U(0.90, 1.02) |
| nail_edge_paleness | free edge of the nail: mix of the plate towards NAIL_EDGE_SRGB | U(0.35, 0.75) |
| nail_roughness | nail roughness | U(0.12, 0.30) |
| nail_gloss | nail clear-coat weight | U(0.30, 0.90) |

Every value is rounded to 6 digits and JSON-able (the annotation records the
dict). The derived colours (palm, knuckle, tip and nail tones) are computed
from base_color_srgb by the functions below when the scene is set (see
synth/skin_bake.py region_colours and synth/skin_shader.py shader_values), so
overriding base_color_srgb moves them all. Setting palm_lightening, knuckle_redness, tip_redness, crease_strength,
bump_strength, noise_strength, nail_edge_paleness and nail_gloss to 0,
nail_color_srgb to base_color_srgb and nail_roughness to roughness (flat_skin)
gives back the flat one-colour skin, apart from the nails' lower subsurface
weight.
"""
from __future__ import annotations

import numpy as np

SKIN_TONES_SRGB = (
    (0.97, 0.85, 0.77),
    (0.96, 0.80, 0.69),
    (0.91, 0.72, 0.60),
    (0.87, 0.67, 0.54),
    (0.82, 0.61, 0.48),
    (0.75, 0.55, 0.41),
    (0.68, 0.48, 0.35),
    (0.58, 0.40, 0.28),
    (0.50, 0.33, 0.23),
    (0.41, 0.27, 0.18),
    (0.33, 0.21, 0.14),
    (0.24, 0.15, 0.10),
)
# multipliers of the base tone's sRGB at full undertone strength
UNDERTONES = {
    "warm": (1.03, 1.00, 0.90),
    "neutral": (1.00, 1.00, 1.00),
    "olive": (0.96, 1.02, 0.88),
    "cool": (1.03, 0.95, 1.02),
}
SUBSURFACE_RADIUS = (1.0, 0.35, 0.2)
# the pinkish-beige palms of darker skins (sRGB); palm_tone_srgb pulls towards its hue
PALM_HUE_SRGB = (0.86, 0.66, 0.58)
REDNESS = (1.07, 0.84, 0.83)          # sRGB multipliers: the redder tone of knuckles and fingertips
NAIL_EDGE_SRGB = (0.96, 0.94, 0.90)   # the free edge of a nail: towards an off-white
NAIL_BED_MIX = 0.40                   # how much of the skin tone shows through the nail plate


def srgb_to_linear(c):
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c):
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def _luma(c) -> float:
    return float(np.asarray(c) @ np.array([0.2126, 0.7152, 0.0722]))


def palm_tone_srgb(base_srgb) -> np.ndarray:
    """The paler, less saturated tone the palm mixes towards: the base's brightness raised 40 % of the way
    to white at its own hue, desaturated by 20 %, a third of the way to the hue of PALM_HUE_SRGB at the
    same brightness (the pinkish-beige palms of darker skins)."""
    base = np.asarray(base_srgb, dtype=np.float64)
    luma = max(_luma(base), 1e-6)
    target = luma + (1.0 - luma) * 0.40
    light = base * target / luma
    light = target + (light - target) * 0.8
    hue = np.asarray(PALM_HUE_SRGB) * (target / _luma(PALM_HUE_SRGB))
    return np.clip(light + (hue - light) / 3.0, 0.0, 1.0)


def red_tone_srgb(base_srgb) -> np.ndarray:
    """The redder tone of knuckles and fingertips: the base times REDNESS, at 95 % of its brightness."""
    base = np.asarray(base_srgb, dtype=np.float64)
    red = base * np.asarray(REDNESS)
    return np.clip(red * 0.95 * _luma(base) / max(_luma(red), 1e-6), 0.0, 1.0)


def nail_tones_srgb(nail_srgb, base_srgb, edge_paleness: float) -> tuple:
    """(nail plate, free edge) as rendered: the plate shows a little of the skin beneath it, the free
    edge is the plate mixed towards NAIL_EDGE_SRGB by edge_paleness."""
    nail = np.asarray(nail_srgb, dtype=np.float64)
    plate = nail + (np.asarray(base_srgb, dtype=np.float64) - nail) * NAIL_BED_MIX
    edge = plate + (np.asarray(NAIL_EDGE_SRGB) - plate) * edge_paleness
    return np.clip(plate, 0.0, 1.0), np.clip(edge, 0.0, 1.0)


def _r(x) -> float:
    return round(float(x), 6)


def sample_skin(rng: np.random.Generator) -> dict:
    tone = int(rng.integers(len(SKIN_TONES_SRGB)))
    undertone = list(UNDERTONES)[int(rng.integers(len(UNDERTONES)))]
    strength = rng.uniform(0.4, 1.0)
    shift = 1.0 + strength * (np.asarray(UNDERTONES[undertone]) - 1.0)
    srgb = np.clip(np.asarray(SKIN_TONES_SRGB[tone]) * shift * rng.uniform(0.95, 1.05, size=3), 0.0, 1.0)
    skin = {
        "tone": tone,
        "undertone": undertone,
        "undertone_strength": _r(strength),
        "base_color_srgb": [_r(c) for c in srgb],
        "roughness": _r(rng.uniform(0.35, 0.65)),
        "subsurface_weight": _r(rng.uniform(0.08, 0.25)),
        "subsurface_radius": list(SUBSURFACE_RADIUS),
        "subsurface_scale": _r(rng.uniform(0.003, 0.010)),
    }
    r = rng.uniform(0.82, 0.96)
    g = r * rng.uniform(0.74, 0.88)
    b = g * rng.uniform(0.90, 1.02)
    skin.update({
        "palm_lightening": _r(rng.uniform(0.25, 0.65)),
        "knuckle_redness": _r(rng.uniform(0.15, 0.55)),
        "tip_redness": _r(rng.uniform(0.20, 0.60)),
        "crease_strength": _r(rng.uniform(0.35, 1.0)),
        "bump_strength": _r(rng.uniform(0.03, 0.10)),
        "noise_scale": _r(rng.uniform(30.0, 110.0)),
        "noise_strength": _r(rng.uniform(0.02, 0.07)),
        "noise_offset": [_r(v) for v in rng.uniform(0.0, 100.0, size=3)],
        "nail_color_srgb": [_r(r), _r(g), _r(b)],
        "nail_edge_paleness": _r(rng.uniform(0.35, 0.75)),
        "nail_roughness": _r(rng.uniform(0.12, 0.30)),
        "nail_gloss": _r(rng.uniform(0.30, 0.90)),
    })
    return skin


def flat_skin(skin: dict) -> dict:
    """The same sample with every detail strength at 0: the flat one-colour skin of the base tone."""
    return dict(skin, palm_lightening=0.0, knuckle_redness=0.0, tip_redness=0.0, crease_strength=0.0,
                bump_strength=0.0, noise_strength=0.0, nail_color_srgb=list(skin["base_color_srgb"]),
                nail_edge_paleness=0.0, nail_roughness=skin["roughness"], nail_gloss=0.0)
