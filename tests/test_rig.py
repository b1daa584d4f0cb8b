"""synth.rig: the 216-view hemisphere rig of the complement dataset and its coverage."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from synth import camera, rig
from synth.hand_model import HandModel
from synth.poses import complement_poses, derive_axes


@pytest.fixture(scope="module")
def hm():
    return HandModel()


@pytest.fixture(scope="module")
def rest(hm):
    return hm.joint_regressor @ hm.template


@pytest.fixture(scope="module")
def anchors(rest):
    # computed here from the documented definitions, not with rig_anchors
    wrist = rest[0]
    centre = rest[[0, 5, 9, 13, 17]].mean(axis=0)
    pole = (wrist - centre) / np.linalg.norm(wrist - centre)
    palm = derive_axes(rest).palm_normal  # points out of the palm
    return wrist, centre, pole, palm


@pytest.fixture(scope="module")
def views(rest):
    return rig.build_views(rest)


def _directions(views, wrist):
    d = np.stack([v.location for v in views]) - wrist
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def test_216_views_with_stable_ids(views):
    assert len(views) == rig.NUM_VIEWS == 216
    for v in views:
        m, k = divmod(v.view_id, 36)
        assert 0 <= m < 6
        assert v.latitude == pytest.approx(np.radians(15.0 * m), abs=1e-12)
        assert v.longitude == pytest.approx(np.radians(10.0 * k), abs=1e-12)
    assert [v.view_id for v in views] == list(range(216))
    assert len({tuple(np.round(v.location, 9)) for v in views}) == 216


def test_views_are_proper_cameras_at_radius_from_wrist(views, anchors):
    wrist = anchors[0]
    cfg = rig.RigConfig()
    for v in views:
        np.testing.assert_allclose(v.R @ v.R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(v.R) == pytest.approx(1.0, abs=1e-12)
        assert np.linalg.norm(v.location - wrist) == pytest.approx(cfg.radius, rel=1e-12)
        np.testing.assert_allclose(v.K, camera.intrinsics(cfg.image_size, cfg.image_size, cfg.fov_deg))


def test_optical_axis_passes_through_palm_centre(views, anchors):
    centre = anchors[1]
    for v in views:
        np.testing.assert_allclose(camera.project(centre, v.K, v.R, v.t), v.K[:2, 2], atol=1e-9)
        assert (v.R @ centre + v.t)[2] > 0  # in front, not behind


def test_latitudes_from_equator_plane(views, anchors):
    wrist, _, pole, _ = anchors
    d = _directions(views, wrist)
    lat = np.degrees(np.arcsin(np.clip(d @ pole, -1, 1)))
    expected = np.repeat(np.arange(6) * 15.0, 36)
    np.testing.assert_allclose(lat, expected, atol=1e-9)


def test_longitudes_10_degrees_apart_same_sense(views, anchors):
    wrist, _, pole, _ = anchors
    d = _directions(views, wrist)
    eq = d - np.outer(d @ pole, pole)
    eq /= np.linalg.norm(eq, axis=1, keepdims=True)
    eq = eq.reshape(6, 36, 3)
    for m in range(6):
        nxt = np.roll(eq[m], -1, axis=0)  # k -> k + 1, and 35 -> 0
        cos = np.einsum("ki,ki->k", eq[m], nxt)
        np.testing.assert_allclose(np.degrees(np.arccos(np.clip(cos, -1, 1))), 10.0, atol=1e-6)
        sense = np.einsum("ki,i->k", np.cross(eq[m], nxt), pole)
        assert (sense > 0).all() or (sense < 0).all()
        # a meridian keeps its azimuth at every latitude
        np.testing.assert_allclose(eq[m], eq[0], atol=1e-12)


def test_longitude_zero_is_on_the_palm_side(views, anchors):
    wrist, _, pole, palm = anchors
    d = _directions(views, wrist)[:36]
    palm_eq = palm - pole * (palm @ pole)
    palm_eq /= np.linalg.norm(palm_eq)
    eq0 = d[0] - pole * (d[0] @ pole)
    np.testing.assert_allclose(eq0 / np.linalg.norm(eq0), palm_eq, atol=1e-12)
    assert np.argmax(d @ palm) == 0


def test_default_pole_points_from_palm_centre_to_wrist(rest, anchors, views):
    wrist, centre, pole, _ = anchors
    explicit = rig.build_views(rest, rig.RigConfig(pole=tuple(3.0 * (wrist - centre))))
    for a, b in zip(views, explicit):
        np.testing.assert_allclose(a.R, b.R, atol=1e-12)
        np.testing.assert_allclose(a.t, b.t, atol=1e-12)
    # the highest latitude ring lies on the wrist (forearm) side of the equator
    d = _directions(views, wrist)
    assert (d[5 * 36:] @ (wrist - centre) > 0).all()
    # the reversed pole gives the mirrored hemisphere
    flipped = rig.build_views(rest, rig.RigConfig(pole=tuple(centre - wrist)))
    df = _directions(flipped, wrist)
    np.testing.assert_allclose(df[36:] @ pole, -(d[36:] @ pole), atol=1e-12)


def test_custom_pole_sets_latitudes(rest, anchors):
    wrist = anchors[0]
    custom = np.array([0.3, 0.2, 1.0])
    views = rig.build_views(rest, rig.RigConfig(pole=tuple(custom)))
    d = _directions(views, wrist)
    lat = np.degrees(np.arcsin(d @ (custom / np.linalg.norm(custom))))
    np.testing.assert_allclose(lat, np.repeat(np.arange(6) * 15.0, 36), atol=1e-9)


@pytest.mark.parametrize("scale", [1.0, -2.5, 1e-3])
def test_pole_parallel_to_palm_normal_is_rejected(rest, anchors, scale):
    palm = anchors[3]
    with pytest.raises(ValueError):
        rig.build_views(rest, rig.RigConfig(pole=tuple(scale * palm)))


def test_images_are_rolled_so_the_pole_points_down(views, anchors):
    centre, pole = anchors[1], anchors[2]
    for v in views:
        u0, v0 = v.K[:2, 2]
        u, w = camera.project(centre + 0.01 * pole, v.K, v.R, v.t)
        assert u == pytest.approx(u0, abs=1e-6)
        assert w > v0 + 1.0


# ----------------------------------------------------------------------- coverage


def _posed(hm, poses):
    with torch.no_grad():
        return hm(torch.tensor(np.asarray(poses), dtype=torch.float32))[0].numpy().astype(np.float64)


def _brute_force(verts, views, size):
    margins = np.empty((len(verts), len(views)))
    fills = np.empty_like(margins)
    for i, vv in enumerate(verts):
        for j, view in enumerate(views):
            uv = camera.project(vv, view.K, view.R, view.t)
            lo, hi = uv.min(axis=0), uv.max(axis=0)
            margins[i, j] = min(lo[0] + 0.5, lo[1] + 0.5, size - 0.5 - hi[0], size - 0.5 - hi[1]) / size
            fills[i, j] = max(hi[0] - lo[0], hi[1] - lo[1]) / size
    return margins, fills


@pytest.mark.parametrize("radius", [rig.RigConfig().radius, 0.3])
def test_coverage_hull_shortcut_equals_brute_force(hm, rest, radius):
    poses = complement_poses(model=hm)[[0, 31, 7, 900, 1519]]
    verts = _posed(hm, poses)
    cfg = rig.RigConfig(radius=radius)
    views = rig.build_views(rest, cfg)
    margins, fills = rig.coverage(verts, views, cfg.image_size)
    bm, bf = _brute_force(verts, views, cfg.image_size)
    np.testing.assert_allclose(margins, bm, atol=1e-9, rtol=0)
    np.testing.assert_allclose(fills, bf, atol=1e-9, rtol=0)
    if radius < 0.4:  # close cameras crop the hand: margins go negative
        assert margins.min() < 0


def test_coverage_margin_of_a_hand_computed_point_set():
    # two points imaged at known pixels: u in {10, 200}, v in {30, 100} on a 256 image
    K = camera.intrinsics(256, 256, 60.0)
    view = rig.View(0, 0.0, 0.0, K, np.eye(3), np.zeros(3))
    uv = np.array([[10.0, 30.0], [200.0, 100.0], [100.0, 60.0], [50.0, 90.0]])
    z = np.array([1.0, 2.0, 1.5, 3.0])
    pts = np.column_stack([(uv - K[:2, 2]) / K[0, 0] * z[:, None], z])
    pts = np.vstack([pts, pts.mean(axis=0) + [0, 0, 0.1]])  # a hull needs a volume
    margins, fills = rig.coverage(pts[None], [view], 256)
    assert margins[0, 0] == pytest.approx(min(10.5, 30.5, 255.5 - 200, 255.5 - 100) / 256, abs=1e-12)
    assert fills[0, 0] == pytest.approx(190.0 / 256, abs=1e-12)


def test_coverage_rejects_points_behind_a_camera():
    K = camera.intrinsics(64, 64, 60.0)
    view = rig.View(0, 0.0, 0.0, K, np.eye(3), np.zeros(3))
    pts = np.array([[0, 0, 1.0], [0.1, 0, 1.2], [0, 0.1, 1.1], [0.05, 0.05, -0.2]])
    with pytest.raises(ValueError):
        rig.coverage(pts[None], [view], 64)


@pytest.mark.slow
def test_every_pose_view_pair_keeps_the_margin(hm, rest):
    poses = complement_poses(model=hm)
    assert poses.shape == (1520, 48)
    verts = _posed(hm, poses)
    cfg = rig.RigConfig()
    margins, fills = rig.coverage(verts, rig.build_views(rest, cfg), cfg.image_size)
    assert margins.shape == fills.shape == (1520, 216)
    worst = np.unravel_index(np.argmin(margins), margins.shape)
    assert margins.min() >= rig.MARGIN, f"pose {worst[0]} view {worst[1]}: margin {margins.min():.4f}"
    assert np.median(fills) >= 0.35
    assert fills.max() <= 1.0 - 2 * rig.MARGIN + 1e-12
