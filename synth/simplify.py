"""Quadric-error edge-collapse decimation (Garland & Heckbert 1997) that keeps a vertex subset.

COMA and CMR build their down-sampling matrices from a decimation whose
collapses keep one endpoint in place, so the coarse mesh's vertices are some of
the fine mesh's vertices and down-sampling is a plain selection. This module
does exactly that in numpy, without psbody-mesh: every collapse removes one
vertex u and keeps its neighbour w at w's original position, choosing the
direction with the lower quadric error.

Safety checks (a collapse is skipped when any fails):
- link condition (with the open boundary treated as joined to a virtual
  vertex), so the result stays an edge-manifold surface with the same Euler
  characteristic and number of boundary loops;
- a boundary vertex is only collapsed along a boundary edge onto another
  boundary vertex, so the wrist loop keeps its place;
- a vertex named in `keep` is never removed (OpenHand 2's fingertip vertices);
- no face may flip (unit normals' dot product below `min_normal_dot`) or
  become degenerate, and no duplicate face may appear.
Boundary vertices also get the usual perpendicular constraint planes (large
weight) in their quadrics, so the boundary is the last thing to be simplified.
Face planes are unweighted, as in the paper: with area weights the small
triangles of a fingertip counted for little and the tips were removed first.

The target is always met exactly: if no collapse passes the normal test, the
test is relaxed with a warning; the topological checks are never relaxed (a
RuntimeError says the target is unreachable).

The heap is lazily invalidated with per-vertex version counters; ties are
broken by vertex indices, so the result is deterministic.
"""
from __future__ import annotations

import heapq
import warnings

import numpy as np

BOUNDARY_WEIGHT = 1000.0
MIN_NORMAL_DOT = 0.2
# used only if no collapse passes the normal test before the target is reached
_RELAXED_NORMAL_DOTS = (0.0, -0.5)


def quadric_decimate(vertices, faces, target: int, *, boundary_weight: float = BOUNDARY_WEIGHT,
                     min_normal_dot: float = MIN_NORMAL_DOT, keep=()):
    """Decimate to exactly `target` vertices.

    Returns (kept, faces'): `kept` (target,) int64, sorted indices of the
    surviving vertices (at their original positions), and faces' (F', 3)
    int64 indexing into `kept`, wound like the input.
    """
    (kept, out_faces), = decimate_levels(vertices, faces, [target], boundary_weight=boundary_weight,
                                         min_normal_dot=min_normal_dot, keep=keep)
    return kept, out_faces


def decimate_levels(vertices, faces, targets, *, boundary_weight: float = BOUNDARY_WEIGHT,
                    min_normal_dot: float = MIN_NORMAL_DOT, fresh_quadrics: bool = True, keep=()):
    """One decimation per target (decreasing vertex counts), each level from the previous one.

    Returns [(kept, faces), ...]: `kept` of level i indexes the vertices of
    level i-1 (the input for i = 0) and `faces` index into that `kept`.
    With `fresh_quadrics`, each level's quadrics are computed from its own
    input mesh (COMA's procedure); otherwise one progressive decimation runs
    through all targets, carrying the original quadrics along. `keep`: input vertex ids that survive
    every level.
    """
    vertices = np.ascontiguousarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    _check_mesh(vertices, faces)
    targets = [int(t) for t in targets]
    n = len(vertices)
    previous = n
    for t in targets:
        if not 1 <= t <= previous:
            raise ValueError(f"decimation targets must decrease from {n} vertices and stay >= 1, got {targets}")
        previous = t

    out = []
    if fresh_quadrics:
        cur_ids, cur_faces = np.arange(n), faces.astype(np.int64)
        for t in targets:
            dec = _Decimator(vertices[cur_ids], cur_faces, boundary_weight, min_normal_dot,
                             keep=np.flatnonzero(np.isin(cur_ids, keep)))
            dec.run(t)
            kept, new_faces = dec.result()
            out.append((kept, new_faces))
            cur_ids, cur_faces = cur_ids[kept], new_faces
        return out

    dec = _Decimator(vertices, faces.astype(np.int64), boundary_weight, min_normal_dot, keep=keep)
    alive_before = np.arange(n)
    for t in targets:
        dec.run(t)
        kept_abs, new_faces = dec.result()
        kept = np.searchsorted(alive_before, kept_abs)
        out.append((kept, new_faces))
        alive_before = kept_abs
    return out


