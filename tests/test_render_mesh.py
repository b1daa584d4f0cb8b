"""synth.render_mesh: one Loop subdivision step (S) and its exact sparse inverse (M)."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from synth import meshops
from synth.hand_model import HandModel
from synth.poses import complement_poses
from synth.render_mesh import build_render_mesh


@pytest.fixture(scope="module")
def hm():
    return HandModel()


@pytest.fixture(scope="module")
def rm(hm):
    return build_render_mesh(hm.faces, hm.num_vertices)


def _edges(faces):
    return {tuple(sorted((int(f[i]), int(f[(i + 1) % 3])))) for f in faces for i in range(3)}


def _opposites(faces):
    opp = defaultdict(list)
    for f in faces:
        for i in range(3):
            a, b, c = int(f[i]), int(f[(i + 1) % 3]), int(f[(i + 2) % 3])
            opp[tuple(sorted((a, b)))].append(c)
    return opp


def _hand_beta(n):
    return (5 / 8 - (3 / 8 + np.cos(2 * np.pi / n) / 4) ** 2) / n


def _icosahedron():
    p = (1 + 5 ** 0.5) / 2
    v = np.array([[-1, p, 0], [1, p, 0], [-1, -p, 0], [1, -p, 0], [0, -1, p], [0, 1, p],
                  [0, -1, -p], [0, 1, -p], [p, 0, -1], [p, 0, 1], [-p, 0, -1], [-p, 0, 1]], float)
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
                  [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
                  [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]])
    return v, f


def _grid(n=5):
    """An open (n x n)-vertex triangulated square: boundary and interior vertices of valence 6."""
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            q = i * n + j
            faces += [(q, q + 1, q + n + 1), (q, q + n + 1, q + n)]
    return np.array(faces)


# ------------------------------------------------------------------- S and M algebra


def test_M_is_a_left_inverse_of_S(rm, hm):
    V = hm.num_vertices
    eye = (rm.M @ rm.S).toarray()
    assert eye.shape == (V, V)
    np.testing.assert_allclose(eye, np.eye(V), atol=1e-10)


def test_S_rows_are_affine_and_non_negative(rm):
    S = rm.S.toarray()
    np.testing.assert_allclose(S.sum(axis=1), 1.0, atol=1e-12)
    assert S.min() >= 0.0


def test_M_rows_are_affine(rm):
    # a left inverse of a row-stochastic S must reproduce constants: M @ 1 = 1
    np.testing.assert_allclose(np.asarray(rm.M.sum(axis=1)).ravel(), 1.0, atol=1e-10)


def test_round_trip_on_posed_complement_hands(rm, hm):
    rng = np.random.default_rng(0)
    poses = complement_poses(model=hm)[rng.choice(1520, 50, replace=False)]
    with torch.no_grad():
        verts = hm(torch.tensor(poses, dtype=torch.float32))[0].numpy().astype(np.float64)
    dense = rm.densify(verts)
    assert dense.shape == (50, rm.num_vertices, 3)
    back = rm.to_model(dense)
    assert np.abs(back - verts).max() < 1e-7
    # the batched product equals the per-sample product
    np.testing.assert_allclose(dense[3], rm.S @ verts[3], atol=1e-15)
    np.testing.assert_allclose(back[3], rm.M @ dense[3], atol=1e-15)


@pytest.mark.parametrize("mesh", ["icosahedron", "grid"])
def test_inverse_on_small_meshes(mesh):
    if mesh == "icosahedron":
        verts, faces = _icosahedron()
    else:
        faces = _grid(5)
        verts = np.random.default_rng(3).normal(size=(25, 3))
    rm = build_render_mesh(faces, len(verts))
    np.testing.assert_allclose((rm.M @ rm.S).toarray(), np.eye(len(verts)), atol=1e-10)
    np.testing.assert_allclose(rm.to_model(rm.densify(verts)), verts, atol=1e-12)


# ------------------------------------------------------------------- dense topology


def test_dense_topology(rm, hm):
    faces = hm.faces
    n_edges = len(_edges(faces))
    assert rm.num_vertices == hm.num_vertices + n_edges
    assert rm.S.shape == (hm.num_vertices + n_edges, hm.num_vertices)
    assert rm.M.shape == (hm.num_vertices, hm.num_vertices + n_edges)
    assert rm.faces.shape == (4 * len(faces), 3)
    assert len(np.unique(rm.faces)) == rm.num_vertices
    assert meshops.is_edge_manifold(rm.faces)
    assert meshops.is_consistently_oriented(rm.faces)
    loops = meshops.boundary_loops(rm.faces)
    assert len(loops) == 1
    assert len(loops[0]) == 2 * len(meshops.boundary_loops(faces)[0])
    assert meshops.euler_characteristic(rm.faces) == 1
    # the dense faces follow their parents' orientation: on the rest template,
    # each child's normal points along its parent's
    dense = rm.densify(hm.template)
    parent = meshops.face_normals(hm.template, faces)
    child = meshops.face_normals(dense, rm.faces).reshape(len(faces), 4, 3)
    assert (np.einsum("fc,fkc->fk", parent, child) > 0).mean() > 0.99


# ----------------------------------------------------------- Loop's rules by hand


@pytest.fixture(scope="module")
def random_dense(rm, hm):
    verts = np.random.default_rng(11).normal(size=(hm.num_vertices, 3))
    return verts, rm.densify(verts)


def _neighbour_sets(faces, n_v):
    nb = [set() for _ in range(n_v)]
    for f in faces:
        for x in f:
            nb[int(x)].update(int(y) for y in f if y != x)
    return nb


def test_loop_rule_interior_vertex(hm, random_dense):
    verts, dense = random_dense
    boundary = set(meshops.boundary_loops(hm.faces)[0].tolist())
    nbs = _neighbour_sets(hm.faces, hm.num_vertices)
    valences = set()
    for v in range(hm.num_vertices):
        if v in boundary:
            continue
        nb = sorted(nbs[v])
        n = len(nb)
        beta = _hand_beta(n)
        expected = (1 - n * beta) * verts[v] + beta * verts[nb].sum(axis=0)
        np.testing.assert_allclose(dense[v], expected, atol=1e-12, err_msg=f"vertex {v}, valence {n}")
        valences.add(n)
    assert len(valences) >= 3  # several valences exercised (not only the regular 6)
    assert _hand_beta(6) == pytest.approx(1 / 16, abs=1e-15)  # Loop's regular weight
    assert _hand_beta(3) == pytest.approx(3 / 16, abs=1e-15)  # Warren's 3/16 coincides at n = 3


def test_loop_rule_edge_points(hm, random_dense):
    verts, dense = random_dense
    opp = _opposites(hm.faces)
    expected = []
    for (a, b), o in opp.items():
        if len(o) == 2:
            expected.append(3 / 8 * (verts[a] + verts[b]) + 1 / 8 * (verts[o[0]] + verts[o[1]]))
        else:
            assert len(o) == 1
            expected.append(0.5 * (verts[a] + verts[b]))
    expected = np.array(expected)
    edge_points = dense[hm.num_vertices:]
    assert len(edge_points) == len(expected)
    dist, idx = cKDTree(edge_points).query(expected)
    assert dist.max() < 1e-12
    assert len(np.unique(idx)) == len(expected)  # one dense vertex per edge


def test_loop_rule_boundary_vertex(hm, random_dense):
    verts, dense = random_dense
    loop = meshops.boundary_loops(hm.faces)[0]
    assert len(loop) > 3
    for i in range(len(loop)):
        v, prev, nxt = loop[i], loop[i - 1], loop[(i + 1) % len(loop)]
        expected = 0.75 * verts[v] + 0.125 * (verts[prev] + verts[nxt])
        np.testing.assert_allclose(dense[v], expected, atol=1e-12)


def test_dense_faces_connect_vertices_to_their_edge_points(rm, hm, random_dense):
    # every dense triangle holding an original vertex v has as its other two
    # corners the edge points of two edges of one parent face at v
    verts, dense = random_dense
    opp = _opposites(hm.faces)
    mid_index = {}
    tree = cKDTree(dense)
    for (a, b), o in opp.items():
        p = (3 / 8 * (verts[a] + verts[b]) + 1 / 8 * verts[o].sum(axis=0)) if len(o) == 2 \
            else 0.5 * (verts[a] + verts[b])
        mid_index[tree.query(p)[1]] = (a, b)
    parents = {tuple(sorted(x)) for x in hm.faces}
    for f in rm.faces:
        originals = [x for x in f if x < hm.num_vertices]
        mids = [mid_index[x] for x in f if x >= hm.num_vertices]
        if originals:
            (v,) = originals
            assert all(v in e for e in mids)
            others = {e[0] if e[1] == v else e[1] for e in mids}
            assert tuple(sorted([v, *others])) in parents
        else:
            corners = set(sum(mids, ()))
            assert len(corners) == 3 and tuple(sorted(corners)) in parents
