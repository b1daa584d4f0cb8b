"""Camera and sensor effects: a post-process that makes a clean render look photographed.

It is applied to a rendered image (uint8 sRGB, H x W x 3) and its planar depth map
(float metres, 0 = background). `draw_effects` draws one sample's parameters from
the sample's random stream and returns plain JSON values for the annotation.
`apply_effects` turns (image, depth, parameters, fx, noise seed) into the output
image. The same inputs give bit-identical pixels.

**Labels are never changed.** Every effect acts on the image only: keypoints,
depth, mask and K stay as rendered. Every blur kernel is centred on its pixel, so
no effect shifts the image content against those labels.

The pipeline works in linear light, because optics and sensors act on light and
not on gamma-encoded values. The image is decoded from 8-bit sRGB once at the
start and encoded once at the end:

1. exposure and white balance: `lin *= 2**ev * (gain_r, 1, gain_b)`;
2. defocus. The thin-lens circle of confusion of a point at depth z, with the lens
   focused at z_f, is `c = A |z - z_f| / z * f / (z_f - f)` on the sensor, where
   `A = f / N`. Dividing by the pixel pitch `f / fx` gives the diameter in pixels,
   `c_px = f fx |z - z_f| / (N z (z_f - f))`. The blur kernel is a disk (the
   aperture's image) of that diameter. Pixels are split into depth layers, at most
   `defocus_layers` blur radii on each side of the focus plane. Each layer's
   premultiplied colour and coverage are blurred with its own disk. The layers are
   then composited back to front, so an in-focus hand keeps sharp edges in front
   of a blurred background. Background pixels (depth 0) sit at
   `background_depth_m`. The focus distance is the median depth of the hand plus
   the drawn offset (`focus_distance_m`). With the default rig (30 degrees over
   256 px, so fx = 478) and f = 50 mm, the implied sensor is 27 mm wide, close to
   full frame. At f/1.8, focused at 0.5 m, the background at 2 m blurs with a
   radius of about 11 px and the hand's +-5 cm of depth with about 1.5 px;
3. motion blur: a centred line kernel of the drawn length and angle. The angle is
   measured from +x (right) towards +y (down);
4. sensor noise: shot noise `Poisson(lin * peak) / peak`, where `peak` is the
   photon count at white, then Gaussian read noise of std `sigma`. Above 50
   expected photons (POISSON_EXACT_BELOW), the Poisson law is replaced by the
   normal of the same mean and variance. Both noises come from
   `np.random.default_rng(noise_seed)`. A seed such as
   `[seed, pose_id, view_id, stream]` keeps the noise reproducible without storing
   it;
5. clipping and 8-bit sRGB encoding, then a JPEG round trip through Pillow
   (4:2:0 chroma subsampling, as cameras store it).

With every effect on at its costliest (f/1.8, 6 px motion blur, 200 photons at
white, JPEG), a 256 x 256 image takes about 30 ms on one busy core.
`python -m synth.camera_effects` measures it.

Settings (`CameraEffectsConfig`). A range is drawn uniformly unless noted. Every
effect can be switched off: set its probability to 0, or make its range neutral.

| setting | default | meaning |
| --- | --- | --- |
| `enabled` | `True` | `False`: no effect at all; the draws are `{"enabled": False}` |
| `defocus_prob` | `0.1` | probability that a sample is defocused |
| `f_number` | `(2.8, 11.0)` | f-number N, drawn log-uniformly (uniform in stops) |
| `focal_length_mm` | `50.0` | lens focal length f; aperture diameter A = f / N |
| `focus_jitter_m` | `0.03` | focus distance = median hand depth + U(-j, j) |
| `background_depth_m` | `2.0` | depth of background pixels (depth 0) for defocus |
| `defocus_layers` | `8` | most blur radii per side of the focus plane (cost against radius quantisation) |
| `motion_blur_prob` | `0.05` | probability of motion blur |
| `motion_blur_px` | `(0.5, 1.5)` | length of the line kernel in pixels; its angle is U(0, 180) degrees |
| `noise_poisson_peak` | `(20000.0, 100000.0)` | photons at white (linear 1.0), drawn log-uniformly; `None`: no shot noise |
| `noise_gaussian_sigma` | `(0.0, 0.002)` | read-noise std on linear [0, 1] intensities; `(0, 0)`: none |
| `white_balance` | `(0.95, 1.05)` | gains of R and of B relative to G, each drawn; `(1, 1)`: none |
| `exposure_ev` | `(-0.2, 0.2)` | exposure change in stops (x 2**ev); `(0, 0)`: none |
| `jpeg_prob` | `0.5` | probability of a JPEG round trip |
| `jpeg_quality` | `(85, 95)` | JPEG quality, an integer drawn with both ends included |

The defaults are a camera model at the strength real photographs show, not an augmentation: measured
on the training crops (benchmarks/camera_stats.py), their noise sits at the real frames' level (a median
0.0006 of full scale) and JPEG blockiness inside the real range, and a real-photo hand detector finds
the hand as often as on clean renders (benchmarks/realism.py). The previous, stronger defaults (200
photons at white, JPEG down to quality 40, blur on a third of the samples) halved the detector's rate;
that strength now belongs to training-time augmentation (`camera` of the loaders' augmentation
settings, pretrain.image_ops.camera_augment), drawn anew every epoch instead of baked in.
"""
from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, fields

