"""synth.camera: look_at, intrinsics, project and the Blender camera conversion.

Conventions under test (DESIGN.md, "Conventions"): OpenCV camera frame (x right,
y down, z forward), uv = (K @ X) / z, the centre of the top-left pixel is (0, 0)
so a centred principal point is cx = (W - 1) / 2 and the image spans
[-0.5, W - 0.5] x [-0.5, H - 0.5].
"""
from __future__ import annotations

import numpy as np
import pytest

from synth import camera

RNG_SEED = 1234


def _random_camera(rng):
    eye = rng.normal(size=3) * 2.0
    target = rng.normal(size=3) * 0.3
    up = rng.normal(size=3)
    return eye, target, up


# --------------------------------------------------------------------------- look_at


@pytest.mark.parametrize("seed", range(10))
def test_look_at_is_a_proper_rotation_and_eye_maps_to_origin(seed):
    rng = np.random.default_rng(seed)
    eye, target, up = _random_camera(rng)
    R, t = camera.look_at(eye, target, up)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(R @ eye + t, np.zeros(3), atol=1e-12)
    # the target lies straight ahead, at its distance from the eye
    target_cam = R @ target + t
    np.testing.assert_allclose(target_cam[:2], 0.0, atol=1e-12)
    assert target_cam[2] == pytest.approx(np.linalg.norm(target - eye), rel=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_look_at_target_projects_to_principal_point(seed):
    rng = np.random.default_rng(seed)
    eye, target, up = _random_camera(rng)
    R, t = camera.look_at(eye, target, up)
    K = camera.intrinsics(320, 240, 50.0)
    np.testing.assert_allclose(camera.project(target, K, R, t), K[:2, 2], atol=1e-9)
    # `up` lies in the camera's y-z plane: a displacement along it stays on the
    # image column of the principal point (whichever way it points)
    assert (R @ up)[0] == pytest.approx(0.0, abs=1e-12)
    view = (target - eye) / np.linalg.norm(target - eye)
    up_perp = up - view * (up @ view)
    up_perp /= np.linalg.norm(up_perp)
    u, v = camera.project(target + 0.05 * up_perp, K, R, t)
    assert u == pytest.approx(K[0, 2], abs=1e-9)
    assert abs(v - K[1, 2]) > 1.0


@pytest.mark.parametrize("seed", range(5))
def test_look_at_up_appears_pointing_to_negative_v(seed):
    rng = np.random.default_rng(seed)
    eye, target, up = _random_camera(rng)
    R, t = camera.look_at(eye, target, up)
    K = camera.intrinsics(320, 240, 50.0)
    view = (target - eye) / np.linalg.norm(target - eye)
    up_perp = up - view * (up @ view)
    up_perp /= np.linalg.norm(up_perp)
    u, v = camera.project(target + 0.05 * up_perp, K, R, t)
    assert v < K[1, 2] - 1.0
    assert (R @ up)[1] < 0


def test_look_at_hand_computed_case():
    # camera at (0, 0, -5) looking at the origin with world +y up. OpenCV:
    # camera z (forward) = world +z, camera y (down) = world -y, and the
    # right-handed x = y cross z = (0, -1, 0) x (0, 0, 1) = world -x.
    R, t = camera.look_at([0, 0, -5], [0, 0, 0], [0, 1, 0])
    np.testing.assert_allclose(R, np.diag([-1.0, -1.0, 1.0]), atol=1e-15)
    np.testing.assert_allclose(t, [0, 0, 5], atol=1e-15)
    # a point above the target (world +y) is imaged above the centre (v < cy)
    K = camera.intrinsics(64, 64, 60.0)
    assert camera.project(np.array([0.0, 1.0, 0.0]), K, R, t)[1] < K[1, 2]


def test_look_at_rejects_up_parallel_to_view():
    with pytest.raises(ValueError):
        camera.look_at([0, 0, 0], [0, 0, 3], [0, 0, 1])
    with pytest.raises(ValueError):
        camera.look_at([0, 0, 0], [0, 0, 3], [0, 0, -2])


# ----------------------------------------------------------------------- intrinsics


@pytest.mark.parametrize("width,height,fov", [(256, 256, 30.0), (320, 240, 60.0), (240, 320, 45.0),
                                               (101, 57, 90.0)])
def test_intrinsics_principal_point_and_horizontal_fov(width, height, fov):
    K = camera.intrinsics(width, height, fov)
    assert K[0, 2] == (width - 1) / 2.0
    assert K[1, 2] == (height - 1) / 2.0
    assert K[0, 0] == K[1, 1]
    assert K[0, 1] == 0 and K[1, 0] == 0
    np.testing.assert_array_equal(K[2], [0, 0, 1])
    half = np.radians(fov) / 2
    R, t = np.eye(3), np.zeros(3)
    # points on the two edges of the horizontal field of view, at several depths
    for z in (0.5, 2.0, 7.0):
        right = np.array([np.tan(half) * z, 0.0, z])
        left = np.array([-np.tan(half) * z, 0.0, z])
        assert camera.project(right, K, R, t)[0] == pytest.approx(width - 0.5, abs=1e-9)
        assert camera.project(left, K, R, t)[0] == pytest.approx(-0.5, abs=1e-9)
    # square pixels: the vertical half-extent H/2 subtends atan(H/2 / fx)
    vfov_half = np.arctan((height / 2) / K[0, 0])
    top = np.array([0.0, -np.tan(vfov_half), 1.0])
    assert camera.project(top, K, R, t)[1] == pytest.approx(-0.5, abs=1e-9)


# -------------------------------------------------------------------------- project


def test_project_hand_computed_case():
    K = np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 40.0], [0.0, 0.0, 1.0]])
    R = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 deg about z
    t = np.array([0.0, 0.0, 2.0])
    # R @ (1, 2, 3) = (-2, 1, 3); + t = (-2, 1, 5); u = 100 * -2/5 + 50, v = 100 * 1/5 + 40
    np.testing.assert_allclose(camera.project(np.array([1.0, 2.0, 3.0]), K, R, t), [10.0, 60.0],
                               atol=1e-12)


