"""Random objects between the camera and the hand: the occlusions real hand images are full of.

Per sample, with probability `occluder_prob`, 1 .. `occluder_max` objects are
drawn (synth.scene.draw_occluders calls `draw`). Each is aimed at a
random keypoint of the hand: its centre lies on the camera ray through that
keypoint at U(0.55, 0.9) of the keypoint's depth, moved sideways by up to 0.7
of its own size. So that it covers the hand partly rather than wholly, an
object whose image (its largest half-extent seen at its depth) would be wider
than MAX_IMAGE_SHARE of the hand's keypoint spread in the image is shrunk to it.

| kind | shape (unit mesh scaled by `size`) | size (m) |
| --- | --- | --- |
| box | cube of half-extent 1 | U(0.008, 0.025) per axis |
| cylinder | radius 1, half-height 1 | radius U(0.005, 0.02), half-height U(0.015, 0.05) |
| sphere | radius 1 (an ellipsoid once scaled) | U(0.008, 0.022) per axis |
| arm | capsule: radius 1, tube z in [-1, 1], round caps to +-2: a second arm | radius U(0.012, 0.025), z scale U(0.05, 0.1) |

Each has a random orientation and a procedural two-colour texture (noise or
checker, `pattern` in the record) drawn from `colour_a` / `colour_b`; the arm
kind takes a skin-like colour. Everything is recorded in the annotation
(`occluders`, in the model frame); the mask labels occluder pixels, and hand
keypoints behind an occluder are marked not visible because visibility reads the
hand's own mask (synth/render_shard.annotate).
"""
from __future__ import annotations

import numpy as np

KINDS = ("box", "cylinder", "sphere", "arm")
MAX_IMAGE_SHARE = 0.6   # an occluder's image radius at most this share of the hand's (keypoint spread)
EXTENT = {"box": 1.0, "cylinder": 1.0, "sphere": 1.0, "arm": 2.0}   # the unit mesh's reach along z


def unit_mesh(kind: str, segments: int = 24) -> tuple:
    """(vertices, faces) of a kind's unit shape, outward-oriented, centred at the origin."""
    if kind == "box":
        v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
        quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
        return v, np.array([f for a, b, c, d in quads for f in ((a, b, c), (a, c, d))])
    if kind == "sphere":
        return _lathe(np.linspace(0, np.pi, segments // 2 + 1), segments, lambda th: (np.sin(th), -np.cos(th)))
    if kind == "cylinder":
        prof = [(0.0, -1.0), (1.0, -1.0), (1.0, 1.0), (0.0, 1.0)]
        return _lathe(np.arange(len(prof)), segments, lambda i: np.asarray(prof)[i.astype(int)].T)
    if kind == "arm":
        half = np.linspace(0, np.pi / 2, segments // 4 + 1)
        r = np.concatenate([np.sin(half), np.sin(half[::-1])])
        z = np.concatenate([-1 - np.cos(half), 1 + np.cos(half[::-1])])   # a tube z in [-1, 1], caps to +-2
        return _lathe(np.arange(len(r)), segments, lambda i: (r[i.astype(int)], z[i.astype(int)]))
    raise ValueError(f"unknown occluder kind {kind!r}; kinds: {', '.join(KINDS)}")


def _lathe(params, segments: int, profile) -> tuple:
    """A surface of revolution about z of the profile (radius, z)(param), from the bottom pole to the top."""
    radius, height = (np.asarray(a, dtype=float) for a in profile(np.asarray(params, dtype=float)))
    phi = 2 * np.pi * np.arange(segments) / segments
    rings = [np.stack([radius[k] * np.cos(phi), radius[k] * np.sin(phi), np.full(segments, height[k])], 1)
             for k in range(1, len(radius) - 1)]
    v = np.vstack([[0, 0, height[0]]] + rings + [[0, 0, height[-1]]])
    n, top = len(rings), len(v) - 1
    faces = [(0, 1 + (i + 1) % segments, 1 + i) for i in range(segments)]
    for r in range(n - 1):
        for i in range(segments):
            a, b = 1 + r * segments + i, 1 + r * segments + (i + 1) % segments
            faces += [(a, b, b + segments), (a, b + segments, a + segments)]
    last = 1 + (n - 1) * segments
    faces += [(last + i, last + (i + 1) % segments, top) for i in range(segments)]
    return v, np.asarray(faces)


def _random_rotation(rng) -> np.ndarray:
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _size(kind: str, rng) -> np.ndarray:
    if kind == "box":
        return rng.uniform(0.008, 0.025, 3)
    if kind == "sphere":
        return rng.uniform(0.008, 0.022, 3)
    r = rng.uniform(0.005, 0.02) if kind == "cylinder" else rng.uniform(0.012, 0.025)
    return np.array([r, r, rng.uniform(0.015, 0.05) if kind == "cylinder" else rng.uniform(0.05, 0.1)])


def draw(rng: np.random.Generator, keypoints_cam: np.ndarray, R: np.ndarray, t: np.ndarray, fx: float,
         prob: float, most: int, skin_srgb=None) -> list:
    """The sample's occluders (JSON-able dicts, model frame); [] with probability 1 - prob."""
    if most < 1 or rng.uniform() >= prob:
        return []
    uv = keypoints_cam[:, :2] / keypoints_cam[:, 2:3] * fx
    hand_radius_px = np.linalg.norm(uv - uv.mean(axis=0), axis=1).max()
    out = []
    for _ in range(int(rng.integers(1, most + 1))):
        kind = KINDS[int(rng.integers(len(KINDS)))]
        size = _size(kind, rng)
        target = keypoints_cam[int(rng.integers(len(keypoints_cam)))]
        centre = target * rng.uniform(0.55, 0.9)
        reach = (size * [1.0, 1.0, EXTENT[kind]]).max()
        size = size * min(1.0, MAX_IMAGE_SHARE * hand_radius_px / (fx * reach / centre[2]))
        side = np.cross(centre, rng.normal(size=3))
        centre = centre + side / np.linalg.norm(side) * rng.uniform(0.0, 0.7) * size.max()
        rot_cam = _random_rotation(rng)
        if kind == "arm" and skin_srgb is not None:
            colour_a = np.clip(np.asarray(skin_srgb) * rng.uniform(0.85, 1.1, 3), 0, 1)
            colour_b = np.clip(colour_a * 0.9, 0, 1)
        else:
            colour_a, colour_b = rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.95, 3)
        out.append({
            "kind": kind, "size": [round(float(s), 6) for s in size],
            "location": [round(float(c), 6) for c in R.T @ (centre - t)],        # camera -> model frame
            "rotation": np.round(R.T @ rot_cam, 6).tolist(),
            "colour_a": [round(float(c), 6) for c in colour_a], "colour_b": [round(float(c), 6) for c in colour_b],
            "pattern": "checker" if rng.uniform() < 0.4 else "noise",
            "pattern_scale": round(float(rng.uniform(40.0, 300.0)), 6),   # pattern frequency per metre
            "roughness": round(float(rng.uniform(0.2, 0.9)), 6),
        })
    return out


def occluder_mesh(record: dict) -> tuple:
    """(vertices, faces) of a recorded occluder in the model frame (for independent checks)."""
    v, f = unit_mesh(record["kind"])
    return (v * np.asarray(record["size"])) @ np.asarray(record["rotation"]).T + np.asarray(record["location"]), f
