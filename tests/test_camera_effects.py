"""synth.camera_effects: exposure, white balance, thin-lens defocus, motion blur, sensor noise and JPEG,
each checked against an independent computation (the sRGB formulas of synth.skin, the thin-lens circle of
confusion by hand, the moments of a line segment, Poisson + Gaussian variance)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import brentq

from synth.camera_effects import (CameraEffectsConfig, apply_effects, circle_of_confusion_px, draw_effects,
                                  focus_distance_m, motion_blur)
from synth.skin import linear_to_srgb, srgb_to_linear

OFF = {"enabled": True, "exposure_ev": 0.0, "white_balance": [1.0, 1.0, 1.0], "defocus": False,
       "motion_blur": False, "noise_poisson_peak": None, "noise_gaussian_sigma": 0.0, "jpeg": False}
NOTHING = CameraEffectsConfig(defocus_prob=0.0, motion_blur_prob=0.0, noise_poisson_peak=None,
                              noise_gaussian_sigma=(0.0, 0.0), white_balance=(1.0, 1.0), exposure_ev=(0.0, 0.0),
                              jpeg_prob=0.0)


def _params(**changes) -> dict:
    return {**OFF, **changes}


def _linear(codes: np.ndarray) -> np.ndarray:
    return srgb_to_linear(np.asarray(codes, dtype=np.float64) / 255.0)


def _scene(h=64, w=80, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    depth = np.where(rng.random((h, w)) < 0.5, rng.uniform(0.4, 0.7, (h, w)), 0.0).astype(np.float32)
    return rgb, depth


def _grey(code: int, h=32, w=32) -> np.ndarray:
    return np.full((h, w, 3), code, dtype=np.uint8)


# --- identity and determinism -------------------------------------------------------------------------

def test_every_effect_off_returns_the_input_exactly():
    rgb, depth = _scene()
    every_code = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    assert np.array_equal(apply_effects(rgb, depth, OFF, 500.0, 0), rgb)
    assert np.array_equal(apply_effects(every_code, np.zeros((16, 16)), OFF, 500.0, 0), every_code)
    assert np.array_equal(apply_effects(rgb, depth, {"enabled": False}, 500.0, 0), rgb)
    drawn = draw_effects(NOTHING, np.random.default_rng(3))
    assert not (drawn["defocus"] or drawn["motion_blur"] or drawn["jpeg"])
    assert np.array_equal(apply_effects(rgb, depth, drawn, 500.0, 0), rgb)


def _everything() -> dict:
    return _params(exposure_ev=0.2, white_balance=[1.05, 1.0, 0.95], defocus=True, f_number=2.0,
                   focus_offset_m=0.01, focal_length_mm=50.0, background_depth_m=2.0, defocus_layers=8,
                   motion_blur=True, motion_length_px=4.0, motion_angle_deg=20.0, noise_poisson_peak=400.0,
                   noise_gaussian_sigma=0.01, jpeg=True, jpeg_quality=80)


def test_same_parameters_and_noise_seed_give_identical_pixels():
    rgb, depth = _scene()
    rgb0, depth0 = rgb.copy(), depth.copy()
    a = apply_effects(rgb, depth, _everything(), 500.0, [0, 12, 34])
    b = apply_effects(rgb, depth, _everything(), 500.0, [0, 12, 34])
    c = apply_effects(rgb, depth, _everything(), 500.0, [0, 12, 35])
    assert a.dtype == np.uint8 and a.shape == rgb.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # the inputs (the labels among them: depth) are left as they were
    assert np.array_equal(rgb, rgb0) and np.array_equal(depth, depth0)


def test_default_draws_are_all_accepted_by_apply_effects():
    rgb, depth = _scene()
    for s in range(20):
        params = draw_effects(CameraEffectsConfig(), np.random.default_rng(s))
        params = json.loads(json.dumps(params))  # as the annotation stores them
        out = apply_effects(rgb, depth, params, 480.0, [s])
        assert out.dtype == np.uint8 and out.shape == rgb.shape


# --- exposure and white balance -------------------------------------------------------------------------

@pytest.mark.parametrize("ev, factor", [(1.0, 2.0), (-1.0, 0.5), (0.5, math.sqrt(2.0))])
def test_exposure_multiplies_linear_intensity_by_two_to_the_ev(ev, factor):
    rgb = np.concatenate([_grey(c, 8, 8) for c in (60, 100, 128, 150)], axis=1)
    out = apply_effects(rgb, np.zeros(rgb.shape[:2]), _params(exposure_ev=ev), 500.0, 0)
    # the nearest 8-bit sRGB code to the scaled linear value, by the float64 formulas of synth.skin
    assert np.array_equal(out, np.rint(linear_to_srgb(factor * _linear(rgb)) * 255.0))


def test_white_balance_scales_linear_red_and_blue_by_the_drawn_gains():
    cfg = CameraEffectsConfig(defocus_prob=0.0, motion_blur_prob=0.0, noise_poisson_peak=None,
                              noise_gaussian_sigma=(0.0, 0.0), exposure_ev=(0.0, 0.0), jpeg_prob=0.0,
                              white_balance=(0.8, 1.2))
    params = draw_effects(cfg, np.random.default_rng(11))
    gain_r, gain_g, gain_b = params["white_balance"]
    assert gain_g == 1.0 and 0.8 <= gain_r <= 1.2 and 0.8 <= gain_b <= 1.2 and gain_r != gain_b
    rgb = np.concatenate([_grey(c, 8, 8) for c in (60, 120, 180)], axis=1)
    out = apply_effects(rgb, np.zeros(rgb.shape[:2]), params, 500.0, 0)
    expected = np.rint(linear_to_srgb(_linear(rgb) * np.array([gain_r, 1.0, gain_b])) * 255.0)
    assert np.array_equal(out, expected)
    assert np.array_equal(out[..., 1], rgb[..., 1]) and not np.array_equal(out, rgb)


# --- defocus --------------------------------------------------------------------------------------------

def test_circle_of_confusion_is_the_thin_lens_formula():
    # f = 50 mm, N = 2 (A = 25 mm), focus at 0.5 m, point at 2 m: c = A |z - zf| / z * f / (zf - f)
    # = 25 mm * 0.75 * 50 / 450 = 2.0833 mm on the sensor; the pixel pitch is f / fx = 0.1 mm -> 20.83 px
    assert circle_of_confusion_px(2.0, 0.5, 2.0, 50.0, 500.0) == pytest.approx(20.8333, rel=1e-4)
    assert circle_of_confusion_px(0.5, 0.5, 2.0, 50.0, 500.0) == 0.0
    assert circle_of_confusion_px(0.3, 0.5, 2.0, 50.0, 500.0) < 0  # in front of the focus plane
    with pytest.raises(ValueError, match="focal length"):
        circle_of_confusion_px(1.0, 0.04, 2.0, 50.0, 500.0)


def _disk_edge_width(radius: float) -> float:
    """10-90% width of a step edge blurred by a disk: twice the offset holding 90% of the disk's area."""
    def share_left_of(d):
        return 0.5 + (d * math.sqrt(radius ** 2 - d ** 2) + radius ** 2 * math.asin(d / radius)) / (
            math.pi * radius ** 2)
    return 2.0 * brentq(lambda d: share_left_of(d) - 0.9, 0.0, radius)