def test_project_with_non_square_focal_and_batch_shape():
    K = np.array([[200.0, 0.0, 10.0], [0.0, 100.0, 20.0], [0.0, 0.0, 1.0]])
    R, t = np.eye(3), np.array([0.0, 0.0, 1.0])
    pts = np.array([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], [[-1.0, 2.0, 3.0], [2.0, -1.0, 1.0]]])
    uv = camera.project(pts, K, R, t)
    assert uv.shape == (2, 2, 2)
    expected = np.array([[[200 * 0.5 + 10, 100 * 0.5 + 20], [10, 20]],
                         [[200 * -0.25 + 10, 100 * 0.5 + 20], [200 * 1.0 + 10, 100 * -0.5 + 20]]])
    np.testing.assert_allclose(uv, expected, atol=1e-12)


# ------------------------------------------------------------ Blender conversion


def _random_pose(rng):
    eye, target, up = _random_camera(rng)
    return camera.look_at(eye, target, up)


@pytest.mark.parametrize("width,height,dcx,dcy", [(256, 256, 0.0, 0.0), (256, 256, 7.3, -4.1),
                                                   (320, 240, 12.5, -9.75), (240, 320, -3.0, 21.0),
                                                   (640, 100, 0.25, 0.5)])
def test_blender_round_trip(width, height, dcx, dcy):
    rng = np.random.default_rng(RNG_SEED + width + height)
    R, t = _random_pose(rng)
    K = camera.intrinsics(width, height, 37.0)
    K[0, 2] += dcx
    K[1, 2] += dcy
    cam = camera.to_blender(K, R, t, width, height)
    K2, R2, t2 = camera.from_blender(cam)
    np.testing.assert_allclose(K2, K, atol=1e-9)
    np.testing.assert_allclose(R2, R, atol=1e-9)
    np.testing.assert_allclose(t2, t, atol=1e-9)
    # the Blender camera sits at the eye and its rotation is a proper rotation
    np.testing.assert_allclose(cam.location, -R.T @ t, atol=1e-12)
    assert np.linalg.det(cam.rotation_matrix) == pytest.approx(1.0, abs=1e-12)
    # it looks along its local -Z: world view direction = R^T @ (0, 0, 1)
    np.testing.assert_allclose(cam.rotation_matrix @ [0, 0, -1], R.T @ [0, 0, 1], atol=1e-12)
    # ... with its local +Y being image up (camera -y)
    np.testing.assert_allclose(cam.rotation_matrix @ [0, 1, 0], R.T @ [0, -1, 0], atol=1e-12)


def test_to_blender_lens_from_fov_and_zero_shift_when_centred():
    # Blender, AUTO fit: the sensor width spans the larger side; the field of view
    # of that side is 2 atan(sensor / 2 / lens)
    for (w, h) in ((256, 256), (320, 240), (240, 320)):
        fov_large_side = 50.0
        f = (max(w, h) / 2) / np.tan(np.radians(fov_large_side) / 2)
        K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])
        cam = camera.to_blender(K, np.eye(3), np.zeros(3), w, h, sensor_width_mm=36.0)
        assert cam.lens_mm == pytest.approx(18.0 / np.tan(np.radians(25.0)), rel=1e-12)
        assert cam.shift_x == pytest.approx(0.0, abs=1e-15)
        assert cam.shift_y == pytest.approx(0.0, abs=1e-15)
        assert cam.resolution == (w, h)


