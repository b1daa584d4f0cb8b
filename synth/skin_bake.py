"""The skin's per-vertex part, computed in numpy for every sample: albedo and shading normals.

Why not in the shader: everything here varies slowly over the surface (over
centimetres for the region colours and the albedo noise, over the render
mesh's vertex spacing of about 3.5 mm for the normal detail), so the mesh's
vertices sample it finely enough, and Cycles interpolates a vertex attribute
and a vertex normal for free. The same detail as shader nodes cost 20 % of the
render time at 256 px (a noise texture with octaves for the albedo, a
3-channel noise tilting the normal; benchmarks/skin_detail.py), these arrays
cost a few milliseconds per sample. What must stay sharper than the vertex
spacing (the nail's outline, the thin lines of a crease) stays in the shader
(synth/skin_shader.py).

- `vertex_albedo`: linear RGB per vertex: the base tone mixed towards the palm,
  knuckle and fingertip tones by the region weights (synth/skin_regions.py),
  times 1 + noise_strength x a unit-std gradient noise of the vertex's *rest*
  position (so the blotches stay on the skin whatever the pose).
- `detail_normals`: the smooth vertex normals tilted in their tangent plane by
  a vector gradient noise of the rest position (a 10 mm lattice: bumps of
  5-10 mm, about two vertex spacings), its size bump_strength x (1 +
  CREASE_BUMP x crease band): the skin's unevenness and the wrinkling along
  creases, drawn per sample. (Pore-sized detail is finer than a pixel at the
  rig's 1.1 mm per pixel at 256 px: as a shader noise it changed the image by
  less than a grey level, PSNR 61 dB at 256 and 512 px, for 10 % of the time.)
- `joined_normals`: smooth normals of the hand and the forearm as one surface,
  so the two objects' shading agrees at the wrist ring they share;
  `forearm_palm_weights`: the palm's paler tone continued onto the inner
  forearm (the wrist ring's own palm weights, fading to FOREARM_PALM_SHARE of
  them towards the elbow), so the palm side shows no tone step at the wrist.
"""
from __future__ import annotations

import numpy as np

from .skin import palm_tone_srgb, red_tone_srgb, srgb_to_linear

CREASE_BUMP = 2.0                 # normal detail on the crease bands: x (1 + CREASE_BUMP x band weight)
DETAIL_SCALE = 1.0 / 0.010        # 1/m: the normal detail's lattice (bumps of about 5-10 mm)
ALBEDO_FACTOR_RANGE = (0.5, 1.5)  # the albedo noise factor is clipped to this range
FOREARM_PALM_SHARE = 0.5          # the inner forearm's paleness: this share of the wrist ring's palm weight

# Ken Perlin's improved noise: a fixed permutation (the pattern is moved per sample by noise_offset) and
# the 12 gradients towards the cube's edge midpoints
_PERM = np.random.default_rng(20261206).permutation(256)
_PERM = np.concatenate([_PERM, _PERM, _PERM[:2]])
_GRADIENTS = np.array([[1, 1, 0], [-1, 1, 0], [1, -1, 0], [-1, -1, 0], [1, 0, 1], [-1, 0, 1], [1, 0, -1],
                       [-1, 0, -1], [0, 1, 1], [0, -1, 1], [0, 1, -1], [0, -1, -1]], dtype=np.float64)
# standard deviation of gradient_noise over space (measured over 10^6 uniform points: 0.2724; a test
# re-measures it), and of the two-octave sum n(p) + n(2p) / 2 (0.3043)
NOISE_STD = 0.2724
FRACTAL_STD = 0.3043


def gradient_noise(points: np.ndarray) -> np.ndarray:
    """Perlin's improved gradient noise at (N, 3) points: (N,), 0 at integer lattice points, in about
    [-1, 1], smooth (C2), period 256 along each axis."""
    p = np.asarray(points, dtype=np.float64)
    cell = np.floor(p)
    f = p - cell
    i = cell.astype(np.int64) & 255
    fade = f * f * f * (f * (f * 6.0 - 15.0) + 10.0)
    out = np.zeros(len(p))
    for dx in (0, 1):
        wx = fade[:, 0] if dx else 1.0 - fade[:, 0]
        hx = _PERM[i[:, 0] + dx]
        for dy in (0, 1):
            wy = fade[:, 1] if dy else 1.0 - fade[:, 1]
            hy = _PERM[hx + i[:, 1] + dy]
            for dz in (0, 1):
                wz = fade[:, 2] if dz else 1.0 - fade[:, 2]
                g = _GRADIENTS[_PERM[hy + i[:, 2] + dz] % 12]
                d = f - (dx, dy, dz)
                out += wx * wy * wz * (g * d).sum(axis=1)
    return out


def fractal_noise(points: np.ndarray) -> np.ndarray:
    """Two octaves, normalised to unit standard deviation over space."""
    p = np.asarray(points, dtype=np.float64)
    return (gradient_noise(p) + 0.5 * gradient_noise(2.0 * p)) / FRACTAL_STD