import numpy as np
from PIL import Image
from scipy.signal import fftconvolve

from .skin import srgb_to_linear

# Each decoded 8-bit code, and the linear values halfway (in sRGB) between neighbouring codes. Encoding by
# comparing against these thresholds rounds exactly as round(linear_to_srgb(x) * 255), and it maps every
# decoded code back to itself.
_SRGB8_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
_THRESHOLDS = srgb_to_linear((np.arange(255) + 0.5) / 255.0).astype(np.float32)
# A binary search over the thresholds is slow, so encoding looks up a grid of 2**12 cells instead. The
# scaling by a power of 2 is exact, and the cells are narrower than the closest two thresholds (3e-4
# apart, near black), so each cell holds at most one threshold: the code at the cell's start, plus one
# when the value passes that threshold.
_GRID = 4096
_CODE_AT_CELL = np.searchsorted(_THRESHOLDS, np.arange(_GRID) / _GRID, side="right")
_NEXT_THRESHOLD = np.append(_THRESHOLDS, np.float32(np.inf))
# Below this many expected photons, shot noise is drawn from the Poisson law itself (skewness 1/sqrt(n) > 0.14)
POISSON_EXACT_BELOW = 50.0
# Finer blur radii than this (px) are not told apart, so a nearly flat scene does not use many layers.
MIN_RADIUS_STEP_PX = 0.25
# The settings each uniform draw of draw_effects stands for, in order. One number is drawn per entry whether
# or not its effect is on, so changing one setting never changes the draws of the others.
_DRAWS = ("defocus", "f_number", "focus_offset", "motion", "motion_length", "motion_angle",
          "poisson_peak", "gaussian_sigma", "gain_r", "gain_b", "exposure", "jpeg", "jpeg_quality")


# The defaults until the real-photo measurements (2026-12): a strong randomisation that halved a real-photo
# detector's rate when baked in. Kept for the `legacy` look and the 'strong' training-time augmentation.
FORMER_DEFAULTS = {"defocus_prob": 0.3, "f_number": [1.8, 8.0], "motion_blur_prob": 0.2, "motion_blur_px": [1.0, 6.0],
                   "noise_poisson_peak": [200.0, 2000.0], "noise_gaussian_sigma": [0.0, 0.02],
                   "white_balance": [0.9, 1.1], "exposure_ev": [-0.5, 0.5], "jpeg_prob": 0.5, "jpeg_quality": [40, 95]}


