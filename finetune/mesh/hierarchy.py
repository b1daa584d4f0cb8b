"""Mesh hierarchy of a template (778 -> 389 -> 195 -> 98 -> 49) with its sampling matrices.

The decoders of CMR / MobRecon run on these levels. As in COMA and CMR:
- each level is a quadric decimation of the previous one that keeps a subset
  of its vertices, so down-sampling (level l -> l+1) is a selection matrix;
- up-sampling (level l+1 -> l) writes every fine vertex as barycentric
  coordinates of its closest point on the closest coarse triangle, so kept
  vertices map to themselves and the others follow the coarse surface.

Building takes about a second; `cached_hierarchy` stores the result on disk
keyed by the template, the faces, the factors and `VERSION` (bump it when the
algorithm changes so old caches are not reused).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from synth.simplify import decimate_levels

VERSION = 1
DEFAULT_FACTORS = (2, 2, 2, 2)


@dataclass
class MeshHierarchy:
    vertices: list  # level l: (n_l, 3) float64; level 0 is the template
    faces: list     # level l: (F_l, 3) int64 indexing level l's vertices
    kept: list      # l: indices of level l+1's vertices among level l's (sorted)
    down: list      # l: csr (n_{l+1}, n_l) selection, one 1 per row
    up: list        # l: csr (n_l, n_{l+1}) barycentric rows, each summing to 1

    @property
    def sizes(self) -> list:
        return [len(v) for v in self.vertices]

    @property
    def num_levels(self) -> int:
        return len(self.vertices)


def level_sizes(num_vertices: int, factors=DEFAULT_FACTORS) -> list:
    sizes = [int(num_vertices)]
    for factor in factors:
        if not factor >= 1:
            raise ValueError(f"down-sampling factors must be >= 1, got {tuple(factors)}")
        sizes.append(int(math.ceil(sizes[-1] / factor)))
    return sizes


def build_hierarchy(template, faces, factors=DEFAULT_FACTORS) -> MeshHierarchy:
    """Decimate `template` (N, 3) with `faces` level by level: n_{l+1} = ceil(n_l / factor)."""
    template = np.ascontiguousarray(template, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    sizes = level_sizes(len(template), factors)
    levels = decimate_levels(template, faces, sizes[1:])
    vertices, all_faces, kept_list, down, up = [template], [faces], [], [], []
    for kept, coarse_faces in levels:
        fine = vertices[-1]
        coarse = fine[kept]
        down.append(selection_matrix(kept, len(fine)))
        up.append(upsampling_matrix(fine, coarse, coarse_faces, kept))
        vertices.append(coarse)
        all_faces.append(coarse_faces)
        kept_list.append(kept)
    return MeshHierarchy(vertices, all_faces, kept_list, down, up)


def selection_matrix(kept, num_in: int) -> sp.csr_matrix:
    kept = np.asarray(kept, dtype=np.int64)
    return sp.csr_matrix((np.ones(len(kept)), (np.arange(len(kept)), kept)), shape=(len(kept), num_in))


def upsampling_matrix(fine, coarse, coarse_faces, kept=None) -> sp.csr_matrix:
    """(n_fine, n_coarse): barycentric weights of each fine vertex's closest point on the coarse mesh.

    `kept[i]` is the fine index of coarse vertex i; those rows are exactly one-hot.
    """
    fine = np.asarray(fine, dtype=np.float64)
    coarse = np.asarray(coarse, dtype=np.float64)
    coarse_faces = np.asarray(coarse_faces, dtype=np.int64)
    face_id, bary = closest_triangles(fine, coarse, coarse_faces)
    bary = np.where(bary < 1e-12, 0.0, bary)
    bary /= bary.sum(1, keepdims=True)
    rows = np.repeat(np.arange(len(fine)), 3)
    cols = coarse_faces[face_id].reshape(-1)
    vals = bary.reshape(-1)
    if kept is not None:
        kept = np.asarray(kept, dtype=np.int64)
        is_kept = np.zeros(len(fine), bool)
        is_kept[kept] = True
        drop = is_kept[rows]
        rows = np.concatenate([rows[~drop], kept])
        cols = np.concatenate([cols[~drop], np.arange(len(kept))])
        vals = np.concatenate([vals[~drop], np.ones(len(kept))])
    m = sp.coo_matrix((vals, (rows, cols)), shape=(len(fine), len(coarse))).tocsr()
    m.sum_duplicates()
    m.eliminate_zeros()
    m.sort_indices()
    return m


def closest_triangles(points, vertices, faces, chunk: int = 256):
    """For each point: index of the closest triangle (lowest index on ties) and the barycentric
    coordinates (P, 3) of the closest point on it (Ericson, Real-Time Collision Detection 5.1.5)."""
    points = np.asarray(points, dtype=np.float64)
    a, b, c = (vertices[faces[:, k]][None] for k in range(3))
    ids, barys = [], []
    for s in range(0, len(points), chunk):
        p = points[s:s + chunk, None, :]
        bary = _closest_point_barycentric(p, a, b, c)
        q = bary[..., 0:1] * a + bary[..., 1:2] * b + bary[..., 2:3] * c
        d2 = ((p - q) ** 2).sum(-1)
        best = np.argmin(d2, axis=1)
        ids.append(best)
        barys.append(bary[np.arange(len(best)), best])
    return np.concatenate(ids), np.concatenate(barys)


def _closest_point_barycentric(p, a, b, c):
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2

    def safe_div(num, den):
        return num / np.where(den == 0, 1.0, den)

    zeros = np.zeros_like(d1)
    # interior first, then the regions in reverse priority so the highest priority wins
    den = va + vb + vc
    v, w = safe_div(vb, den), safe_div(vc, den)
    out = np.stack([1 - v - w, v, w], -1)

    def put(mask, bary):
        out[mask] = np.stack(bary, -1)[mask]

    t = safe_div(d4 - d3, (d4 - d3) + (d5 - d6))
    put((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), (zeros, 1 - t, t))   # edge BC
    t = safe_div(d2, d2 - d6)
    put((vb <= 0) & (d2 >= 0) & (d6 <= 0), (1 - t, zeros, t))              # edge AC
    put((d6 >= 0) & (d5 <= d6), (zeros, zeros, zeros + 1))                 # vertex C
    t = safe_div(d1, d1 - d3)
    put((vc <= 0) & (d1 >= 0) & (d3 <= 0), (1 - t, t, zeros))              # edge AB
    put((d3 >= 0) & (d4 <= d3), (zeros, zeros + 1, zeros))                 # vertex B
    put((d1 <= 0) & (d2 <= 0), (zeros + 1, zeros, zeros))                  # vertex A
    return np.clip(out, 0.0, 1.0)


# ---- disk cache -----------------------------------------------------------------

def default_cache_dir() -> Path:
    root = os.environ.get("HANDS_CACHE_DIR")
    return Path(root) / "mesh" if root else Path.home() / ".cache" / "hands" / "mesh"


def cache_key(template, faces, factors=DEFAULT_FACTORS) -> str:
    template = np.ascontiguousarray(template, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    h = hashlib.sha256()
    h.update(json.dumps({"v": VERSION, "factors": [float(f) for f in factors],
                         "shapes": [template.shape, faces.shape]}).encode())
    h.update(template.tobytes())
    h.update(faces.tobytes())
    return h.hexdigest()[:20]


def cached_hierarchy(template, faces, factors=DEFAULT_FACTORS, cache_dir=None) -> MeshHierarchy:
    """`build_hierarchy`, computed once per (template, faces, factors, VERSION) and kept as .npz.

    Default directory: $HANDS_CACHE_DIR/mesh, else ~/.cache/hands/mesh. An
    unreadable cache file is rebuilt with a warning naming it.
    """
    key = cache_key(template, faces, factors)
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / f"hierarchy_{key}.npz"
    if path.exists():
        try:
            return load_hierarchy(path, key)
        except Exception as exc:  # noqa: BLE001 - any damage means: rebuild
            warnings.warn(f"mesh hierarchy cache {path} is unreadable ({type(exc).__name__}: {exc}); rebuilding",
                          stacklevel=2)
    hierarchy = build_hierarchy(template, faces, factors)
    try:
        save_hierarchy(hierarchy, path, key)
    except OSError as exc:
        warnings.warn(f"could not write the mesh hierarchy cache {path}: {exc}", stacklevel=2)
    return hierarchy


def hierarchy_for(hand_model, factors=DEFAULT_FACTORS, cache_dir=None) -> MeshHierarchy:
    """The (cached) hierarchy of a `synth.hand_model.HandModel`'s template mesh."""
    return cached_hierarchy(hand_model.template, hand_model.faces, factors, cache_dir)