def region_colours(skin: dict) -> dict:
    """Linear RGB of the base, palm, knuckle and fingertip tones of a sample_skin dict (synth/skin.py)."""
    base = np.asarray(skin["base_color_srgb"], dtype=np.float64)

    def towards(target, amount):
        return base + (np.asarray(target) - base) * float(amount)

    palm = towards(palm_tone_srgb(base), skin.get("palm_lightening", 0.0))
    tip = palm + (red_tone_srgb(palm) - palm) * float(skin.get("tip_redness", 0.0))
    knuckle = towards(red_tone_srgb(base), skin.get("knuckle_redness", 0.0))
    return {name: srgb_to_linear(np.clip(c, 0.0, 1.0))
            for name, c in (("base", base), ("palm", palm), ("knuckle", knuckle), ("tip", tip))}


def vertex_albedo(skin: dict, rest_points: np.ndarray, regions: dict | None = None) -> np.ndarray:
    """(N, 3) linear albedo of the vertices at `rest_points` (metres); `regions` (per-vertex weights of
    synth.skin_regions, missing ones 0) mix in the palm, knuckle and fingertip tones in that order."""
    colours = region_colours(skin)
    n = len(rest_points)
    out = np.tile(colours["base"], (n, 1))
    for name in ("palm", "knuckle", "tip"):
        w = (regions or {}).get(name)
        if w is not None:
            out += (colours[name] - out) * np.asarray(w, dtype=np.float64)[:, None]
    strength = float(skin.get("noise_strength", 0.0))
    if strength:
        p = np.asarray(rest_points, dtype=np.float64) * float(skin.get("noise_scale", 50.0)) + \
            np.asarray(skin.get("noise_offset", (0.0, 0.0, 0.0)))
        out *= np.clip(1.0 + strength * fractal_noise(p), *ALBEDO_FACTOR_RANGE)[:, None]
    return out


def detail_normals(normals: np.ndarray, rest_points: np.ndarray, skin: dict,
                   crease: np.ndarray | None = None) -> np.ndarray:
    """The unit `normals` (N, 3) tilted by the sample's normal detail: n + k t, normalised, with t the
    tangential part of a 3-channel unit-std gradient noise of the rest position and k = bump_strength x
    (1 + CREASE_BUMP x crease)."""
    n = np.asarray(normals, dtype=np.float64)
    k = float(skin.get("bump_strength", 0.0))
    if not k:
        return n
    p = np.asarray(rest_points, dtype=np.float64) * DETAIL_SCALE + np.asarray(skin.get("noise_offset", (0.0,) * 3))
    # three channels from three far-apart shifts of one noise (period 256: shifts of 61 and 127 cells)
    v = np.stack([gradient_noise(p + shift) for shift in ((0.0, 0.0, 0.0), (61.3, 17.9, 5.1), (127.7, 89.3, 43.1))],
                 axis=1) / NOISE_STD
    tangential = v - (v * n).sum(axis=1, keepdims=True) * n
    scale = k if crease is None else k * (1.0 + CREASE_BUMP * np.asarray(crease, dtype=np.float64))[:, None]
    out = n + scale * tangential
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def joined_normals(hand_vertices: np.ndarray, hand_faces: np.ndarray, arm_vertices: np.ndarray,
                   arm_faces: np.ndarray, loop: np.ndarray) -> tuple:
    """(hand normals, arm normals): area-weighted vertex normals of hand + arm as one surface. The arm's
    first len(loop) vertices are the hand's wrist-loop vertices `loop` (synth/forearm.py's layout)."""
    from .meshops import vertex_normals

    nh, nl = len(hand_vertices), len(loop)
    remap = np.concatenate([np.asarray(loop), nh + np.arange(len(arm_vertices) - nl)])
    points = np.concatenate([hand_vertices, arm_vertices[nl:]])
    faces = np.concatenate([hand_faces, remap[np.asarray(arm_faces)]])
    normals = vertex_normals(points, faces)
    return normals[:nh], np.concatenate([normals[loop], normals[nh:]])


def body_arm_palm_weights(loop_palm: np.ndarray, nearest_loop: np.ndarray, hand_share: np.ndarray) -> np.ndarray:
    """Palm weights of the body arm's vertices (synth/body_arm.py): each its nearest wrist-loop vertex's,
    fading from 1 x where the arm follows the hand to FOREARM_PALM_SHARE x up the forearm."""
    share = np.asarray(hand_share, dtype=np.float64)
    return np.asarray(loop_palm, dtype=np.float64)[nearest_loop] * (FOREARM_PALM_SHARE + (1 - FOREARM_PALM_SHARE)
                                                                     * share)


def forearm_palm_weights(loop_palm: np.ndarray, num_arm_vertices: int) -> np.ndarray:
    """Palm weights of the forearm's vertices (synth/forearm.py layout: rings of len(loop_palm) vertices,
    the first the wrist loop itself, then a pole): each ring repeats the loop's weights, fading smoothly
    from 1 x at the wrist to FOREARM_PALM_SHARE x at the last tube ring and beyond."""
    from .forearm import RINGS

    w = np.asarray(loop_palm, dtype=np.float64)
    n = len(w)
    rings = (num_arm_vertices - 1) // n
    if rings * n + 1 != num_arm_vertices:
        raise ValueError(f"{num_arm_vertices} forearm vertices are not rings of {n} and a pole")
    x = np.clip(np.arange(rings) / RINGS, 0.0, 1.0)
    fade = 1.0 - (1.0 - FOREARM_PALM_SHARE) * x * x * (3 - 2 * x)
    out = np.concatenate([np.outer(fade, w).ravel(), [FOREARM_PALM_SHARE * w.mean()]])
    return out