@dataclass(frozen=True)
class CameraEffectsConfig:
    """The distribution of camera effects. The module docstring has a table of every setting."""
    enabled: bool = True
    defocus_prob: float = 0.1
    f_number: tuple = (2.8, 11.0)
    focal_length_mm: float = 50.0
    focus_jitter_m: float = 0.03
    background_depth_m: float = 2.0
    defocus_layers: int = 8
    motion_blur_prob: float = 0.05
    motion_blur_px: tuple = (0.5, 1.5)
    noise_poisson_peak: tuple | None = (20000.0, 100000.0)
    noise_gaussian_sigma: tuple = (0.0, 0.002)
    white_balance: tuple = (0.95, 1.05)
    exposure_ev: tuple = (-0.2, 0.2)
    jpeg_prob: float = 0.5
    jpeg_quality: tuple = (85, 95)

    def __post_init__(self):
        checks = {
            "enabled": isinstance(self.enabled, bool),
            "defocus_prob": _is_probability(self.defocus_prob),
            "f_number": _is_range(self.f_number, low=0.0, strict=True),
            "focal_length_mm": _is_number(self.focal_length_mm) and self.focal_length_mm > 0,
            "focus_jitter_m": _is_number(self.focus_jitter_m) and self.focus_jitter_m >= 0,
            "background_depth_m": _is_number(self.background_depth_m)
            and self.background_depth_m * 1000.0 > self.focal_length_mm,
            "defocus_layers": _is_int(self.defocus_layers) and self.defocus_layers >= 1,
            "motion_blur_prob": _is_probability(self.motion_blur_prob),
            "motion_blur_px": _is_range(self.motion_blur_px, low=0.0),
            "noise_poisson_peak": self.noise_poisson_peak is None
            or _is_range(self.noise_poisson_peak, low=0.0, strict=True),
            "noise_gaussian_sigma": _is_range(self.noise_gaussian_sigma, low=0.0),
            "white_balance": _is_range(self.white_balance, low=0.0, strict=True),
            "exposure_ev": _is_range(self.exposure_ev),
            "jpeg_prob": _is_probability(self.jpeg_prob),
            "jpeg_quality": _is_range(self.jpeg_quality, low=1, high=100)
            and all(_is_int(q) for q in self.jpeg_quality),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid camera-effect setting(s): "
                             + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "CameraEffectsConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown camera-effect setting(s) {unknown}; settings: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_probability(p) -> bool:
    return _is_number(p) and 0.0 <= p <= 1.0


def _is_range(r, low=-math.inf, high=math.inf, strict=False) -> bool:
    """A (lo, hi) pair with lo <= hi inside [low, high] (lo > low when strict)."""
    if not isinstance(r, (tuple, list)) or len(r) != 2 or not all(_is_number(v) for v in r):
        return False
    lo, hi = r
    return (lo > low if strict else lo >= low) and lo <= hi <= high


def _lerp(bounds, u) -> float:
    return bounds[0] + (bounds[1] - bounds[0]) * u


def _log_lerp(bounds, u) -> float:
    return bounds[0] * (bounds[1] / bounds[0]) ** u


def draw_effects(cfg: CameraEffectsConfig, rng: np.random.Generator) -> dict:
    """One sample's effect parameters: plain JSON values rounded to 6 digits, with the parameters of the
    effects that are on. `apply_effects` needs nothing else (besides fx and the noise seed)."""
    if not cfg.enabled:
        return {"enabled": False}
    u = dict(zip(_DRAWS, rng.random(len(_DRAWS)).tolist()))
    lo_q, hi_q = cfg.jpeg_quality
    params = {
        "enabled": True,
        "exposure_ev": _lerp(cfg.exposure_ev, u["exposure"]),
        "white_balance": [_lerp(cfg.white_balance, u["gain_r"]), 1.0, _lerp(cfg.white_balance, u["gain_b"])],
        "noise_poisson_peak": None if cfg.noise_poisson_peak is None
        else _log_lerp(cfg.noise_poisson_peak, u["poisson_peak"]),
        "noise_gaussian_sigma": _lerp(cfg.noise_gaussian_sigma, u["gaussian_sigma"]),
        "defocus": u["defocus"] < cfg.defocus_prob,
        "motion_blur": u["motion"] < cfg.motion_blur_prob,
        "jpeg": u["jpeg"] < cfg.jpeg_prob,
    }
    if params["defocus"]:
        params.update(f_number=_log_lerp(cfg.f_number, u["f_number"]),
                      focus_offset_m=_lerp((-cfg.focus_jitter_m, cfg.focus_jitter_m), u["focus_offset"]),
                      focal_length_mm=cfg.focal_length_mm, background_depth_m=cfg.background_depth_m,
                      defocus_layers=cfg.defocus_layers)
    if params["motion_blur"]:
        params.update(motion_length_px=_lerp(cfg.motion_blur_px, u["motion_length"]),
                      motion_angle_deg=180.0 * u["motion_angle"])
    if params["jpeg"]:
        params["jpeg_quality"] = min(hi_q, lo_q + int(u["jpeg_quality"] * (hi_q - lo_q + 1)))
    return _rounded(params)


def _rounded(value):
    """Floats rounded to 6 digits, in nested lists and dicts too, so the annotation holds what is applied."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return round(float(value), 6) if isinstance(value, float) else value


def apply_effects(rgb: np.ndarray, depth: np.ndarray, params: dict, fx: float, noise_seed) -> np.ndarray:
    """The image (uint8 H x W x 3, sRGB) as the drawn camera `params` would record it.

    `depth` holds planar z in metres (0 = background) and `fx` is the focal length in pixels (K[0, 0]).
    `noise_seed` seeds the sensor noise: anything `np.random.default_rng` takes, such as an entropy list,
    except None (fresh entropy from the OS would make the pixels irreproducible).
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be a uint8 H x W x 3 array, got {rgb.dtype} {rgb.shape}")
    # decoding and encoding are exact inverses on 8-bit codes, so a disabled draw returns rgb unchanged
    return apply_effects_linear(_SRGB8_TO_LINEAR[rgb], depth, params, fx, noise_seed)


def apply_effects_linear(lin: np.ndarray, depth: np.ndarray, params: dict, fx: float, noise_seed) -> np.ndarray:
    """`apply_effects` on linear intensities (float H x W x 3, e.g. the renderer's own output, before any
    8-bit rounding): returns the uint8 sRGB image."""
    lin = np.asarray(lin, dtype=np.float32)
    depth = np.asarray(depth)
    if lin.ndim != 3 or lin.shape[2] != 3:
        raise ValueError(f"the linear image must be H x W x 3, got {lin.shape}")
    if depth.shape != lin.shape[:2]:
        raise ValueError(f"depth shape {depth.shape} does not match the image's {lin.shape[:2]}")
    if noise_seed is None:
        raise ValueError("noise_seed is None: give the sample's seed (e.g. [seed, pose_id, view_id, stream])")
    if not params["enabled"]:
        return encode_srgb8(lin)
    gains = np.float32(2.0 ** params["exposure_ev"]) * np.asarray(params["white_balance"], dtype=np.float32)
    lin = lin * gains
    if params["defocus"]:
        if not fx > 0:
            raise ValueError(f"fx must be a positive focal length in pixels, got {fx!r}")
        lin = defocus(lin, depth, focus_distance_m(depth, params), params["f_number"],
                      params["focal_length_mm"], fx, params["background_depth_m"], params["defocus_layers"])
    if params["motion_blur"]:
        lin = motion_blur(lin, params["motion_length_px"], params["motion_angle_deg"])
    lin = sensor_noise(lin, params["noise_poisson_peak"], params["noise_gaussian_sigma"],
                       np.random.default_rng(noise_seed))
    out = encode_srgb8(lin)
    if params["jpeg"]:
        out = jpeg_round_trip(out, params["jpeg_quality"])
    return out


def encode_srgb8(lin: np.ndarray) -> np.ndarray:
    """Linear intensities as 8-bit sRGB codes, clipped to [0, 1] and rounded to the nearest code."""
    lin = np.asarray(lin, dtype=np.float32)
    code = _CODE_AT_CELL[np.clip(lin * _GRID, 0, _GRID - 1).astype(np.intp)]
    return (code + (lin >= _NEXT_THRESHOLD[code])).astype(np.uint8)


def focus_distance_m(depth: np.ndarray, params: dict) -> float:
    """Where the lens focuses: the hand's median depth plus the drawn offset. With no hand pixels, the
    lens focuses at the background."""
    hand = depth[depth > 0]
    centre = float(np.median(hand)) if hand.size else params["background_depth_m"]
    return centre + params["focus_offset_m"]


def circle_of_confusion_px(z, focus_m: float, f_number: float, focal_length_mm: float, fx: float) -> np.ndarray:
    """The thin-lens circle of confusion in pixels (a diameter). It is signed: positive behind the focus
    plane, negative in front of it, so that it orders the depths."""
    f = focal_length_mm / 1000.0
    if not focus_m > f:
        raise ValueError(f"focus distance {focus_m!r} m must exceed the focal length {f} m")
    z = np.asarray(z, dtype=np.float64)
    return (f / f_number) * fx * (z - focus_m) / (z * (focus_m - f))


def defocus(lin: np.ndarray, depth: np.ndarray, focus_m: float, f_number: float, focal_length_mm: float,
            fx: float, background_depth_m: float, max_layers: int) -> np.ndarray:
    """Depth-dependent lens blur of a linear image by back-to-front compositing of blurred depth layers."""
    z = np.where(depth > 0, depth, background_depth_m)
    radius = 0.5 * circle_of_confusion_px(z, focus_m, f_number, focal_length_mm, fx)
    r_max = float(np.abs(radius).max())
    if r_max == 0.0:
        return lin
    # levels spaced evenly up to the largest radius, so the most blurred depth gets its radius exactly
    step = r_max / min(max_layers, math.ceil(r_max / MIN_RADIUS_STEP_PX))
    level = np.rint(radius / step).astype(np.intp)
    lowest = int(level.min())
    present = np.flatnonzero(np.bincount((level - lowest).ravel())) + lowest
    acc = np.zeros(lin.shape[:2] + (4,), dtype=np.float32)
    for q in present[::-1]:  # largest signed radius = farthest first
        _composite_layer(acc, lin, level == q, abs(int(q)) * step)
    # dividing by the total coverage renormalises blurs cut at the image border
    return acc[..., :3] / np.maximum(acc[..., 3:], np.float32(1e-6))


def _composite_layer(acc: np.ndarray, lin: np.ndarray, mask: np.ndarray, radius: float) -> None:
    """Blur the pixels of `mask` (premultiplied colour and coverage) with a disk of `radius` px and lay them
    over `acc`, in place. Only the mask's bounding box plus the blur's reach is processed, because the
    blurred layer is 0 everywhere else."""
    box = tuple(_span(np.flatnonzero(mask.any(axis=1 - axis)), int(math.ceil(radius)) + 1)
                for axis in (0, 1))
    alpha = mask[box].astype(np.float32)[..., None]
    layer = np.concatenate([lin[box] * alpha, alpha], axis=2)
    if radius > 0.0:
        layer = fftconvolve(layer, disk_kernel(radius)[..., None], mode="same", axes=(0, 1))
    acc[box] = layer + (1.0 - layer[..., 3:]) * acc[box]


def _span(indices: np.ndarray, reach: int) -> slice:
    return slice(max(int(indices[0]) - reach, 0), int(indices[-1]) + reach + 1)


def disk_kernel(radius: float) -> np.ndarray:
    """A pillbox of `radius` px, normalised to sum 1; edge pixels weighted by their approximate coverage."""
    half = int(math.ceil(radius)) + 1
    y, x = np.mgrid[-half:half + 1, -half:half + 1]
    k = np.clip(radius + 0.5 - np.hypot(x, y), 0.0, 1.0)
    return (k / k.sum()).astype(np.float32)


def motion_kernel(length_px: float, angle_deg: float) -> np.ndarray:
    """A centred line segment `length_px` long at `angle_deg` (from +x towards +y, i.e. down), normalised to
    sum 1. The segment is cut into pieces of at most 1/4 px whose midpoints are splatted bilinearly."""
    half = int(math.ceil(length_px / 2.0)) + 1
    n = max(1, math.ceil(4 * length_px))
    t = (np.arange(n) + 0.5) * (length_px / n) - length_px / 2.0
    a = math.radians(angle_deg)
    x, y = half + t * math.cos(a), half + t * math.sin(a)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    frac_x, frac_y = x - x0, y - y0
    k = np.zeros((2 * half + 1, 2 * half + 1))
    for dy, wy in ((0, 1 - frac_y), (1, frac_y)):
        for dx, wx in ((0, 1 - frac_x), (1, frac_x)):
            np.add.at(k, (y0 + dy, x0 + dx), wy * wx)
    return (k / k.sum()).astype(np.float32)


def motion_blur(lin: np.ndarray, length_px: float, angle_deg: float) -> np.ndarray:
    """Linear motion blur of an H x W x C image. Edge padding keeps the borders as bright as the image."""
    k = motion_kernel(length_px, angle_deg)
    half = k.shape[0] // 2
    padded = np.pad(lin, ((half, half), (half, half), (0, 0)), mode="edge")
    return fftconvolve(padded, k[..., None], mode="valid", axes=(0, 1))


def sensor_noise(lin: np.ndarray, peak: float | None, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Shot noise (Poisson photon counts with `peak` photons at white), then Gaussian read noise of std
    `sigma`, on linear intensities. Light above white keeps its photons, so the clipping at encoding
    saturates it as a sensor would."""
    if peak is not None:
        lin = shot_noise_photons(np.clip(lin, 0.0, None) * np.float32(peak), rng) / np.float32(peak)
    if sigma > 0:
        lin = lin + np.float32(sigma) * rng.standard_normal(lin.shape, dtype=np.float32)
    return lin


def shot_noise_photons(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Photon counts around `expected`. They are exact Poisson draws below POISSON_EXACT_BELOW, where the
    counts' skew and their floor at 0 show. Above it, the draws come from the normal of the same mean and
    variance, which numpy draws several times faster than Poisson counts."""
    counts = expected + np.sqrt(expected) * rng.standard_normal(expected.shape, dtype=np.float32)
    low = expected < POISSON_EXACT_BELOW
    counts[low] = rng.poisson(expected[low])
    return counts


def jpeg_round_trip(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(quality), subsampling="4:2:0")
    return np.array(Image.open(buf).convert("RGB"))


def _demo_scene(size: int = 256) -> tuple:
    """A hand-sized ellipse 0.45-0.60 m away, tilted in depth, over a textured background."""
    y, x = np.mgrid[0:size, 0:size] / size
    hand = ((x - 0.5) / 0.25) ** 2 + ((y - 0.5) / 0.38) ** 2 < 1.0
    depth = np.where(hand, 0.45 + 0.15 * y, 0.0).astype(np.float32)
    texture = (np.sin(40 * x) * np.sin(37 * y) * 0.4 + 0.5)[..., None] * np.array([0.6, 0.8, 1.0])
    skin = np.array([0.85, 0.62, 0.5])
    rgb = np.where(hand[..., None], skin, texture)
    return (rgb * 255).round().astype(np.uint8), depth


if __name__ == "__main__":
    import time

    image, depth_map = _demo_scene()
    everything = {"enabled": True, "exposure_ev": 0.3, "white_balance": [1.05, 1.0, 0.95],
                  "defocus": True, "f_number": 1.8, "focus_offset_m": 0.0, "focal_length_mm": 50.0,
                  "background_depth_m": 2.0, "defocus_layers": 8,
                  "motion_blur": True, "motion_length_px": 6.0, "motion_angle_deg": 30.0,
                  "noise_poisson_peak": 200.0, "noise_gaussian_sigma": 0.02, "jpeg": True, "jpeg_quality": 40}
    fx_px = 128 / math.tan(math.radians(15.0))  # the default rig: 30 degrees over 256 px
    wall, cpu = [], []
    for i in range(30):
        t0, c0 = time.perf_counter(), time.process_time()
        apply_effects(image, depth_map, everything, fx_px, [0, i])
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(f"all effects on a 256 x 256 image (f/1.8, 6 px motion blur, 200 photons at white, JPEG 40), "
          f"median of {len(wall)} runs: {1000 * np.median(wall):.1f} ms wall, {1000 * np.median(cpu):.1f} ms CPU")
