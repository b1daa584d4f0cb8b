"""The camera rig of the complement dataset: 216 views on a hemisphere around the hand.

Views: longitude k * pi/18 (k = 0..35) x latitude m * pi/12 (m = 0..5); view id
= m * 36 + k. The sphere is centred at the wrist end (the wrist keypoint of the
rest pose) and every camera looks at the palm centre (mean of the wrist and the
four long fingers' MCP keypoints). The pole of the hemisphere is a setting; the
default points from the palm centre through the wrist (the forearm side, which
holds the first-person views). Longitude 0 lies on the palm's side. Images are
rolled so that the pole points down (fingers up).

Default radius and field of view were fitted with `fit_radius` so that for all
1520 x 216 pose-view pairs of OpenHand (mean shape) every vertex lies inside
the image with a margin of MARGIN of its size; tests/test_rig.py checks every pair.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull

from .camera import intrinsics, look_at

NUM_LONGITUDES = 36
NUM_LATITUDES = 6
NUM_VIEWS = NUM_LONGITUDES * NUM_LATITUDES  # 216
MARGIN = 0.04


@dataclass(frozen=True)
class RigConfig:
    radius: float = 0.52         # m, from the wrist end
    fov_deg: float = 30.0        # horizontal = vertical (square images)
    image_size: int = 256
    pole: tuple | None = None    # None: palm centre -> wrist


@dataclass
class View:
    view_id: int
    longitude: float
    latitude: float
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray

    @property
    def location(self) -> np.ndarray:
        return -self.R.T @ self.t


def rig_anchors(rest_keypoints: np.ndarray) -> tuple:
    """(wrist end, palm centre, palm normal) from rest-pose keypoints (21, 3), FreiHAND order."""
    k = np.asarray(rest_keypoints, dtype=np.float64)
    wrist = k[0]
    centre = k[[0, 5, 9, 13, 17]].mean(axis=0)
    palm = np.cross(k[5] - wrist, k[17] - wrist)
    return wrist, centre, palm / np.linalg.norm(palm)


def build_views(rest_keypoints: np.ndarray, cfg: RigConfig = RigConfig()) -> list:
    wrist, centre, palm = rig_anchors(rest_keypoints)
    pole = np.asarray(cfg.pole, float) if cfg.pole is not None else wrist - centre
    pole = pole / np.linalg.norm(pole)
    e1 = palm - pole * (palm @ pole)
    if np.linalg.norm(e1) < 1e-6:
        raise ValueError(f"rig pole {tuple(pole)} is parallel to the palm normal; choose another pole")
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(pole, e1)
    K = intrinsics(cfg.image_size, cfg.image_size, cfg.fov_deg)
    views = []
    for m in range(NUM_LATITUDES):
        lat = m * np.pi / 12
        for k in range(NUM_LONGITUDES):
            lon = k * np.pi / 18
            direction = np.cos(lat) * (np.cos(lon) * e1 + np.sin(lon) * e2) + np.sin(lat) * pole
            eye = wrist + cfg.radius * direction
            R, t = look_at(eye, centre, -pole)
            views.append(View(m * NUM_LONGITUDES + k, lon, lat, K, R, t))
    return views


def _hull_points(verts: np.ndarray) -> np.ndarray:
    # the extremes of a perspective projection's u and v (linear-fractional
    # functions) over a point set lie on the convex hull's vertices
    return verts[ConvexHull(verts).vertices]


def coverage(posed_vertices: np.ndarray, views: list, image_size: int) -> tuple:
    """Per (pose, view): smallest margin to the image border (fraction of the image
    size, negative when outside) and fill (bbox extent / image size, larger side)."""
    R = np.stack([v.R for v in views])
    t = np.stack([v.t for v in views])
    K = views[0].K
    margins = np.empty((len(posed_vertices), len(views)))
    fills = np.empty_like(margins)
    lo_edge, hi_edge = -0.5, image_size - 0.5  # pixel-centre convention: the image spans these
    for i, verts in enumerate(posed_vertices):
        pts = _hull_points(np.asarray(verts, dtype=np.float64))
        cam = np.einsum("vij,pj->vpi", R, pts) + t[:, None, :]
        if (cam[..., 2] <= 0).any():
            raise ValueError(f"pose {i}: a vertex is behind a camera; the rig radius is too small")
        uv = cam[..., :2] / cam[..., 2:3] * K[0, 0] + K[:2, 2]
        lo, hi = uv.min(axis=1), uv.max(axis=1)
        margins[i] = np.minimum((lo - lo_edge).min(axis=1), (hi_edge - hi).min(axis=1)) / image_size
        fills[i] = (hi - lo).max(axis=1) / image_size
    return margins, fills


def fit_radius(posed_vertices: np.ndarray, rest_keypoints: np.ndarray, fov_deg: float,
               margin: float = MARGIN, image_size: int = 256) -> float:
    """Smallest radius (to 1 mm) at which every pose-view pair keeps `margin`."""
    lo, hi = 0.15, 2.0
    while hi - lo > 1e-3:
        mid = 0.5 * (lo + hi)
        cfg = RigConfig(radius=mid, fov_deg=fov_deg, image_size=image_size)
        try:
            ok = coverage(posed_vertices, build_views(rest_keypoints, cfg), image_size)[0].min() >= margin
        except ValueError:
            ok = False
        lo, hi = (lo, mid) if ok else (mid, hi)
    return hi
