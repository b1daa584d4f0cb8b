"""Pinhole cameras in the OpenCV convention, and their Blender equivalents.

OpenCV: x right, y down, z forward; X_cam = R @ X_world + t; uv = (K @ X_cam) / z
with the centre of the top-left pixel at (0, 0), so a centred principal point is
cx = (W - 1) / 2. Blender cameras look along their local -Z with +Y up, and put
the principal point at the image's middle plus a shift in units of the larger
image side.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# OpenCV camera axes expressed in Blender camera axes (flip y and z)
CV_TO_BLENDER = np.diag([1.0, -1.0, -1.0])


def look_at(eye, target, up) -> tuple:
    """World->camera (R, t) of a camera at `eye` looking at `target`.

    `up` is a world direction that appears pointing up in the image (negative
    image y); it must not be parallel to the viewing direction.
    """
    eye, target, up = (np.asarray(v, float) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)  # image right = down x forward = forward x up
    n = np.linalg.norm(x)
    if n < 1e-9:
        raise ValueError(f"up vector {up} is parallel to the viewing direction {z}")
    x /= n
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return R, -R @ eye


def intrinsics(width: int, height: int, fov_deg: float) -> np.ndarray:
    """K for a horizontal field of view and a principal point at the image centre."""
    fx = (width / 2.0) / np.tan(np.radians(fov_deg) / 2.0)
    return np.array([[fx, 0.0, (width - 1) / 2.0], [0.0, fx, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def project(points_world: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Pixel coordinates of world points (..., 3)."""
    cam = points_world @ R.T + t
    p = cam @ K.T
    return p[..., :2] / p[..., 2:3]


@dataclass
class BlenderCamera:
    location: np.ndarray        # world position
    rotation_matrix: np.ndarray  # camera-to-world rotation of the Blender camera object
    lens_mm: float
    sensor_width_mm: float
    shift_x: float
    shift_y: float
    resolution: tuple           # (width, height)

    @property
    def rotation_euler_xyz(self) -> np.ndarray:
        """Blender's default 'XYZ' Euler angles of rotation_matrix (R = Rz @ Ry @ Rx)."""
        from scipy.spatial.transform import Rotation

        return Rotation.from_matrix(self.rotation_matrix).as_euler("xyz")


def to_blender(K: np.ndarray, R: np.ndarray, t: np.ndarray, width: int, height: int,
               sensor_width_mm: float = 36.0) -> BlenderCamera:
    """The Blender camera (sensor fit AUTO, square pixels) that images like (K, R, t)."""
    if abs(K[0, 0] - K[1, 1]) > 1e-9 * K[0, 0] or abs(K[0, 1]) > 1e-12:
        raise ValueError("Blender cameras need square pixels and no skew (fx == fy, K[0,1] == 0)")
    side = max(width, height)
    # AUTO sensor fit: the sensor width spans the larger image side
    lens = K[0, 0] * sensor_width_mm / side
    shift_x = -(K[0, 2] - (width - 1) / 2.0) / side
    shift_y = (K[1, 2] - (height - 1) / 2.0) / side
    location = -R.T @ t
    rot = R.T @ CV_TO_BLENDER
    return BlenderCamera(location, rot, lens, sensor_width_mm, shift_x, shift_y, (width, height))


def from_blender(cam: BlenderCamera) -> tuple:
    """(K, R, t) of a Blender camera: the inverse of to_blender."""
    width, height = cam.resolution
    side = max(width, height)
    f = cam.lens_mm * side / cam.sensor_width_mm
    cx = (width - 1) / 2.0 - cam.shift_x * side
    cy = (height - 1) / 2.0 + cam.shift_y * side
    K = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    R = (cam.rotation_matrix @ CV_TO_BLENDER).T
    t = -R @ np.asarray(cam.location)
    return K, R, t
