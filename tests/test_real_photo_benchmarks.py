"""The real-photo benchmarks' figures on hand-computed cases: the detector's disagreement with our labels
(benchmarks/realism_metrics.py), the image statistics renders and photos are compared by
(benchmarks/image_stats.py), the constant prediction of the sim-to-real benchmark, and the point rescaling
both share."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from benchmarks import image_stats as st
from benchmarks import realism_metrics as rm
from benchmarks.realism import rescale_points, setting
from benchmarks.sim_to_real import constant_figures


def straight_hand() -> np.ndarray:
    """21 keypoints: the wrist at the origin, five straight fingers of 4 points each, 10 px apart, going up."""
    pts = np.zeros((21, 2))
    for f in range(5):
        for j in range(4):
            pts[1 + 4 * f + j] = (-20.0 + 10.0 * f, -10.0 * (j + 1))
    return pts


def test_errors_are_shares_of_the_label_box_diagonal():
    labels = straight_hand()                       # box 40 x 40: diagonal 40 sqrt 2
    det = labels.copy()
    det[8] += (3.0, 4.0)                           # 5 px off
    e = rm.keypoint_errors(det, labels)
    assert e[8] == pytest.approx(5.0 / (40.0 * np.sqrt(2.0)))
    assert np.count_nonzero(e) == 1


def test_signed_offset_is_positive_beyond_a_tip_and_negative_towards_the_wrist():
    labels = straight_hand()
    det = labels.copy()
    det[8] += (0.0, -4.0)     # index tip 4 px further up: along its bone (pointing up), beyond our tip
    det[6] += (0.0, 2.0)      # index PIP 2 px down: towards the wrist
    det[12] += (3.0, 0.0)     # middle tip 3 px sideways: nothing along the finger
    s = rm.signed_along_finger(det, labels)
    diag = 40.0 * np.sqrt(2.0)
    assert s[8] == pytest.approx(4.0 / diag) and s[6] == pytest.approx(-2.0 / diag)
    assert s[12] == pytest.approx(0.0, abs=1e-12)
    wrist = labels.copy()
    wrist[0] += (0.0, 5.0)    # the wrist moved away from the middle MCP: out through the wrist, positive
    assert rm.signed_along_finger(wrist, labels)[0] == pytest.approx(5.0 / diag)


def test_summary_counts_detections_and_takes_percentiles_of_per_sample_means():
    errs = [np.full(21, v) for v in (0.1, 0.2, 0.3, 0.4)]
    s = rm.summary([True, False, True, True, True], errs)
    assert s["samples"] == 5 and s["detected"] == 4 and s["detection_rate"] == pytest.approx(0.8)
    assert s["median"] == pytest.approx(0.25) and s["p90"] == pytest.approx(0.37)
    empty = rm.summary([False, False], [])
    assert empty["detection_rate"] == 0.0 and np.isnan(empty["median"])


def test_rescaling_keeps_pixel_centres():
    # a 2x upscale: the centre of pixel 0 (covering [-0.5, 0.5]) lands between new pixels 0 and 1
    assert rescale_points([[0.0, 0.0]], 2.0).tolist() == [[0.5, 0.5]]
    assert rescale_points([[-0.5, 127.5]], 2.0).tolist() == [[-0.5, 255.5]]   # the image's edges stay edges


def test_set_values_are_json_or_strings():
    assert setting("occluder_prob=0.1") == ("occluder_prob", 0.1)
    assert setting("hdri_strength=[1, 2]") == ("hdri_strength", [1, 2])
    assert setting("camera_effects=off") == ("camera_effects", "off")


def test_noise_estimate_reads_back_gaussian_noise_and_ignores_edges():
    rng = np.random.default_rng(0)
    grey = np.full((128, 128, 3), 128.0)
    grey[:, 64:] = 200.0                                       # one strong edge: not noise
    noisy = np.clip(grey + rng.normal(0.0, 4.0, (128, 128, 1)), 0, 255).round().astype(np.uint8)
    # the same noise in all three channels: luma noise = 4 / 255 = 0.0157 (weights sum to 1)
    assert st.noise_sigma(noisy) == pytest.approx(4.0 / 255.0, rel=0.1)
    assert st.noise_sigma(grey.astype(np.uint8)) == 0.0


def test_sharpness_falls_with_blur_and_blockiness_rises_with_jpeg():
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 256, (64, 64, 1)).repeat(3, axis=2).astype(np.uint8)
    blurred = np.asarray(Image.fromarray(texture).resize((16, 16)).resize((64, 64), Image.BILINEAR))
    assert st.sharpness(blurred) < 0.5 * st.sharpness(texture)
    yy, xx = np.mgrid[0:96, 0:96]
    wave = 128 + 60 * np.sin(2 * np.pi * xx / 13.0) * np.cos(2 * np.pi * yy / 17.0)   # no 8-px period
    smooth = np.repeat(wave[..., None], 3, axis=2).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(smooth).save(buf, format="JPEG", quality=5)
    jpeg = np.asarray(Image.open(buf).convert("RGB"))
    assert 0.9 < st.blockiness(smooth) < 1.1
    assert st.blockiness(jpeg) > 1.3
    # a step exactly at an 8-px block boundary and nowhere else: all the change sits across the boundary
    steps = np.zeros((8, 32, 3), np.uint8)
    steps[:, 8:] = 100
    assert np.isinf(st.blockiness(steps)) or st.blockiness(steps) > 1e6


def test_hand_luma_reads_the_bones_not_the_background():
    img = np.zeros((64, 64, 3), np.uint8)
    img[10:60, 20:44] = 255                          # a white hand on black
    kp = straight_hand() + (32.0, 55.0)              # wrist (32, 55), fingers up to y = 15, x in 12 .. 52
    kp[1:5, 0] = 24.0                                # pull the two outer fingers onto the white area
    kp[17:21, 0] = 40.0
    assert st.hand_luma(img, kp) == pytest.approx(1.0)
    assert st.crop_luma(img) == pytest.approx(50 * 24 / 64 ** 2)


def test_constant_prediction_of_labelled_keypoints_by_hand():
    gt = np.zeros((2, 21, 2))
    gt[0, :, 0], gt[1, :, 0] = 10.0, 20.0             # the mean is x = 15: every keypoint 5 px off
    labelled = np.ones((2, 21), bool)
    assert constant_figures(gt, labelled)["mean_px"] == pytest.approx(5.0)
    gt[1, 3] = (1000.0, 1000.0)                       # an unlabelled keypoint changes nothing
    labelled[1, 3] = False
    c = constant_figures(gt, labelled)
    assert c["mean_px"] == pytest.approx((20 * 5.0 + 0.0) / 21)   # keypoint 3 has one sample: its own value


def test_real_hands_are_cut_square_around_labelled_keypoints_and_unlabelled_ones_count_nowhere(tmp_path):
    from test_loaders_coco_hand import LEFT_W, UNLABELLED, write_plain

    from benchmarks.realism import REAL_BOX, real_items, score
    from pretrain.coco_hand import find_coco_json, load_hand, parse_coco_hand

    coco = write_plain(tmp_path / "coco")            # non-square images, a left hand with unlabelled keypoints
    work = tmp_path / "work"
    work.mkdir()
    items = real_items(coco, work, resolution=32, size=64, count=0)
    records = parse_coco_hand(find_coco_json(coco)).records
    assert len(items) == len(records)
    left = next(i for i, r in enumerate(records) if r.is_left)
    it, rec = items[left], records[left]
    assert Image.open(it["path"]).size == (64, 64)
    lab = np.asarray(it["labelled"])
    assert not lab[list(UNLABELLED)].any() and lab.sum() == 21 - len(UNLABELLED)
    # the labelled keypoints' box is centred in the square and its larger side is 1 / REAL_BOX of it
    uv = np.asarray(it["labels"])[lab]
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    assert (lo + hi) / 2 == pytest.approx([31.5, 31.5], abs=1e-6)
    assert (hi - lo).max() == pytest.approx(64 / REAL_BOX, rel=1e-6)
    # mirrored: the left hand's labelled x order is reversed against the file's (x' = W - 1 - x)
    _, kp = load_hand(rec)
    assert kp[lab, 0] == pytest.approx(LEFT_W - 1 - rec.keypoints[lab, 0])
    assert np.argsort(np.asarray(it["labels"])[lab, 0]).tolist() == np.argsort(kp[lab, 0]).tolist()
    # a detection that agrees on every labelled keypoint scores 0 whatever it says of the others
    det = np.asarray(it["labels"]).copy()
    det[~lab] = (1000.0, -1000.0)
    s = score([{**it, "detected": True, "landmarks": det.tolist()}])
    assert s["median"] == 0.0 and s["detection_rate"] == 1.0


def test_coco_and_render_items_of_one_index_draw_from_different_streams(tmp_path):
    from test_loaders_coco_hand import write_plain

    from pretrain.coco_hand import CocoHand2D
    from pretrain.data2d import Augment2D, augment_transform

    coco = CocoHand2D(write_plain(tmp_path / "coco"), input_size=32, augment=Augment2D(), seed=5)
    plain = CocoHand2D(write_plain(tmp_path / "coco"), input_size=32)
    render_rng = np.random.default_rng(np.random.SeedSequence([5, 0, 0]))
    A_render, _ = augment_transform(Augment2D(), render_rng, 32)
    kp0 = plain[0]["keypoints_2d"].numpy().astype(np.float64)
    expected_if_shared = kp0 @ A_render[:2, :2].T + A_render[:2, 2]
    lab = plain[0]["visibility"].numpy()
    assert not np.allclose(coco[0]["keypoints_2d"].numpy()[lab], expected_if_shared[lab], atol=1e-3)