def _edge_width(profile: np.ndarray) -> float:
    """10-90% width of a rising edge (linear intensities 0 -> 1), crossings interpolated between pixels."""
    def crossing(level):
        i = int(np.argmax(profile >= level))
        return i - 1 + (level - profile[i - 1]) / (profile[i] - profile[i - 1])
    return crossing(0.9) - crossing(0.1)


@pytest.mark.parametrize("f_number", [2.0, 4.0])
def test_defocus_keeps_the_focus_plane_sharp_and_blurs_the_background_by_its_circle_of_confusion(f_number):
    size, fx = 128, 500.0
    rgb = np.zeros((size, size, 3), dtype=np.uint8)
    rgb[:, size // 2:] = 255  # a step edge in every row
    depth = np.zeros((size, size), dtype=np.float32)
    depth[:size // 2] = 0.5  # top: the "hand", in focus; bottom: background, 2 m away
    params = _params(defocus=True, f_number=f_number, focus_offset_m=0.0, focal_length_mm=50.0,
                     background_depth_m=2.0, defocus_layers=8)
    assert focus_distance_m(depth, params) == 0.5
    out = apply_effects(rgb, depth, params, fx, 0)
    assert np.array_equal(out[:size // 2], rgb[:size // 2])  # in focus: untouched, however near the blur
    # by hand: c = (50 mm / N) * |2 - 0.5| / 2 * 50 / 450 on the sensor, over a pitch of 0.1 mm
    coc_px = (50.0 / f_number) * 0.75 * 50.0 / 450.0 / 0.1
    measured = _edge_width(_linear(out[100, :, 1]))
    assert measured == pytest.approx(_disk_edge_width(coc_px / 2.0), rel=0.05)
    assert _edge_width(_linear(out[30, :, 1])) < 1.0


def test_focus_distance_is_the_median_hand_depth_plus_the_offset():
    depth = np.array([[0.0, 0.4, 0.5], [0.6, 0.0, 0.0]], dtype=np.float32)
    params = {"focus_offset_m": 0.02, "background_depth_m": 2.0}
    assert focus_distance_m(depth, params) == pytest.approx(0.52)
    assert focus_distance_m(np.zeros((3, 3)), params) == pytest.approx(2.02)


# --- motion blur ----------------------------------------------------------------------------------------

def _moments(img: np.ndarray) -> tuple:
    """(total, centroid (x, y), major-axis angle in degrees [0, 180), major and minor variance)."""
    y, x = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    total = img.sum()
    cx, cy = (img * x).sum() / total, (img * y).sum() / total
    weights = np.clip(img, 0.0, None).ravel()  # FFT round-off leaves values of about -1e-8
    cov = np.cov(np.stack([x.ravel() - cx, y.ravel() - cy]), aweights=weights, bias=True)
    values, vectors = np.linalg.eigh(cov)
    major = vectors[:, 1]
    return total, (cx, cy), math.degrees(math.atan2(major[1], major[0])) % 180.0, values[1], values[0]


@pytest.mark.parametrize("length, angle", [(6.0, 30.0), (6.0, 0.0), (4.0, 90.0), (5.0, 135.0), (2.0, 60.0)])
def test_motion_blur_spreads_a_point_into_a_centred_line_of_the_drawn_length_and_direction(length, angle):
    img = np.zeros((31, 31, 1), dtype=np.float32)
    img[15, 15] = 1.0
    total, (cx, cy), major_deg, var_major, var_minor = _moments(motion_blur(img, length, angle)[..., 0])
    assert total == pytest.approx(1.0, abs=1e-5)  # intensity is conserved
    assert (cx, cy) == pytest.approx((15.0, 15.0), abs=1e-3)  # centred: the image does not move
    assert min(abs(major_deg - angle), 180.0 - abs(major_deg - angle)) < 2.0
    # a uniform segment of length L has variance L^2 / 12 along it; putting it on the pixel grid (bilinear
    # weights f, 1 - f) adds f (1 - f) <= 1/4 in any direction
    assert 0.98 * length ** 2 / 12.0 <= var_major <= length ** 2 / 12.0 + 0.25
    assert var_minor <= 0.25


def test_motion_blur_through_the_pipeline_conserves_linear_light_and_keeps_flat_areas_flat():
    rgb = np.zeros((33, 33, 3), dtype=np.uint8)
    rgb[16, 16] = 255
    params = _params(motion_blur=True, motion_length_px=5.0, motion_angle_deg=45.0)
    out = apply_effects(rgb, np.zeros((33, 33)), params, 500.0, 0)
    total, _, major_deg, _, _ = _moments(_linear(out[..., 0]))
    assert total == pytest.approx(1.0, rel=0.02)
    assert major_deg == pytest.approx(45.0, abs=3.0)
    flat = _grey(90)
    assert np.array_equal(apply_effects(flat, np.zeros((32, 32)), params, 500.0, 0), flat)


# --- sensor noise ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("peak, sigma", [(500.0, 0.0), (None, 0.02), (300.0, 0.01)])
def test_noise_variance_matches_poisson_plus_gaussian_theory(peak, sigma):
    codes = (100, 200)
    rgb = np.concatenate([_grey(c, 128, 128) for c in codes], axis=1)
    out = apply_effects(rgb, np.zeros(rgb.shape[:2]), _params(noise_poisson_peak=peak, noise_gaussian_sigma=sigma),
                        500.0, [7, 1])
    for half, code in enumerate(codes):
        values = _linear(out[:, 128 * half:128 * (half + 1)])
        mean = _linear(code)
        quantisation = ((_linear(code + 1) - _linear(code - 1)) / 2.0) ** 2 / 12.0
        theory = (mean / peak if peak else 0.0) + sigma ** 2 + quantisation
        assert values.mean() == pytest.approx(mean, abs=4 * math.sqrt(theory / values.size) + 1e-3 * mean)
        assert values.var() == pytest.approx(theory, rel=0.05)


# --- JPEG -----------------------------------------------------------------------------------------------

def test_jpeg_round_trip_changes_the_image_less_at_higher_quality():
    y, x = np.mgrid[0:96, 0:96] / 96.0
    smooth = np.stack([x, y, 0.5 + 0.4 * np.sin(12 * x) * np.cos(9 * y)], axis=2)
    rgb = np.clip((smooth + np.random.default_rng(0).normal(0, 0.03, smooth.shape)) * 255, 0, 255).astype(np.uint8)
    errors = []
    for quality in (30, 60, 95):
        out = apply_effects(rgb, np.zeros((96, 96)), _params(jpeg=True, jpeg_quality=quality), 500.0, 0)
        assert out.dtype == np.uint8 and out.shape == rgb.shape and not np.array_equal(out, rgb)
        errors.append(np.mean((out.astype(float) - rgb) ** 2))
    assert errors[0] > errors[1] > errors[2] > 0


# --- draws and configuration ----------------------------------------------------------------------------

def _all_floats_rounded(value) -> bool:
    if isinstance(value, dict):
        return all(_all_floats_rounded(v) for v in value.values())
    if isinstance(value, list):
        return all(_all_floats_rounded(v) for v in value)
    return not isinstance(value, float) or value == round(value, 6)


def test_draw_effects_is_deterministic_json_and_rounded():
    cfg = CameraEffectsConfig(defocus_prob=1.0, motion_blur_prob=1.0, jpeg_prob=1.0)
    a = draw_effects(cfg, np.random.default_rng(42))
    assert a == draw_effects(cfg, np.random.default_rng(42))
    assert a != draw_effects(cfg, np.random.default_rng(43))
    assert json.loads(json.dumps(a)) == a and _all_floats_rounded(a)
    inside = lambda x, r: r[0] <= x <= r[1]  # noqa: E731
    assert inside(a["f_number"], cfg.f_number) and abs(a["focus_offset_m"]) <= cfg.focus_jitter_m
    assert inside(a["motion_length_px"], cfg.motion_blur_px) and 0.0 <= a["motion_angle_deg"] < 180.0
    assert inside(a["noise_poisson_peak"], cfg.noise_poisson_peak)
    assert inside(a["noise_gaussian_sigma"], cfg.noise_gaussian_sigma)
    assert isinstance(a["jpeg_quality"], int) and inside(a["jpeg_quality"], cfg.jpeg_quality)
    assert draw_effects(CameraEffectsConfig(enabled=False), np.random.default_rng(42)) == {"enabled": False}


def _frequencies(cfg: CameraEffectsConfig, n: int) -> dict:
    draws = [draw_effects(cfg, np.random.default_rng([9, i])) for i in range(n)]
    return {key: np.mean([d[key] for d in draws]) for key in ("defocus", "motion_blur", "jpeg")}


def test_draw_effects_respects_the_probabilities():
    assert _frequencies(CameraEffectsConfig(defocus_prob=0.0, motion_blur_prob=0.0, jpeg_prob=0.0), 300) == \
        {"defocus": 0.0, "motion_blur": 0.0, "jpeg": 0.0}
    assert _frequencies(CameraEffectsConfig(defocus_prob=1.0, motion_blur_prob=1.0, jpeg_prob=1.0), 300) == \
        {"defocus": 1.0, "motion_blur": 1.0, "jpeg": 1.0}
    cfg = CameraEffectsConfig(defocus_prob=0.3, motion_blur_prob=0.2, jpeg_prob=0.5)
    freq = _frequencies(cfg, 2000)  # within 4 standard deviations
    for key, p in (("defocus", 0.3), ("motion_blur", 0.2), ("jpeg", 0.5)):
        assert abs(freq[key] - p) < 4 * math.sqrt(p * (1 - p) / 2000), key


def test_switching_one_effect_off_leaves_the_other_draws_unchanged():
    on = draw_effects(CameraEffectsConfig(defocus_prob=1.0, motion_blur_prob=1.0), np.random.default_rng(5))
    off = draw_effects(CameraEffectsConfig(defocus_prob=0.0, motion_blur_prob=1.0), np.random.default_rng(5))
    assert on["defocus"] and not off["defocus"] and "f_number" not in off
    assert {k: v for k, v in on.items() if k in off and k != "defocus"} == \
        {k: v for k, v in off.items() if k != "defocus"}


def test_jpeg_quality_draws_cover_both_ends_of_the_range():
    cfg = CameraEffectsConfig(jpeg_prob=1.0, jpeg_quality=(40, 42))
    assert {draw_effects(cfg, np.random.default_rng(i))["jpeg_quality"] for i in range(200)} == {40, 41, 42}


def test_config_validation_names_the_bad_fields():
    with pytest.raises(ValueError, match="defocus_prob=1.5"):
        CameraEffectsConfig(defocus_prob=1.5)
    with pytest.raises(ValueError) as err:
        CameraEffectsConfig(f_number=(8.0, 1.8), jpeg_quality=(0, 101), motion_blur_px=(-1.0, 2.0))
    message = str(err.value)
    assert "f_number" in message and "jpeg_quality" in message and "motion_blur_px" in message
    assert "defocus_prob" not in message
    for bad in ({"white_balance": (0.0, 1.1)}, {"noise_poisson_peak": (0.0, 10.0)}, {"defocus_layers": 0},
                {"jpeg_quality": (40.5, 90)}, {"enabled": 1}, {"exposure_ev": (float("nan"), 0.0)}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            CameraEffectsConfig(**bad)
    CameraEffectsConfig(noise_poisson_peak=None)  # no shot noise is allowed


def test_to_dict_and_from_dict_round_trip_and_unknown_keys_are_refused():
    cfg = CameraEffectsConfig(f_number=(2.0, 4.0), noise_poisson_peak=None, jpeg_quality=(60, 90))
    d = json.loads(json.dumps(cfg.to_dict()))
    assert CameraEffectsConfig.from_dict(d) == cfg
    assert CameraEffectsConfig.from_dict({}) == CameraEffectsConfig()
    with pytest.raises(ValueError, match="defocus_probability"):
        CameraEffectsConfig.from_dict({"defocus_probability": 0.5})


def test_bad_images_are_refused_with_a_clear_error():
    rgb, depth = _scene()
    with pytest.raises(ValueError, match="uint8"):
        apply_effects(rgb.astype(np.float32), depth, OFF, 500.0, 0)
    with pytest.raises(ValueError, match="depth shape"):
        apply_effects(rgb, depth[:-1], OFF, 500.0, 0)
    with pytest.raises(ValueError, match="fx"):
        apply_effects(rgb, depth, _everything(), 0.0, 0)
    with pytest.raises(ValueError, match="noise_seed"):
        apply_effects(rgb, depth, _everything(), 500.0, None)