def _check_mesh(vertices: np.ndarray, faces: np.ndarray) -> None:
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be (N, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must be an integer (F, 3) array, got {faces.dtype} {faces.shape}")
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"faces index vertices outside 0..{len(vertices) - 1}")
    if np.any((faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])):
        raise ValueError("faces contain a repeated vertex (degenerate triangle)")


class _Decimator:
    def __init__(self, vertices: np.ndarray, faces: np.ndarray, boundary_weight: float, min_dot: float, keep=()):
        self.v = vertices
        self.keep = {int(k) for k in keep}
        self.f = faces.copy()
        n = len(vertices)
        self.alive = np.ones(len(faces), bool)
        self.removed = np.zeros(n, bool)
        self.n_alive = n
        self.version = np.zeros(n, np.int64)
        self.min_dot = min_dot
        self.vfaces = [set() for _ in range(n)]
        for fi, tri in enumerate(self.f.tolist()):
            for x in tri:
                self.vfaces[x].add(fi)
        scale = np.ptp(vertices, axis=0).max() if n else 1.0
        # twice a face's area below this is degenerate (relative, so metres or millimetres alike)
        self.area_eps = 1e-10 * max(scale, 1e-300) ** 2
        self.boundary = np.zeros(n, bool)
        for x in range(n):
            self.boundary[x] = self._is_boundary(x)
        self.q = self._quadrics(boundary_weight)
        self.heap: list = []

    # ---- quadrics -------------------------------------------------------
    def _quadrics(self, boundary_weight: float) -> np.ndarray:
        v, f = self.v, self.f
        q = np.zeros((len(v), 4, 4))
        if not len(f):
            return q
        a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
        cross = np.cross(b - a, c - a)
        norm = np.linalg.norm(cross, axis=1)
        ok = norm > 0
        n = np.zeros_like(cross)
        n[ok] = cross[ok] / norm[ok, None]
        plane = np.concatenate([n, -(n * a).sum(1, keepdims=True)], axis=1)
        # one unweighted plane per face (see the module docstring)
        kf = plane[:, :, None] * plane[:, None, :]
        for k in range(3):
            np.add.at(q, f[:, k], kf)
        # boundary edges: plane through the edge, perpendicular to its face, with a large weight
        for fi, tri in enumerate(f.tolist()):
            for k in range(3):
                x, y = tri[k], tri[(k + 1) % 3]
                if len(self.vfaces[x] & self.vfaces[y]) != 1:
                    continue
                e = v[y] - v[x]
                m = np.cross(e, n[fi])
                mn = np.linalg.norm(m)
                if mn == 0:
                    continue
                m /= mn
                p = np.append(m, -m @ v[x])
                kb = boundary_weight * np.outer(p, p)
                q[x] += kb
                q[y] += kb
        return q

    def _cost(self, u: int, w: int) -> float:
        """Error of removing u and keeping w where it is."""
        h = np.append(self.v[w], 1.0)
        return max(float(h @ (self.q[u] + self.q[w]) @ h), 0.0)

    # ---- topology -------------------------------------------------------
    def _neighbours(self, x: int) -> set:
        out = set()
        for fi in self.vfaces[x]:
            out.update(self.f[fi].tolist())
        out.discard(x)
        return out

    def _is_boundary(self, x: int) -> bool:
        count: dict = {}
        for fi in self.vfaces[x]:
            for y in self.f[fi].tolist():
                if y != x:
                    count[y] = count.get(y, 0) + 1
        return any(c == 1 for c in count.values())

    def _can_collapse(self, u: int, w: int) -> bool:
        if u in self.keep:
            return False
        shared = self.vfaces[u] & self.vfaces[w]
        if not shared:
            return False
        nu, nw = self._neighbours(u), self._neighbours(w)
        opposite = set()
        for fi in shared:
            opposite.update(self.f[fi].tolist())
        opposite -= {u, w}
        # link condition; the virtual vertex joined to the boundary adds the next two rules
        if (nu & nw) != opposite:
            return False
        if self.boundary[u] and self.boundary[w] and len(shared) != 1:
            return False  # an interior edge between two boundary vertices: would pinch the loop
        if self.boundary[u] and not self.boundary[w]:
            return False  # would pull the boundary onto an interior vertex
        moved = sorted(self.vfaces[u] - shared)
        if not moved:
            return True
        tri = self.f[moved]
        new = np.where(tri == u, w, tri)
        # no face may end up twice (e.g. collapsing a tetrahedron's edge)
        existing = {frozenset(self.f[fi].tolist()) for fi in self.vfaces[w] - shared}
        if any(frozenset(t) in existing for t in new.tolist()):
            return False
        v = self.v
        old_n = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
        new_n = np.cross(v[new[:, 1]] - v[new[:, 0]], v[new[:, 2]] - v[new[:, 0]])
        old_len = np.linalg.norm(old_n, axis=1)
        new_len = np.linalg.norm(new_n, axis=1)
        if np.any(new_len <= self.area_eps):
            return False
        dots = (old_n * new_n).sum(1) / np.maximum(old_len * new_len, 1e-300)
        return bool(np.all(dots >= self.min_dot))

    def _collapse(self, u: int, w: int) -> None:
        shared = self.vfaces[u] & self.vfaces[w]
        for fi in shared:
            self.alive[fi] = False
            for x in self.f[fi].tolist():
                self.vfaces[x].discard(fi)
        for fi in self.vfaces[u]:
            row = self.f[fi]
            row[row == u] = w
            self.vfaces[w].add(fi)
        self.vfaces[u] = set()
        self.removed[u] = True
        self.n_alive -= 1
        self.q[w] += self.q[u]

    # ---- heap -----------------------------------------------------------
    def _push_edges_of(self, vertices) -> None:
        pairs = set()
        for x in vertices:
            for y in self._neighbours(x):
                pairs.add((x, y))
                pairs.add((y, x))
        for u, w in sorted(pairs):
            heapq.heappush(self.heap, (self._cost(u, w), u, w, int(self.version[u]), int(self.version[w])))

    def run(self, target: int) -> None:
        dots = (self.min_dot,) + tuple(d for d in _RELAXED_NORMAL_DOTS if d < self.min_dot)
        for attempt, dot in enumerate(dots):
            if self.n_alive <= target:
                return
            if attempt:
                warnings.warn(f"quadric_decimate: no collapse keeps face normals within dot >= {dots[attempt - 1]}"
                              f" at {self.n_alive} vertices; relaxing to {dot} to reach {target}", stacklevel=3)
            self.min_dot = dot
            self.heap = []
            self._push_edges_of(np.flatnonzero(~self.removed).tolist())
            while self.n_alive > target and self.heap:
                _, u, w, ver_u, ver_w = heapq.heappop(self.heap)
                if self.removed[u] or self.removed[w] or ver_u != self.version[u] or ver_w != self.version[w]:
                    continue
                if not self._can_collapse(u, w):
                    continue  # re-queued if its neighbourhood changes
                self._collapse(u, w)
                affected = {w} | self._neighbours(w)
                for x in affected:
                    self.version[x] += 1
                    self.boundary[x] = self._is_boundary(x)
                self._push_edges_of(sorted(affected))
        if self.n_alive > target:
            raise RuntimeError(f"quadric_decimate: cannot reach {target} vertices without breaking the mesh "
                               f"(stuck at {self.n_alive})")

    def result(self):
        kept = np.flatnonzero(~self.removed)
        remap = np.full(len(self.v), -1, np.int64)
        remap[kept] = np.arange(len(kept))
        return kept.astype(np.int64), remap[self.f[self.alive]]
