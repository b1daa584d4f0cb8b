"""A small z-buffer triangle rasterizer in numpy (no GPU, no OpenGL).

Pixel centres are at integer coordinates, as in the project's OpenCV
convention: pixel (row i, column j) covers u in [j - 0.5, j + 0.5). A pixel is
covered when its centre is inside the projected triangle (top-left ties are not
special-cased; shared edges may be claimed by both triangles, which changes no
silhouette).
"""
from __future__ import annotations

import numpy as np


def project(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """uv = (K @ X) / z for camera-frame points (..., 3)."""
    p = points_cam @ np.asarray(K, float).T
    return p[..., :2] / p[..., 2:3]


def depth_at_pixels(points_cam: np.ndarray, faces: np.ndarray, K: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """`rasterize`'s depth buffer at a few pixels (P, 2) of (column, row), inf where empty: the same
    arithmetic, over every face at once for those pixel centres only (a keypoint's pixel needs no image)."""
    pixels = np.asarray(pixels, dtype=np.int64).reshape(-1, 2)
    faces = np.asarray(faces)
    out = np.full(len(pixels), np.inf)
    if not len(pixels) or not len(faces):
        return out
    uv = project(points_cam, K)
    z = points_cam[:, 2]
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    p0, p1, p2 = uv[a], uv[b], uv[c]
    area = (p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (p2[:, 0] - p0[:, 0])
    keep = (np.minimum(np.minimum(z[a], z[b]), z[c]) > 0) & (np.abs(area) >= 1e-12)
    a, b, c, p0, p1, p2, area = a[keep], b[keep], c[keep], p0[keep], p1[keep], p2[keep], area[keep]
    jj, ii = pixels[:, 0:1].astype(np.float64), pixels[:, 1:2].astype(np.float64)     # (P, 1) against (F,)
    w0 = ((p1[:, 0] - jj) * (p2[:, 1] - ii) - (p1[:, 1] - ii) * (p2[:, 0] - jj)) / area
    w1 = ((p2[:, 0] - jj) * (p0[:, 1] - ii) - (p2[:, 1] - ii) * (p0[:, 0] - jj)) / area
    w2 = 1.0 - w0 - w1
    inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        zz = 1.0 / (w0 / z[a] + w1 / z[b] + w2 / z[c])
    return np.where(inside, zz, np.inf).min(axis=1, initial=np.inf)


def rasterize(points_cam: np.ndarray, faces: np.ndarray, K: np.ndarray, size: tuple):
    """Depth buffer and face-id buffer of a mesh given in camera frame.

    Returns (depth (H, W) with inf where empty, face_id (H, W) with -1 where empty,
    barycentrics (H, W, 3)). Depth is planar z, interpolated perspective-correctly.
    """
    h, w = size
    uv = project(points_cam, K)
    z = points_cam[:, 2]
    depth = np.full((h, w), np.inf)
    face_id = -np.ones((h, w), dtype=np.int64)
    bary = np.zeros((h, w, 3))
    for fi, (a, b, c) in enumerate(np.asarray(faces)):
        if min(z[a], z[b], z[c]) <= 0:
            continue
        p0, p1, p2 = uv[a], uv[b], uv[c]
        area = (p1[0] - p0[0]) * (p2[1] - p0[1]) - (p1[1] - p0[1]) * (p2[0] - p0[0])
        if abs(area) < 1e-12:
            continue
        lo = np.floor(np.minimum(np.minimum(p0, p1), p2)).astype(int)
        hi = np.ceil(np.maximum(np.maximum(p0, p1), p2)).astype(int)
        j0, i0 = max(lo[0], 0), max(lo[1], 0)
        j1, i1 = min(hi[0], w - 1), min(hi[1], h - 1)
        if j0 > j1 or i0 > i1:
            continue
        jj, ii = np.meshgrid(np.arange(j0, j1 + 1), np.arange(i0, i1 + 1))
        w0 = ((p1[0] - jj) * (p2[1] - ii) - (p1[1] - ii) * (p2[0] - jj)) / area
        w1 = ((p2[0] - jj) * (p0[1] - ii) - (p2[1] - ii) * (p0[0] - jj)) / area
        w2 = 1.0 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        if not inside.any():
            continue
        # perspective-correct depth: 1/z is affine in screen space
        inv_z = w0 / z[a] + w1 / z[b] + w2 / z[c]
        zz = 1.0 / inv_z
        region = depth[i0:i1 + 1, j0:j1 + 1]
        win = inside & (zz < region)
        if not win.any():
            continue
        region[win] = zz[win]
        face_id[i0:i1 + 1, j0:j1 + 1][win] = fi
        pc = np.stack([w0 / z[a], w1 / z[b], w2 / z[c]], axis=-1) * zz[..., None]
        bary[i0:i1 + 1, j0:j1 + 1][win] = pc[win]
    return depth, face_id, bary


def shade(points_cam: np.ndarray, faces: np.ndarray, K: np.ndarray, size: tuple,
          color=(0.87, 0.66, 0.55), background=(1.0, 1.0, 1.0)) -> np.ndarray:
    """A Lambert-shaded RGB uint8 picture with smooth vertex normals and a head light."""
    from synth.meshops import vertex_normals

    depth, face_id, bary = rasterize(points_cam, faces, K, size)
    normals = vertex_normals(points_cam, faces)
    img = np.empty(size + (3,))
    img[:] = background
    hit = face_id >= 0
    n = np.einsum("pk,pkc->pc", bary[hit], normals[faces[face_id[hit]]])
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    light = np.array([0.3, -0.4, -1.0])
    light /= np.linalg.norm(light)
    lambert = np.abs(n @ light)  # two-sided: the open wrist shows its inside
    img[hit] = np.asarray(color) * (0.25 + 0.75 * lambert[:, None])
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)
