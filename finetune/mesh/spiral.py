"""Spiral neighbourhoods (equation 4 of MobRecon; SpiralNet++'s `extract_spirals`) without openmesh.

0-ring(v) = {v}; (k+1)-ring(v) = N(k-ring(v)) minus k-disk(v); the spiral is
the concatenation of the rings, truncated to `length * dilation` vertices and
then every `dilation`-th taken. SpiralConv / DSConv learn one weight per spiral
position, so the order inside each ring must be the same rotational sense
everywhere:

- the 1-ring is walked counter-clockwise around v following the face winding
  (face (v, a, b) means b comes after a); an interior vertex starts at its
  lowest-index neighbour, a boundary vertex at the boundary neighbour where its
  fan starts, so the walk covers the whole fan;
- ring k+1 is collected by walking, for each vertex u of ring k in order, u's
  own neighbours counter-clockwise starting just after u's predecessor in
  ring k (the same rule as SpiralNet++'s `_next_ring`), keeping vertices not
  seen yet. On a regular surface this continues the rotation of ring k,
  starting next to where ring k started.

Padding: when the whole disk (the connected component) has fewer than
`length * dilation` vertices, the spiral is repeated cyclically from v
(v, ring 1, ..., v, ring 1, ...). SpiralNet++ fell back to Euclidean nearest
neighbours there; repeating keeps the spiral inside the graph and
deterministic. It never happens on the hand hierarchy (every disk has > 9
vertices).
"""
from __future__ import annotations

import numpy as np


def spiral_indices(faces, num_vertices: int, length: int, dilation: int = 1) -> np.ndarray:
    """(num_vertices, length) int64: row v is v's spiral, starting with v itself."""
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be (F, 3), got {faces.shape}")
    if len(faces) and (faces.min() < 0 or faces.max() >= num_vertices):
        raise ValueError(f"faces index vertices outside 0..{num_vertices - 1}")
    if length < 1 or dilation < 1:
        raise ValueError(f"spiral length and dilation must be >= 1, got {length}, {dilation}")
    fans, cyclic = vertex_fans(faces, num_vertices)
    span = length * dilation
    out = np.empty((num_vertices, length), np.int64)
    for v in range(num_vertices):
        spiral = _spiral(v, span, fans, cyclic)
        if len(spiral) < span:
            spiral = (spiral * (span // len(spiral) + 1))[:span]
        out[v] = spiral[:span:dilation]
    return out


def spirals_for(hierarchy, length: int = 9, dilation: int = 1) -> list:
    """One spiral table per level of a `finetune.mesh.hierarchy.MeshHierarchy`."""
    return [spiral_indices(f, len(v), length, dilation) for v, f in zip(hierarchy.vertices, hierarchy.faces)]


def vertex_fans(faces, num_vertices: int):
    """Per vertex, its neighbours in counter-clockwise order (face winding), and whether the fan
    closes (interior vertex). A non-manifold vertex's fans are concatenated, in index order."""
    succ = [dict() for _ in range(num_vertices)]
    for a, b, c in np.asarray(faces).tolist():
        succ[a][b] = c
        succ[b][c] = a
        succ[c][a] = b
    fans, cyclic = [], np.zeros(num_vertices, bool)
    for v in range(num_vertices):
        nxt = succ[v]
        has_pred = set(nxt.values())
        neighbours = sorted(set(nxt) | has_pred)
        starts = [x for x in neighbours if x not in has_pred]  # open fan: starts at a boundary edge
        order, seen = [], set()
        for s in starts + neighbours:
            x = s
            while x not in seen:
                seen.add(x)
                order.append(x)
                if x not in nxt:
                    break
                x = nxt[x]
        fans.append(order)
        cyclic[v] = bool(order) and not starts and nxt.get(order[-1]) == order[0]
    return fans, cyclic


def _spiral(v: int, span: int, fans, cyclic) -> list:
    spiral = [v]
    disk = {v}
    ring = list(fans[v])
    while ring:
        spiral.extend(ring)
        disk.update(ring)
        if len(spiral) >= span:
            break
        ring = _next_ring(ring, disk, fans, cyclic)
    return spiral


def _next_ring(ring: list, disk: set, fans, cyclic) -> list:
    out, taken = [], set()
    for i, u in enumerate(ring):
        fan = fans[u]
        pred = ring[i - 1] if len(ring) > 1 else None  # ring[-1] for i = 0: rings close on themselves
        if pred is not None and pred in fan:
            j = fan.index(pred)
            walk = fan[j + 1:] + fan[:j]
        elif cyclic[u]:
            # start where u's neighbours turn from seen to unseen
            old = [x in disk for x in fan]
            j = next((k for k in range(len(fan)) if old[k] and not old[(k + 1) % len(fan)]), len(fan) - 1)
            walk = fan[j + 1:] + fan[:j + 1]
        else:
            walk = fan
        for x in walk:
            if x not in disk and x not in taken:
                taken.add(x)
                out.append(x)
    return out