def test_rotation_euler_xyz_recomposes_rotation_matrix():
    rng = np.random.default_rng(5)
    for _ in range(5):
        R, t = _random_pose(rng)
        cam = camera.to_blender(camera.intrinsics(64, 48, 40.0), R, t, 64, 48)
        ax, ay, az = cam.rotation_euler_xyz
        cx_, sx = np.cos(ax), np.sin(ax)
        cy_, sy = np.cos(ay), np.sin(ay)
        cz, sz = np.cos(az), np.sin(az)
        rx = np.array([[1, 0, 0], [0, cx_, -sx], [0, sx, cx_]])
        ry = np.array([[cy_, 0, sy], [0, 1, 0], [-sy, 0, cy_]])
        rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
        np.testing.assert_allclose(rz @ ry @ rx, cam.rotation_matrix, atol=1e-12)


def test_to_blender_rejects_non_square_pixels_and_skew():
    R, t = np.eye(3), np.zeros(3)
    K = np.array([[100.0, 0, 31.5], [0, 101.0, 31.5], [0, 0, 1]])
    with pytest.raises(ValueError):
        camera.to_blender(K, R, t, 64, 64)
    K = np.array([[100.0, 0.5, 31.5], [0, 100.0, 31.5], [0, 0, 1]])
    with pytest.raises(ValueError):
        camera.to_blender(K, R, t, 64, 64)


# --------------------------------------------------------- against Blender itself


@pytest.fixture(scope="module")
def bpy_modules():
    bpy = pytest.importorskip("bpy")
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Matrix, Vector

    return bpy, world_to_camera_view, Matrix, Vector


@pytest.mark.blender
@pytest.mark.slow
@pytest.mark.parametrize("width,height,dcx,dcy,fov", [
    (256, 256, 0.0, 0.0, 30.0),
    (256, 256, 9.5, -6.25, 45.0),
    (320, 240, 14.0, -11.5, 50.0),
    (240, 320, -7.0, 18.5, 40.0),
])
def test_blender_camera_projects_like_ours(bpy_modules, width, height, dcx, dcy, fov):
    bpy, world_to_camera_view, Matrix, Vector = bpy_modules
    rng = np.random.default_rng(width * 7 + height)
    target = np.array([0.1, -0.2, 0.3])
    eye = target + np.array([0.8, -1.5, 0.6])
    R, t = camera.look_at(eye, target, [0.2, 0.1, 1.0])
    K = camera.intrinsics(width, height, fov)
    K[0, 2] += dcx
    K[1, 2] += dcy
    bc = camera.to_blender(K, R, t, width, height)

    scene = bpy.context.scene
    data = bpy.data.cameras.new(f"cam_{width}x{height}_{dcx}")
    data.type = "PERSP"
    data.lens = bc.lens_mm
    data.sensor_width = bc.sensor_width_mm
    data.sensor_fit = "AUTO"
    data.shift_x = bc.shift_x
    data.shift_y = bc.shift_y
    obj = bpy.data.objects.new(data.name, data)
    scene.collection.objects.link(obj)
    world = np.eye(4)
    world[:3, :3] = bc.rotation_matrix
    world[:3, 3] = bc.location
    obj.matrix_world = Matrix(world.tolist())
    scene.camera = obj
    scene.render.resolution_x = width
    scene.render.resolution_y = height
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = 1.0
    scene.render.pixel_aspect_y = 1.0
    bpy.context.view_layer.update()

    # ~20 random points in front of the camera, spread over (and a bit beyond) the image
    n = 20
    uv_target = np.column_stack([rng.uniform(-0.2, 1.2, n) * width, rng.uniform(-0.2, 1.2, n) * height])
    depth = rng.uniform(0.5, 4.0, n)
    rays = np.column_stack([uv_target, np.ones(n)]) @ np.linalg.inv(K).T
    pts_cam = rays * depth[:, None]
    pts_world = (pts_cam - t) @ R  # R^T (X_cam - t)
    ours = camera.project(pts_world, K, R, t)
    np.testing.assert_allclose(ours, uv_target, atol=1e-9)  # sanity of the construction

    theirs = np.empty_like(ours)
    for i, p in enumerate(pts_world):
        ndc = world_to_camera_view(scene, obj, Vector(p.tolist()))
        assert ndc.z == pytest.approx(depth[i], rel=1e-5)
        theirs[i] = (ndc.x * width - 0.5, (1.0 - ndc.y) * height - 0.5)
    np.testing.assert_allclose(theirs, ours, atol=1e-3)
    # and the image corners of Blender's frame are our pixel-edge corners
    corners = np.array([[-0.5, -0.5], [width - 0.5, height - 0.5]])
    c_world = ((np.column_stack([corners, np.ones(2)]) @ np.linalg.inv(K).T) * 2.0 - t) @ R
    ndc = [world_to_camera_view(scene, obj, Vector(p.tolist())) for p in c_world]
    np.testing.assert_allclose([[ndc[0].x, ndc[0].y], [ndc[1].x, ndc[1].y]], [[0, 1], [1, 0]], atol=1e-5)