def save_hierarchy(h: MeshHierarchy, path, key: str = "") -> None:
    """Write atomically: a temporary file in the same directory, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"key": np.array(key), "num_levels": np.array(h.num_levels)}
    for l, (v, f) in enumerate(zip(h.vertices, h.faces)):
        arrays[f"vertices_{l}"] = v
        arrays[f"faces_{l}"] = f
    for l, (kept, up) in enumerate(zip(h.kept, h.up)):
        arrays[f"kept_{l}"] = kept
        arrays[f"up_data_{l}"] = up.data
        arrays[f"up_indices_{l}"] = up.indices
        arrays[f"up_indptr_{l}"] = up.indptr
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_hierarchy(path, key: str | None = None) -> MeshHierarchy:
    with np.load(path, allow_pickle=False) as z:
        if key is not None and str(z["key"]) != key:
            raise ValueError(f"cache key {str(z['key'])!r} != expected {key!r}")
        n = int(z["num_levels"])
        vertices = [np.asarray(z[f"vertices_{l}"], dtype=np.float64) for l in range(n)]
        faces = [np.asarray(z[f"faces_{l}"], dtype=np.int64) for l in range(n)]
        kept, down, up = [], [], []
        for l in range(n - 1):
            k = np.asarray(z[f"kept_{l}"], dtype=np.int64)
            n_fine, n_coarse = len(vertices[l]), len(vertices[l + 1])
            if len(k) != n_coarse or (len(k) and (k.min() < 0 or k.max() >= n_fine)):
                raise ValueError(f"level {l}: kept indices do not match the level sizes")
            u = sp.csr_matrix((z[f"up_data_{l}"], z[f"up_indices_{l}"], z[f"up_indptr_{l}"]),
                              shape=(n_fine, n_coarse))
            u.check_format(full_check=True)
            kept.append(k)
            down.append(selection_matrix(k, n_fine))
            up.append(u)
    for l, f in enumerate(faces):
        if f.ndim != 2 or f.shape[1] != 3 or (f.size and (f.min() < 0 or f.max() >= len(vertices[l]))):
            raise ValueError(f"level {l}: faces do not index its vertices")
    return MeshHierarchy(vertices, faces, kept, down, up)
